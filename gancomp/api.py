"""Library entry points: image array or file in, .gcz bytes out, and back.

The API owns what is common to every codec: alpha (coded losslessly beside the codec's
streams), gray images for RGB-only codecs, ICC/EXIF metadata, model references, and the
generic --target-bpp / --target-psnr searches over a codec's quality.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import container as ct
from . import progress as _progress
from .codecs import codec_by_id, get_codec
from .codecs.base import Codec
from .errors import FormatError, InputError, ModelError
from .metrics import psnr


@dataclass
class Decoded:
    """A decoded image plus what the file carried with it."""

    pixels: np.ndarray
    header: ct.Container
    codec_name: str
    icc: bytes | None = None
    exif: bytes | None = None


@dataclass
class EncodeResult:
    """Encoded bytes plus what the search chose."""

    data: bytes
    quality: float | None
    notes: list[str] = field(default_factory=list)


def _split_alpha(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if arr.shape[2] in (2, 4):
        return arr[:, :, :-1], arr[:, :, -1]
    return arr, None


def _alpha_png(alpha: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(alpha, mode="L").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _alpha_from_png(data: bytes, width: int, height: int) -> np.ndarray:
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(data))
        if img.size != (width, height) or img.mode != "L":
            raise FormatError("alpha plane does not match the image")
        return np.asarray(img, dtype=np.uint8)
    except FormatError:
        raise
    except Exception:  # any Pillow failure on corrupt data  # noqa: BLE001
        raise FormatError("alpha plane is corrupt") from None


def validate_array(arr: np.ndarray) -> np.ndarray:
    """Check and normalize an input array to (H, W, C) uint8, C in 1..4."""
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise InputError(f"image array must be (H, W) or (H, W, C) with C in 1..4, got {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise InputError("zero-size image")
    if a.shape[0] > ct.MAX_SIDE or a.shape[1] > ct.MAX_SIDE or a.shape[0] * a.shape[1] > ct.MAX_PIXELS:
        raise InputError(f"image {a.shape[1]}x{a.shape[0]} exceeds the size limits")
    if a.dtype != np.uint8:
        raise InputError(f"image array must be uint8, got {a.dtype}")
    return np.ascontiguousarray(a)


def _coded_color(codec: Codec, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The colour planes the codec codes (gray widened for RGB-only codecs) and the alpha."""
    color, alpha = _split_alpha(arr)
    if color.shape[2] not in codec.channels:
        if color.shape[2] == 1 and 3 in codec.channels:
            color = np.repeat(color, 3, axis=2)
        else:
            raise InputError(f"codec {codec.name!r} cannot code {color.shape[2]}-channel images")
    return np.ascontiguousarray(color), alpha


def _encode_once(codec: Codec, arr: np.ndarray, quality: float | None, icc: bytes | None,
                 exif: bytes | None, bit_depth: int, options: dict,
                 trial: Callable[[float | None], Any] | None = None) -> tuple[bytes, list[str]]:
    if codec.lossless and bit_depth > 8:  # the 8-bit reduction would make "lossless" a lie
        raise InputError(f"codec {codec.name!r} codes 8-bit samples only; this is a "
                         f"{bit_depth}-bit image (convert it to 8 bits first)")
    color, alpha = _coded_color(codec, arr)
    enc = trial(quality) if trial is not None else codec.encode(color, quality, **options)
    sections: dict[int, bytes] = {}
    if alpha is not None:
        sections[ct.SEC_ALPHA] = _alpha_png(alpha)
    if icc:
        sections[ct.SEC_ICC] = icc
    if exif:
        sections[ct.SEC_EXIF] = exif
    model_hash = bytes.fromhex(enc.model_sha256) if enc.model_id else b""
    version = codec.version if enc.version is None else enc.version
    if not 1 <= version <= codec.version:
        raise ValueError(f"{codec.name} wrote version {version} (it has 1..{codec.version})")
    c = ct.Container(codec.codec_id, version, arr.shape[1], arr.shape[0], arr.shape[2],
                     bit_depth, enc.model_id, model_hash, strip_defaults(codec, enc.params, version),
                     enc.streams, sections)
    return ct.pack(c), enc.notes


def strip_defaults(codec: Codec, params: dict, version: int | None = None) -> dict:
    """``params`` without the entries equal to the codec's file defaults for files of
    ``version`` (default: the codec's own) (.gcz 1.1)."""
    dflt = codec.file_defaults(codec.version if version is None else version)
    return {k: v for k, v in params.items()
            if not (k in dflt and type(dflt[k]) is type(v) and dflt[k] == v)}


