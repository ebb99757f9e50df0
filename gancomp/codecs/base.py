"""The codec contract and the registry that maps names and file ids to codecs.

A codec turns an 8-bit image array into codec parameters plus byte streams and back.
It knows nothing about the .gcz byte layout (that is :mod:`gancomp.container`) nor about
files, alpha or metadata (that is :mod:`gancomp.api`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np

from ..errors import InputError

# Parameter values a codec may store in the file; the container encodes them compactly.
ParamValue = int | float | str | bytes
Params = dict[str, ParamValue]


@dataclass
class Encoded:
    """What a codec's encoder produces: parameters and payload streams for the container."""

    params: Params
    streams: list[bytes]
    # Optional codec-chosen model reference (id, sha256) when the codec uses weights.
    model_id: str = ""
    model_sha256: str = ""
    # Free-form notes for the user (printed with -v), never stored in the file.
    notes: list[str] = field(default_factory=list)


class Codec:
    """Base class for every codec. Subclasses set the class attributes and implement
    :meth:`encode` and :meth:`decode`.

    - ``name``: the ``--codec`` name users type.
    - ``codec_id``: the stable one-byte id stored in files (see formats/gcz.md); never reuse.
    - ``version``: the codec's bitstream version; bump it when old files would decode wrongly.
    - ``channels``: channel counts the codec codes natively (1 = gray, 3 = RGB). The API
      converts other inputs (gray to RGB and back; alpha is coded separately, losslessly).
    - ``lossless``: True when decode(encode(x)) == x exactly.
    """

    name: ClassVar[str] = ""
    codec_id: ClassVar[int] = 0
    version: ClassVar[int] = 1
    channels: ClassVar[tuple[int, ...]] = (1, 3)
    lossless: ClassVar[bool] = False
    description: ClassVar[str] = ""

    def encode(self, image: np.ndarray, quality: float | None = None, **options: Any) -> Encoded:
        """Code an (H, W, C) uint8 array. ``quality`` is 0..100, higher is better;
        None means the codec's default. Unknown options raise InputError."""
        raise NotImplementedError

    def decode(
        self, params: Params, streams: list[bytes], width: int, height: int, channels: int,
        model_id: str = "", model_sha256: str = "", **options: Any,
    ) -> np.ndarray:
        """Rebuild the (H, W, C) uint8 array from what :meth:`encode` produced. Raise
        FormatError for streams that are inconsistent with the parameters."""
        raise NotImplementedError

    def quality_range(self) -> tuple[float, float]:
        """The useful quality range for sweeps and --target-bpp bisection."""
        return (1.0, 100.0)

    def sweep_qualities(self) -> list[float]:
        """Default quality points for RD sweeps in ``gancomp compare``."""
        lo, hi = self.quality_range()
        return [float(q) for q in np.linspace(lo, hi, 6)]


_BY_NAME: dict[str, type[Codec]] = {}
_BY_ID: dict[int, type[Codec]] = {}


def register(cls: type[Codec]) -> type[Codec]:
    """Class decorator: make a codec available by name and by its file id."""
    if not cls.name or not (1 <= cls.codec_id <= 255):
        raise ValueError(f"codec {cls!r} needs a name and a codec_id in 1..255")
    if cls.name in _BY_NAME and _BY_NAME[cls.name] is not cls:
        raise ValueError(f"codec name {cls.name!r} registered twice")
    if cls.codec_id in _BY_ID and _BY_ID[cls.codec_id] is not cls:
        raise ValueError(f"codec id {cls.codec_id} registered twice")
    _BY_NAME[cls.name] = cls
    _BY_ID[cls.codec_id] = cls
    return cls


def _load_all() -> None:
    from . import _discover

    _discover()


def get_codec(name: str) -> Codec:
    """Return a codec instance by its ``--codec`` name."""
    _load_all()
    if name == "default":
        from . import DEFAULT_CODEC

        name = DEFAULT_CODEC
    cls = _BY_NAME.get(name)
    if cls is None:
        raise InputError(f"unknown codec {name!r}; available: {', '.join(sorted(_BY_NAME))}")
    return cls()


def codec_by_id(codec_id: int) -> type[Codec] | None:
    """Return the codec class for a file's codec id, or None when this build lacks it."""
    _load_all()
    return _BY_ID.get(codec_id)


def available() -> dict[str, type[Codec]]:
    """All registered codecs by name."""
    _load_all()
    return dict(sorted(_BY_NAME.items()))


def check_options(codec: str, options: dict[str, Any], allowed: set[str]) -> None:
    """Raise InputError for options a codec does not understand."""
    extra = sorted(k for k, v in options.items() if v is not None and k not in allowed)
    if extra:
        raise InputError(f"codec {codec!r} does not take option(s): {', '.join(extra)}")


def clamp_quality(quality: float | None, default: float, lo: float = 0.0, hi: float = 100.0) -> float:
    """Validate a quality value (None means the default)."""
    if quality is None:
        return default
    q = float(quality)
    if not np.isfinite(q) or q < lo or q > hi:
        raise InputError(f"quality must be in {lo:g}..{hi:g}, got {quality}")
    return q


Factory = Callable[[], Codec]
