"""Image input and output: formats, stdin/stdout, alpha, ICC/EXIF, gray, 16-bit policy,
and atomic writes.

Policy: every image becomes an (H, W, C) uint8 array with C in {1 gray, 2 gray+alpha,
3 RGB, 4 RGBA}. Palette images expand to RGB(A); CMYK/YCbCr/LAB convert to RGB; EXIF
orientation is applied (so the EXIF kept has orientation 1). 16-bit and float inputs are
reduced to 8 bits (rounded) with a note: gancomp codes 8-bit samples.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError

MAX_INPUT_PIXELS = 1 << 28
READ_FORMATS = "PNG, JPEG, WebP, TIFF, BMP, PPM/PGM/PBM, GIF (first frame), AVIF/HEIC"
WRITE_FORMATS = {"png": "PNG", "tiff": "TIFF", "tif": "TIFF", "bmp": "BMP", "ppm": "PPM",
                 "pgm": "PPM", "pnm": "PPM", "webp": "WEBP"}


@dataclass
class LoadedImage:
    """Pixels plus what the container carries alongside them."""

    pixels: np.ndarray
    icc: bytes | None = None
    exif: bytes | None = None
    bit_depth: int = 8
    notes: list[str] = field(default_factory=list)


def read_input_bytes(path: str) -> bytes:
    """Read a whole file, or stdin for '-'."""
    if path == "-":
        return sys.stdin.buffer.read()
    p = Path(path)
    if not p.exists():
        raise InputError(f"{path}: no such file")
    if p.is_dir():
        raise InputError(f"{path}: is a directory")
    try:
        return p.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None


def _register_plugins() -> None:
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except Exception:  # optional: HEIC/AVIF input needs pillow-heif  # noqa: BLE001
        pass


def decode_image_bytes(data: bytes, name: str = "input") -> LoadedImage:
    """Decode image file bytes to the 8-bit array policy above."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    _register_plugins()
    if not data:
        raise InputError(f"{name}: empty file")
    if data[:4] == b"\x8bGCZ":
        raise InputError(f"{name}: is a .gcz file; decode it with `gancomp decode`")
    Image.MAX_IMAGE_PIXELS = MAX_INPUT_PIXELS
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except UnidentifiedImageError:
        raise InputError(f"{name}: not a recognised image (reads {READ_FORMATS})") from None
    except Image.DecompressionBombError:
        raise InputError(f"{name}: image larger than {MAX_INPUT_PIXELS} pixels") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InputError(f"{name}: unreadable or truncated image ({exc})") from None
    if img.width < 1 or img.height < 1:
        raise InputError(f"{name}: zero-size image")
    notes: list[str] = []
    icc = img.info.get("icc_profile") or None
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block must not make the image unreadable  # noqa: BLE001
        notes.append("EXIF orientation could not be read; ignored")
    exif = None
    try:
        ex = img.getexif()
        if len(ex):
            ex[0x0112] = 1
            exif = ex.tobytes()
    except Exception:  # noqa: BLE001
        exif = None
    pixels, depth = _to_array(img, notes)
    return LoadedImage(pixels, icc, exif, depth, notes)


def _to_array(img, notes: list[str]) -> tuple[np.ndarray, int]:
    mode = img.mode
    if mode == "P" or mode == "PA":
        img = img.convert("RGBA" if ("transparency" in img.info or mode == "PA") else "RGB")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB")
        notes.append(f"{mode} image converted to RGB")
    elif mode == "1":
        img = img.convert("L")
    elif mode == "La":
        img = img.convert("LA")
    elif mode == "RGBa":
        img = img.convert("RGBA")
    mode = img.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        arr = np.asarray(img, dtype=np.uint8)
        depth = 8
    elif mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(img).astype(np.float64)
        if mode == "F":
            lo, hi = (0.0, 1.0) if arr.max() <= 1.0 else (0.0, 65535.0)
            depth = 32
        else:
            hi = 65535.0 if arr.max() > 255 or mode.startswith("I;16") else 255.0
            lo, depth = 0.0, 16
        arr = np.clip(np.round((arr - lo) * 255.0 / (hi - lo)), 0, 255).astype(np.uint8)
        notes.append(f"{depth}-bit samples reduced to 8 bits (gancomp codes 8-bit images)")
    else:
        arr = np.asarray(img.convert("RGBA" if "A" in mode else "RGB"), dtype=np.uint8)
        depth = 8
        notes.append(f"mode {mode} converted to {'RGBA' if 'A' in mode else 'RGB'}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return np.ascontiguousarray(arr), depth


def load_image(path: str) -> LoadedImage:
    """Load an image file (or stdin for '-')."""
    return decode_image_bytes(read_input_bytes(path), "stdin" if path == "-" else path)


def encode_image_bytes(pixels: np.ndarray, fmt: str = "png", icc: bytes | None = None,
                       exif: bytes | None = None) -> bytes:
    """Encode an (H, W, C) uint8 array as an image file (PNG by default)."""
    from PIL import Image

    fmt = fmt.lower()
    if fmt not in WRITE_FORMATS:
        raise InputError(f"cannot write format {fmt!r}; choose one of {', '.join(sorted(WRITE_FORMATS))}")
    arr = np.asarray(pixels, dtype=np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    pil_fmt = WRITE_FORMATS[fmt]
    mode = "L" if arr.ndim == 2 else {2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    img = Image.fromarray(arr, mode=mode)
    if pil_fmt in ("PPM", "BMP") and mode == "LA":
        raise InputError(f"{fmt} cannot hold an alpha channel; write PNG, TIFF or WebP")
    if pil_fmt == "PPM" and mode == "RGBA":
        raise InputError("PPM cannot hold an alpha channel; write PNG, TIFF or WebP")
    kw: dict = {}
    if icc and pil_fmt in ("PNG", "TIFF", "WEBP"):
        kw["icc_profile"] = icc
    if exif and pil_fmt in ("PNG", "TIFF", "WEBP"):
        kw["exif"] = exif
    if pil_fmt == "WEBP":
        kw["lossless"] = True
    buf = io.BytesIO()
    img.save(buf, format=pil_fmt, **kw)
    return buf.getvalue()


def format_from_path(path: str, default: str = "png") -> str:
    """The output format implied by a file name's extension."""
    ext = Path(path).suffix.lower().lstrip(".")
    return ext if ext in WRITE_FORMATS else default


def file_mode() -> int:
    """The mode a plainly created file gets under the current umask (0666 & ~umask)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_output(path: str, data: bytes, force: bool = False, protect: str | None = None) -> None:
    """Write bytes to ``path`` atomically (temp file + rename), or to stdout for '-'.

    Refuses to overwrite an existing file unless ``force``, and never writes over the file
    named ``protect`` (the input).
    """
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    p = Path(path)
    if protect and protect != "-" and p.exists() and Path(protect).exists() \
            and os.path.samefile(p, protect):
        raise InputError(f"{path}: output would overwrite the input")
    if p.exists() and not force:
        raise InputError(f"{path}: exists (use --force to overwrite)")
    if p.is_dir():
        raise InputError(f"{path}: is a directory")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{path}: folder does not exist ({parent})")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=parent)
    os.fchmod(fd, file_mode())  # mkstemp makes 0600 files; outputs get the usual mode
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
