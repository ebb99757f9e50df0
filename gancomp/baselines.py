"""Classical reference codecs (JPEG, WebP, JPEG 2000, AVIF, JPEG XL, HEIC) for comparisons.

Each one encodes an 8-bit RGB array to the real bytes of its own file format and decodes
them back, so bpp comes from an actual file. Every codec takes a ``quality`` in its own
0..100-style scale where rate rises with quality (needed for --target-bpp bisection); for the
codecs whose native knob is not a quality (JPEG 2000 compression ratio, JPEG XL distance) the
mapping is a fixed log scale, and :meth:`ClassicalCodec.native` says what was used.

Settings follow common practice (and CompressAI's comparisons): JPEG through Pillow/libjpeg
with 4:2:0 chroma; WebP through Pillow (libwebp, method 4); JPEG 2000 through Pillow/OpenJPEG,
irreversible 9/7 with the colour transform, rate-controlled by compression ratio; AVIF through
imagecodecs/libavif at speed 6 (avifenc's default) with 4:2:0 chroma; JPEG XL through
imagecodecs/libjxl at effort 7 (cjxl's default) by butteraugli distance; HEIC through
pillow-heif (libheif + x265, 4:2:0), the same coding tools as BPG.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .errors import InputError

QualityMap = Callable[[float], float]


def _identity(q: float) -> float:
    return q


def _log_map(at0: float, at100: float) -> tuple[QualityMap, QualityMap]:
    """q in 0..100 -> native value moving geometrically from at0 to at100, and its inverse."""
    ratio = at100 / at0

    def fwd(q: float) -> float:
        return at0 * ratio ** (q / 100.0)

    def inv(v: float) -> float:
        return 100.0 * math.log(v / at0) / math.log(ratio)

    return fwd, inv


_J2K_FWD, _J2K_INV = _log_map(480.0, 2.0)    # compression ratio 480:1 (0.05 bpp) .. 2:1
_JXL_FWD, _JXL_INV = _log_map(25.0, 0.3)     # butteraugli distance 25 .. 0.3


def _pil_encode(fmt: str, options: Callable[[float], dict]) -> Callable[[np.ndarray, float], bytes]:
    def enc(img: np.ndarray, native: float) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(img, mode="RGB").save(buf, format=fmt, **options(native))
        return buf.getvalue()

    return enc


def pil_decode(data: bytes) -> np.ndarray:
    """Decode any Pillow-readable file (JPEG, WebP, PNG, JPEG 2000) to 8-bit RGB."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def _j2k_encode(img: np.ndarray, ratio: float) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img, mode="RGB").save(buf, format="JPEG2000", quality_mode="rates",
                                         quality_layers=[ratio], irreversible=True, mct=1)
    return buf.getvalue()


def _avif_encode(img: np.ndarray, q: float) -> bytes:
    import imagecodecs

    return imagecodecs.avif_encode(img, level=int(round(q)), speed=6, pixelformat="yuv420",
                                   numthreads=1)


def _avif_decode(data: bytes) -> np.ndarray:
    import imagecodecs

    return np.asarray(imagecodecs.avif_decode(data, numthreads=1))[..., :3]


def _jxl_encode(img: np.ndarray, distance: float) -> bytes:
    import imagecodecs

    return imagecodecs.jpegxl_encode(img, distance=distance, effort=7, numthreads=1)


def _jxl_decode(data: bytes) -> np.ndarray:
    import imagecodecs

    return np.asarray(imagecodecs.jpegxl_decode(data, numthreads=1))[..., :3]


def _heic_encode(img: np.ndarray, q: float) -> bytes:
    import pillow_heif

    h, w, _ = img.shape
    heif = pillow_heif.from_bytes("RGB", (w, h), np.ascontiguousarray(img).tobytes())
    buf = io.BytesIO()
    heif.save(buf, quality=int(round(q)), format="HEIF", chroma=420)
    return buf.getvalue()


def _heic_decode(data: bytes) -> np.ndarray:
    import pillow_heif

    return np.asarray(pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
                      .to_pillow().convert("RGB"))


def _probe_pil(fmt: str) -> str | None:
    from PIL import features

    key = {"JPEG": "jpg", "WEBP": "webp", "JPEG2000": "jpg_2000"}[fmt]
    return None if features.check(key) else f"Pillow was built without {fmt} support"


def _probe_imagecodecs(name: str) -> str | None:
    try:
        import imagecodecs
    except ImportError:
        return "imagecodecs is not installed (pip install imagecodecs)"
    codec = getattr(imagecodecs, name, None)
    if codec is None or not getattr(codec, "available", False):
        return f"this imagecodecs build lacks {name}"
    return None


def _probe_heif() -> str | None:
    try:
        import pillow_heif
    except ImportError:
        return "pillow-heif is not installed (pip install pillow-heif)"
    if "x265" not in pillow_heif.libheif_info().get("encoders", {}):
        return "pillow-heif has no HEVC (x265) encoder"
    return None