def encode_array(arr: np.ndarray, codec: str = "default", quality: float | None = None, *,
                 target_bpp: float | None = None, target_psnr: float | None = None,
                 icc: bytes | None = None, exif: bytes | None = None, bit_depth: int = 8,
                 progress: Callable[[int, int], None] | None = None,
                 **options: Any) -> bytes:
    """Compress an (H, W[, C]) uint8 array to .gcz bytes."""
    return encode_array_ex(arr, codec, quality, target_bpp=target_bpp, target_psnr=target_psnr,
                           icc=icc, exif=exif, bit_depth=bit_depth, progress=progress,
                           **options).data


def encode_array_ex(arr: np.ndarray, codec: str = "default", quality: float | None = None, *,
                    target_bpp: float | None = None, target_psnr: float | None = None,
                    icc: bytes | None = None, exif: bytes | None = None, bit_depth: int = 8,
                    progress: Callable[[int, int], None] | None = None,
                    **options: Any) -> EncodeResult:
    """Like :func:`encode_array`, also returning the chosen quality and notes.

    ``progress(done, total)`` hears the --target-bpp/--target-psnr trials; for every kind of
    progress (tiles, rows, trials) use :func:`gancomp.progress.listen`."""
    with _progress.listen(_progress.adapt(progress, "trials")):
        return _encode_array_ex(arr, codec, quality, target_bpp, target_psnr, icc, exif,
                                bit_depth, options)


def _encode_array_ex(arr, codec, quality, target_bpp, target_psnr, icc, exif, bit_depth,
                     options) -> EncodeResult:
    arr = validate_array(arr)
    c = get_codec(codec)
    options = {k: v for k, v in options.items() if v is not None}
    goals = [g for g in (quality, target_bpp, target_psnr) if g is not None]
    if len(goals) > 1:
        raise InputError("give only one of --quality, --target-bpp, --target-psnr")
    if target_bpp is None and target_psnr is None:
        data, notes = _encode_once(c, arr, quality, icc, exif, bit_depth, options)
        return EncodeResult(data, quality, notes)
    if c.lossless:
        raise InputError(f"codec {c.name!r} is lossless: --target-bpp/--target-psnr do not apply")
    if target_bpp is not None and not (0 < target_bpp < 64):
        raise InputError(f"--target-bpp must be in (0, 64), got {target_bpp}")
    if target_psnr is not None and not (0 < target_psnr < 100):
        raise InputError(f"--target-psnr must be in (0, 100) dB, got {target_psnr}")
    return _search(c, arr, target_bpp, target_psnr, icc, exif, bit_depth, options)


def _search(c: Codec, arr: np.ndarray, target_bpp: float | None, target_psnr: float | None,
            icc, exif, bit_depth, options, steps: int = 9) -> EncodeResult:
    """The highest quality whose file fits the bpp target, or the lowest quality that reaches
    the PSNR target, to within (hi - lo) / 2**steps of quality (what ``steps`` bisections
    give). Rate and PSNR rise smoothly with quality, so the bracket is narrowed by
    safeguarded regula falsi (Illinois) on log2(bpp) or PSNR: typically 4-6 trials where
    bisection takes 11. The answer is always a trial that met the target."""
    import math

    lo, hi = c.quality_range()
    tol = max((hi - lo) / 2 ** steps, c.quality_resolution)
    pixels = arr.shape[0] * arr.shape[1]
    # Codecs with a trial encoder reuse their analysis (e.g. a transform) across trials.
    maker = getattr(c, "trial_encoder", None)
    trial = maker(_coded_color(c, arr)[0], **options) if maker is not None else None
    if target_bpp is not None:
        goal, want_low = math.log2(target_bpp), True   # feasible side: value <= goal
    else:
        goal, want_low = float(target_psnr), False     # feasible side: value >= goal
    count = 0

    def run(q: float) -> tuple[float, bytes, list[str]]:
        """value(q) - goal, and the file. Infinite PSNR (exact) counts as far above."""
        nonlocal count
        data, notes = _encode_once(c, arr, q, icc, exif, bit_depth, options, trial)
        count += 1
        _progress.update(count, max(count, steps), "trials")
        if target_bpp is not None:
            v = math.log2(max(len(data) * 8 / pixels, 1e-9))
        else:
            v = min(psnr(arr[:, :, :(rec := decode(data).pixels).shape[2]], rec), 999.0)
        return v - goal, data, notes

    def feasible(f: float) -> bool:
        return f <= 0 if want_low else f >= 0

    first, second = (lo, hi) if want_low else (hi, lo)
    f1, data, notes = run(first)
    if not feasible(f1):
        if target_bpp is not None:
            raise InputError(f"codec {c.name!r} cannot reach {target_bpp} bpp on this image "
                             f"(its lowest quality gives {len(data) * 8 / pixels:.3f} bpp)")
        raise InputError(f"codec {c.name!r} cannot reach {target_psnr} dB on this image")
    best = (data, first, notes)
    f2, data, notes = run(second)
    if feasible(f2):   # the whole range meets the target: the far end is the answer
        best = (data, second, notes)
    else:
        (a, fa), (b, fb) = ((lo, f1), (hi, f2)) if want_low else ((lo, f2), (hi, f1))
        kept = 0        # +1: the last step moved a (b kept), -1: moved b
        for _ in range(2 * steps):
            if b - a <= tol:
                break
            q = a - fa * (b - a) / (fb - fa) if fb != fa else (a + b) / 2
            # Aim a little past the estimate, towards the end that did not move last time:
            # when the estimate is good, the next trial lands on the other side and the
            # bracket closes instead of creeping up from one side.
            q = min(max(q + kept * 0.45 * tol, a + tol / 2), b - tol / 2)
            f, data, notes = run(q)
            if feasible(f):
                best = (data, q, notes)
            if (f <= 0) if want_low else (f < 0):   # q lies on a's side of the target
                a, fa = q, f
                if kept == 1:
                    fb /= 2     # Illinois: b stayed twice, pull the next guess towards it
                kept = 1
            else:
                b, fb = q, f
                if kept == -1:
                    fa /= 2
                kept = -1
    _progress.update(count, count, "trials")
    data, q, notes = best
    return EncodeResult(data, q, notes + [f"search chose quality {q:.2f} in {count} trials"])


