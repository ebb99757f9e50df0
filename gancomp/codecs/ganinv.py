"""``gan-inversion``: a face is stored as the quantized latent of a generator (seeds 000, 003).

Encoding inverts the generator (:mod:`gancomp.inversion`), quantizes the latent and range
codes its integer symbols with the model's integer Gaussian table (gancomp.entropy), so the
latents decode bit-identically anywhere; decoding is G(ẑ). ``--ratio R`` selects GANZ (a
seeded random first layer with 64·64·3/R inputs, seed in the file). The model codes 64x64 RGB;
other sizes are refused unless ``--resize`` (scaled to 64x64, and back when decoding).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..entropy import decode_indexed, encode_indexed
from ..errors import FormatError, InputError
from .base import Codec, Encoded, Option, clamp_quality, register

DEFAULTS = {"loss": "combined", "bits": 5, "steps": 120, "restarts": 2}
MAX_LATENT = 64 * 64 * 3


def bits_for_quality(q: float) -> int:
    """Quality 0..100 -> latent bits 2..8 (50 -> 5)."""
    return int(np.clip(round(2 + q * 6 / 100), 2, 8))


def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((width, height), Image.BICUBIC))


def encode_symbols(sym: np.ndarray, table: np.ndarray) -> bytes:
    """Range-code integer latent symbols with a symmetric integer table (+ escape bin)."""
    k = (table.size - 2) // 2
    return encode_indexed(sym.ravel(), np.zeros(sym.size, np.int64), table[None], np.array([-k]))


def decode_symbols(data: bytes, n: int, table: np.ndarray) -> np.ndarray:
    k = (table.size - 2) // 2
    return decode_indexed(data, np.zeros(n, np.int64), table[None], np.array([-k]))


def pack(model, sym: np.ndarray, bits: int, ratio_dim: int, seed: int, resized: bool) -> Encoded:
    """An Encoded holding one image's latent symbols."""
    params = {"b": bits, "d": ratio_dim, "s": seed, "z": int(resized)}
    return Encoded(params, [encode_symbols(sym, model.tables[bits])], model.id, model.sha256)


@register
class GanInversionCodec(Codec):
    name = "gan-inversion"
    codec_id = 5
    version = 1
    channels = (3,)
    description = "64x64 faces as a quantized GAN latent (latent optimization; GANZ via --ratio)"
    encode_options = (
        Option("ratio", float, None, "GANZ: a seeded random first layer with 64*64*3/R inputs",
               lo=1.0, hi=MAX_LATENT),
        Option("resize", bool, None, "scale other sizes to 64x64 (and back when decoding)"),
        Option("loss", str, DEFAULTS["loss"], "inversion loss", choices=("mse", "combined")),
        Option("bits", int, None, "latent precision (instead of --quality)", lo=2, hi=8),
        Option("steps", int, DEFAULTS["steps"], "Adam steps per restart", lo=0, hi=100000),
        Option("restarts", int, DEFAULTS["restarts"], "optimization restarts", lo=1, hi=64),
        Option("seed", int, 0, "GANZ layer and restart seed", lo=0, hi=2 ** 31 - 1),
        Option("model", str, None, "weights id (default: the installed default)"))

    def quality_range(self) -> tuple[float, float]:
        return (0.0, 100.0)

    def sweep_qualities(self) -> list[float]:
        return [17.0, 33.0, 50.0, 67.0, 83.0]

    def encode(self, image: np.ndarray, quality: float | None = None, **options: Any) -> Encoded:
        from .. import inversion

        o = self.encode_opts(options)
        ratio, resize, bits, seed, model = (o.get(k) for k in ("ratio", "resize", "bits", "seed", "model"))
        if quality is not None and bits is not None:
            raise InputError("give either --quality or -x bits=N for gan-inversion, not both")
        b = bits if bits is not None else bits_for_quality(clamp_quality(quality, 50.0))
        h, w = image.shape[:2]
        notes = []
        if (h, w) != (64, 64):
            if not resize:
                raise InputError(f"gan-inversion codes 64x64 face images; this one is {w}x{h} "
                                 f"(add --resize to scale it to 64x64 and back)")
            image = _resize(image, 64, 64)
            notes.append(f"resized {w}x{h} -> 64x64 for the face model; decoding scales back")
        m = inversion.load_model(model)
        res = inversion.invert(m, image[None], loss=o["loss"], bits=b, steps=o["steps"],
                               restarts=o["restarts"], ratio=ratio, seed=seed)
        d = inversion.ganz_dim(ratio) if ratio is not None else 0
        enc = pack(m, res.symbols[0], b, d, seed, (h, w) != (64, 64))
        enc.notes = notes
        return enc

    def decode(self, params, streams, width, height, channels, model_id="", model_sha256="",
               **options) -> np.ndarray:
        from .. import inversion

        self.decode_opts(options)
        try:
            b, d, seed, resized = (int(params[k]) for k in ("b", "d", "s", "z"))
        except (KeyError, TypeError, ValueError):
            raise FormatError("gan-inversion parameters missing or malformed") from None
        if len(streams) != 1 or channels != 3 or not (0 <= d <= MAX_LATENT) or resized not in (0, 1):
            raise FormatError("gan-inversion streams or parameters malformed")
        if not model_id:
            raise FormatError("gan-inversion file names no model")
        m = inversion.load_model(model_id, model_sha256)
        if b not in m.tables:
            raise FormatError(f"gan-inversion latent bits {b} unsupported")
        if (width, height) != (64, 64) and not resized:
            raise FormatError("gan-inversion file declares a non-64x64 image without resize")
        n = d if d else m.zdim
        sym = decode_symbols(streams[0], n, m.tables[b])
        if np.abs(sym).max(initial=0) > 1 << 20:
            raise FormatError("gan-inversion latent out of range")
        img = inversion.decode_latents(m, sym[None], b, (seed, d) if d else None)[0]
        if (width, height) != (64, 64):
            img = _resize(img, width, height)
        return img