@dataclass(frozen=True)
class ClassicalCodec:
    """A classical image codec measured on real files. ``quality`` rises with rate."""

    name: str
    description: str
    native_name: str
    _encode: Callable[[np.ndarray, float], bytes]
    _decode: Callable[[bytes], np.ndarray]
    _probe: Callable[[], str | None]
    sweep: tuple[float, ...]
    qrange: tuple[float, float]
    to_native: QualityMap = _identity
    from_native: QualityMap = _identity
    integer_quality: bool = True
    lossless: bool = field(default=False)

    def missing(self) -> str | None:
        """Why the codec cannot run here, or None when it can."""
        try:
            return self._probe()
        except Exception as exc:  # a broken install must not crash the listing  # noqa: BLE001
            return f"{type(exc).__name__}: {exc}"

    def quality_range(self) -> tuple[float, float]:
        return self.qrange

    def sweep_qualities(self) -> list[float]:
        return list(self.sweep)

    def native(self, quality: float) -> float:
        """The library's own parameter for a quality (quality itself for most codecs)."""
        q = self.snap(quality)
        return self.to_native(q)

    def snap(self, quality: float) -> float:
        """Round to what the encoder actually accepts (integers for integer qualities)."""
        lo, hi = self.qrange
        if not (lo <= quality <= hi):
            raise InputError(f"{self.name}: quality must be in {lo:g}..{hi:g}, got {quality:g}")
        return float(round(quality)) if self.integer_quality else float(quality)

    def encode(self, image: np.ndarray, quality: float) -> bytes:
        """Encode an (H, W, 3) uint8 array to the bytes of a real file."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"{self.name}: needs an (H, W, 3) uint8 image")
        return self._encode(np.ascontiguousarray(image), self.native(quality))

    def decode(self, data: bytes) -> np.ndarray:
        """Decode file bytes to an (H, W, 3) uint8 array."""
        out = np.asarray(self._decode(data))
        if out.ndim == 2:
            out = np.repeat(out[:, :, None], 3, axis=2)
        return np.ascontiguousarray(out[:, :, :3].astype(np.uint8))


CLASSICAL: dict[str, ClassicalCodec] = {
    c.name: c for c in [
        ClassicalCodec(
            "jpeg", "JPEG (Pillow/libjpeg, 4:2:0, quality)", "quality",
            _pil_encode("JPEG", lambda q: {"quality": int(q), "subsampling": "4:2:0"}),
            pil_decode, lambda: _probe_pil("JPEG"),
            sweep=(3, 5, 10, 20, 30, 50, 70, 85), qrange=(1, 95)),
        ClassicalCodec(
            "webp", "WebP (Pillow/libwebp, method 4, quality)", "quality",
            _pil_encode("WEBP", lambda q: {"quality": int(q), "method": 4}),
            pil_decode, lambda: _probe_pil("WEBP"),
            sweep=(0, 5, 15, 30, 50, 70, 85, 95), qrange=(0, 100)),
        ClassicalCodec(
            "jpeg2000", "JPEG 2000 (Pillow/OpenJPEG, 9/7 + MCT, compression ratio)", "ratio",
            _j2k_encode, pil_decode, lambda: _probe_pil("JPEG2000"),
            sweep=tuple(round(_J2K_INV(r), 3) for r in (240, 120, 80, 48, 32, 20, 12)),
            qrange=(0, 100), to_native=_J2K_FWD, from_native=_J2K_INV, integer_quality=False),
        ClassicalCodec(
            "avif", "AVIF (imagecodecs/libavif+aom, speed 6, 4:2:0, quality)", "quality",
            _avif_encode, _avif_decode, lambda: _probe_imagecodecs("AVIF"),
            sweep=(5, 10, 20, 35, 50, 65, 80), qrange=(0, 100)),
        ClassicalCodec(
            "jpegxl", "JPEG XL (imagecodecs/libjxl, effort 7, distance)", "distance",
            _jxl_encode, _jxl_decode, lambda: _probe_imagecodecs("JPEGXL"),
            sweep=tuple(round(_JXL_INV(d), 3) for d in (15.0, 10.0, 7.0, 4.0, 2.5, 1.5, 1.0)),
            qrange=(0, 100), to_native=_JXL_FWD, from_native=_JXL_INV, integer_quality=False),
        ClassicalCodec(
            "heic", "HEIC (pillow-heif/libheif+x265, 4:2:0, quality)", "quality",
            _heic_encode, _heic_decode, _probe_heif,
            sweep=(5, 10, 15, 20, 25, 30, 35, 40, 45, 50), qrange=(0, 100)),
    ]
}

ALIASES = {"jp2": "jpeg2000", "j2k": "jpeg2000", "jxl": "jpegxl", "heif": "heic", "bpg": "heic"}


def names() -> list[str]:
    """Names of all classical codecs (present or not)."""
    return list(CLASSICAL)


def get(name: str) -> ClassicalCodec:
    """A classical codec by name (or alias); InputError if unknown or missing here."""
    c = CLASSICAL.get(ALIASES.get(name, name))
    if c is None:
        raise InputError(f"unknown classical codec {name!r}; known: {', '.join(CLASSICAL)}")
    why = c.missing()
    if why:
        raise InputError(f"codec {c.name!r} is not available here: {why}")
    return c


def availability() -> dict[str, str | None]:
    """Each classical codec's name -> None when present, else why it is missing."""
    return {n: c.missing() for n, c in CLASSICAL.items()}