def check_encode_options(codec: str = "default", **options: Any) -> dict[str, Any]:
    """Validate options for ``codec`` against its declarations without encoding anything
    (the CLI calls this before reading the image); returns the typed values."""
    return get_codec(codec).encode_opts({k: v for k, v in options.items() if v is not None})


def read_header(data: bytes) -> ct.Container:
    """Parse and verify a .gcz file without decoding pixels."""
    return ct.unpack(data)


def decode(data: bytes, **options: Any) -> Decoded:
    """Decode .gcz bytes to pixels, refusing files this build or its models cannot decode."""
    h = ct.unpack(data)
    cls = codec_by_id(h.codec_id)
    if cls is None:
        raise FormatError(f"file uses codec id {h.codec_id}, unknown to this gancomp; upgrade")
    if h.codec_version > cls.version:
        raise FormatError(f"file uses {cls.name} version {h.codec_version}; this gancomp decodes "
                          f"up to version {cls.version}; upgrade")
    color_channels = h.channels - (1 if h.channels in (2, 4) else 0)
    coded = color_channels if color_channels in cls.channels else 3
    codec = cls()
    params = h.params
    if h.version >= (1, 1):
        params = {**codec.file_defaults(h.codec_version), **h.params}
    try:
        pixels = codec.decode(params, h.streams, h.width, h.height, coded,
                              model_id=h.model_id, model_sha256=h.model_sha256_prefix, **options)
    except (FormatError, ModelError, InputError):
        raise
    except (ValueError, IndexError, KeyError, TypeError, OverflowError, ZeroDivisionError) as exc:
        raise FormatError(f"corrupt {cls.name} payload ({type(exc).__name__}: {exc})") from None
    pixels = np.asarray(pixels)
    if pixels.shape != (h.height, h.width, coded) or pixels.dtype != np.uint8:
        raise FormatError(f"{cls.name} decoded to {pixels.shape} {pixels.dtype}, expected "
                          f"{(h.height, h.width, coded)} uint8")
    if coded == 3 and color_channels == 1:
        pixels = np.round(pixels.astype(np.float32).mean(axis=2, keepdims=True)).astype(np.uint8)
    if h.channels in (2, 4):
        if ct.SEC_ALPHA not in h.sections:
            raise FormatError("file declares alpha but has no alpha plane")
        alpha = _alpha_from_png(h.sections[ct.SEC_ALPHA], h.width, h.height)
        pixels = np.concatenate([pixels, alpha[:, :, None]], axis=2)
    return Decoded(np.ascontiguousarray(pixels), h, cls.name, h.sections.get(ct.SEC_ICC),
                   h.sections.get(ct.SEC_EXIF))


def decode_array(data: bytes, **options: Any) -> np.ndarray:
    """Decode .gcz bytes to an (H, W, C) uint8 array."""
    return decode(data, **options).pixels
