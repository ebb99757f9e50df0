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

@dataclass(frozen=True)
class Option:
    """One codec option, declared once: parsing, range checks, defaults and help all come
    from here (``-x name=value`` on the command line, keyword arguments in the library).

    ``kind`` is int, float, str or bool; ``lo``/``hi`` bound numbers (inclusive); ``choices``
    limits strings. ``default`` None means "codec decides" (the option is simply absent).
    """

    name: str
    kind: type
    default: Any
    help: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] | None = None

    def parse(self, codec: str, value: Any) -> Any:
        """The typed, range-checked value; InputError (one line) otherwise."""
        what = f"codec {codec!r} option {self.name}"
        try:
            if self.kind is bool:
                if isinstance(value, str):
                    low = value.strip().lower()
                    if low not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                        raise ValueError
                    v: Any = low in {"1", "true", "yes", "on"}
                else:
                    v = bool(value)
            elif self.kind is int:
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                v = int(str(value).strip()) if isinstance(value, str) else int(value)
            elif self.kind is float:
                v = float(value)
                if not np.isfinite(v):
                    raise ValueError
            elif isinstance(value, bool):  # a flag (--finetune) given to a str option
                v = "true" if value else "false"
            else:
                v = str(value)
        except (TypeError, ValueError):
            raise InputError(f"{what} needs {self.kind.__name__}, got {value!r}") from None
        if self.choices is not None and v not in self.choices:
            raise InputError(f"{what} must be one of {', '.join(self.choices)}, got {v!r}")
        if self.lo is not None and v < self.lo or self.hi is not None and v > self.hi:
            raise InputError(f"{what} must be in {_num(self.lo)}..{_num(self.hi)}, got {v!r}")
        return v

    def describe(self) -> str:
        """One line for ``--help`` / ``gancomp codecs -v``."""
        rng = (f" {{{','.join(self.choices)}}}" if self.choices else
               f" [{_num(self.lo)}..{_num(self.hi)}]" if self.lo is not None and self.hi is not None
               else "")
        dflt = "" if self.default is None else f" (default {self.default})"
        return f"{self.name}: {self.kind.__name__}{rng}{dflt}. {self.help}"


def _num(x: float | None) -> str:
    """A bound for messages: integers in full (2147483647, not 2.14748e+09)."""
    if x is None:
        return "?"
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


# Options every codec accepts (placement of transforms; codecs without any ignore it).
COMMON_OPTIONS: tuple[Option, ...] = (
    Option("device", str, None, "where learned transforms run", choices=("auto", "cpu", "cuda")),
)


def validate_options(codec: str, declared: tuple[Option, ...], given: dict[str, Any],
                     fill_defaults: bool = True) -> dict[str, Any]:
    """Check ``given`` against ``declared`` (+ COMMON_OPTIONS): unknown names and bad values
    raise InputError; None values count as absent. Returns typed values, with defaults."""
    table = {o.name: o for o in (*COMMON_OPTIONS, *declared)}
    extra = sorted(k for k, v in given.items() if v is not None and k not in table)
    if extra:
        known = ", ".join(sorted(table)) or "none"
        raise InputError(f"codec {codec!r} does not take option(s): {', '.join(extra)} "
                         f"(it takes: {known})")
    out: dict[str, Any] = {}
    for name, opt in table.items():
        if given.get(name) is not None:
            out[name] = opt.parse(codec, given[name])
        elif fill_defaults and opt.default is not None:
            out[name] = opt.default
    return out


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
    # The codec version the file is written as, when lower than the codec's own (a file that
    # uses no newer feature stays readable by older builds); None = ``Codec.version``.
    version: int | None = None


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
    # Declared options (see :class:`Option`); encode_options for encode, decode_options for
    # decode. Codecs call :meth:`encode_opts` / :meth:`decode_opts` to validate what they got.
    encode_options: ClassVar[tuple[Option, ...]] = ()
    decode_options: ClassVar[tuple[Option, ...]] = ()

    def file_defaults(self, version: int) -> Params:
        """Parameter values a .gcz 1.1 writer leaves out and a reader fills back in, for
        files of codec ``version``. Part of the bitstream: changing them needs a new version."""
        return {}

    def encode_opts(self, options: dict[str, Any]) -> dict[str, Any]:
        """Validated, typed encode options with defaults filled (InputError otherwise)."""
        return validate_options(self.name, self.encode_options, options)

    def decode_opts(self, options: dict[str, Any]) -> dict[str, Any]:
        """Validated, typed decode options with defaults filled (InputError otherwise)."""
        return validate_options(self.name, self.decode_options, options)

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

    # Qualities closer than this give the same or adjacent encodings (a codec that maps
    # quality to integer codes); --target-bpp/--target-psnr searches stop at this spacing.
    quality_resolution: float = 0.0

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


def _load_one(module: str | None) -> None:
    """Import just ``gancomp.codecs.<module>`` (a hint; a miss falls back to discovery), so
    coding with one codec does not pay for importing every other codec."""
    if module and module.isidentifier():
        import importlib
        import importlib.util

        try:
            if importlib.util.find_spec(f"{__package__}.{module}") is not None:
                importlib.import_module(f"{__package__}.{module}")
        except ImportError:
            pass


def get_codec(name: str) -> Codec:
    """Return a codec instance by its ``--codec`` name."""
    if name == "default":
        from . import DEFAULT_CODEC

        name = DEFAULT_CODEC
    if name not in _BY_NAME:
        _load_one(name)          # codecs live in a module of their name, by convention
    if name not in _BY_NAME:
        _load_all()
    cls = _BY_NAME.get(name)
    if cls is None:
        raise InputError(f"unknown codec {name!r}; available: {', '.join(sorted(_BY_NAME))}")
    return cls()


def codec_by_id(codec_id: int) -> type[Codec] | None:
    """Return the codec class for a file's codec id, or None when this build lacks it."""
    if codec_id not in _BY_ID:
        from . import MODULE_OF_ID

        _load_one(MODULE_OF_ID.get(codec_id))
    if codec_id not in _BY_ID:
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


def torch_device(name: str | None) -> str:
    """The torch device for a codec's ``device`` option: auto picks CUDA when present; asking
    for CUDA where there is none is an InputError (one line), not a torch traceback."""
    import torch

    if name in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda requested but no CUDA device is available")
    return name


Factory = Callable[[], Codec]
