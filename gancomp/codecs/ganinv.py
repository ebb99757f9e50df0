"""``gan-inversion``: a face is stored as the quantized latent of a generator (seeds 000, 003).

Encoding inverts the generator (:mod:`gancomp.inversion`), quantizes the latent and range
codes its integer symbols with the model's integer Gaussian table (gancomp.entropy), so the
latents decode bit-identically anywhere; decoding is G(ẑ). ``--ratio R`` selects GANZ (a
seeded random first layer with 64·64·3/R inputs, seed in the file).

Params (.gcz 1.1 leaves out those equal to the defaults b=5, l=2, d=0, s=0, z=0): ``b``
latent bits (v1 models, GANZ), ``l`` quantizer level (v2 models), ``d`` GANZ latent size (0:
none), ``s`` GANZ seed, ``z`` 1 when the image was resized to 64x64. Codec version 2 adds v2
models (``ganinv-faces64-v2``: per-dimension factorized tables over the latent, one stream);
version 1 files decode unchanged. The model codes 64x64 RGB;
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
LOSSES = ("combined", "mse")


def level_for_quality(q: float) -> int:
    """Quality 0..100 -> v2 quantizer level 0..4 (50 -> 2, the trained step)."""
    return int(np.clip(round(q / 25), 0, 4))


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
    params = {"b": bits, "d": ratio_dim, "s": seed, "z": int(resized), "p": 64}
    return Encoded(params, [encode_symbols(sym, model.tables[bits])], model.id, model.sha256)


def pack_v2(model, sym: np.ndarray, level: int, resized: bool) -> Encoded:
    """An Encoded holding one image's v2 latent (per-dimension factorized tables)."""
    table = model.level_tables[level]
    k = (table.shape[1] - 2) // 2
    stream = encode_indexed(sym.ravel(), np.arange(sym.size), table, np.full(sym.size, -k))
    params = {"l": level, "z": int(resized), "p": 64}
    return Encoded(params, [stream], model.id, model.sha256)


def decode_v2_symbols(data: bytes, model, level: int) -> np.ndarray:
    table = model.level_tables[level]
    k = (table.shape[1] - 2) // 2
    return decode_indexed(data, np.arange(model.zdim), table, np.full(model.zdim, -k))


# Encode-time settings of v2 models, tuned on the tuning slice (face ids 7251..7500, never the
# test faces): see notes/i17-faces.md and gancomp.benchmarks.faces_tune.
V2_ENCODE = {"steps": 60, "lr": 0.6, "lr_end": 0.05, "patience": 8}


@register
class GanInversionCodec(Codec):
    name = "gan-inversion"
    codec_id = 5
    # 2: v2 models (factorized latent prior, param "l"); 3: the generator runs in float64 at
    # decode (param "p" = 64), so pixels match across machines; reads versions 1 and 2
    version = 3
    channels = (3,)
    description = "64x64 faces as a quantized GAN latent (latent optimization; GANZ via --ratio)"
    encode_options = (
        Option("ratio", float, None, "GANZ: a seeded random first layer with 64*64*3/R inputs",
               lo=1.0, hi=float(MAX_LATENT)),
        Option("resize", bool, None, "scale other sizes to 64x64 (and back when decoding)"),
        Option("loss", str, None, "inversion loss (default combined)", choices=LOSSES),
        Option("bits", int, None, "v1 models and GANZ: latent bits (instead of --quality)",
               lo=2, hi=8),
        Option("level", int, None, "v2 models: quantizer level 0 (coarse) .. 4 (fine), "
               "instead of --quality", lo=0, hi=4),
        Option("steps", int, None, "optimizer steps (at most, for v2 models)", lo=0, hi=100000),
        Option("restarts", int, None, "v1 models and GANZ: restarts", lo=1, hi=64),
        Option("lr", float, None, "v2 models: first Adam step size (quantizer steps)",
               lo=0.0, hi=100.0),
        Option("rate_weight", float, None, "v2 models: multiplies the trained rate weight",
               lo=0.0, hi=1000.0),
        Option("seed", int, None, "GANZ seed", lo=0, hi=2 ** 31 - 1),
        Option("model", str, None, "model id (default: the default gan-inversion model)"),
    )

    def file_defaults(self, version: int) -> dict:
        return {"b": DEFAULTS["bits"], "l": 2, "d": 0, "s": 0, "z": 0,
                "p": 64 if version >= 3 else 32}

    def quality_range(self) -> tuple[float, float]:
        return (0.0, 100.0)

    def sweep_qualities(self) -> list[float]:
        return [17.0, 33.0, 50.0, 67.0, 83.0]

    def encode(self, image: np.ndarray, quality: float | None = None, **options: Any) -> Encoded:
        from .. import inversion

        o = self.encode_opts(options)
        h, w = image.shape[:2]
        notes = []
        if (h, w) != (64, 64):
            if not o.get("resize"):
                raise InputError(f"gan-inversion codes 64x64 face images; this one is {w}x{h} "
                                 f"(add --resize to scale it to 64x64 and back)")
            image = _resize(image, 64, 64)
            notes.append(f"resized {w}x{h} -> 64x64 for the face model; decoding scales back")
        m = inversion.load_model(o.get("model"))
        ratio, seed = o.get("ratio"), o.get("seed", 0)
        resized = (h, w) != (64, 64)
        if m.v2 and ratio is None:
            if "bits" in o or "restarts" in o:
                raise InputError("bits and restarts apply to v1 models and GANZ; this model "
                                 "takes --quality or -x level=N")
            if quality is not None and "level" in o:
                raise InputError("give either --quality or -x level=N for gan-inversion, not both")
            lv = o["level"] if "level" in o else level_for_quality(clamp_quality(quality, 50.0))
            kw = {k: o[k] for k in ("steps", "lr", "rate_weight", "loss") if k in o}
            res = inversion.invert_v2(m, image[None], level=lv, **{**V2_ENCODE, **kw})
            enc = pack_v2(m, res.symbols[0], lv, resized)
        else:
            if "level" in o:
                raise InputError("level applies to v2 models without GANZ; use -x bits=N")
            if quality is not None and "bits" in o:
                raise InputError("give either --quality or -x bits=N for gan-inversion, not both")
            b = o["bits"] if "bits" in o else bits_for_quality(clamp_quality(quality, 50.0))
            res = inversion.invert(m, image[None], loss=o.get("loss", DEFAULTS["loss"]), bits=b,
                                   steps=o.get("steps", DEFAULTS["steps"]),
                                   restarts=o.get("restarts", DEFAULTS["restarts"]),
                                   ratio=ratio, seed=seed)
            d = inversion.ganz_dim(ratio) if ratio is not None else 0
            enc = pack(m, res.symbols[0], b, d, seed, resized)
        enc.notes = notes
        return enc

    def decode(self, params, streams, width, height, channels, model_id="", model_sha256="",
               **options) -> np.ndarray:
        from .. import inversion

        self.decode_opts(options)
        try:
            b, d, seed, resized = (int(params[k]) for k in ("b", "d", "s", "z"))
            level = int(params.get("l", 2))
            precision = int(params.get("p", 32))
        except (KeyError, TypeError, ValueError):
            raise FormatError("gan-inversion parameters missing or malformed") from None
        if precision not in (32, 64):
            raise FormatError(f"gan-inversion synthesis precision {precision} unsupported")
        if len(streams) != 1 or channels != 3 or not (0 <= d <= MAX_LATENT) or resized not in (0, 1):
            raise FormatError("gan-inversion streams or parameters malformed")
        if not model_id:
            raise FormatError("gan-inversion file names no model")
        m = inversion.load_model(model_id, model_sha256)
        if (width, height) != (64, 64) and not resized:
            raise FormatError("gan-inversion file declares a non-64x64 image without resize")
        if m.v2 and not d:
            if level not in m.level_tables:
                raise FormatError(f"gan-inversion level {level} unsupported")
            sym = decode_v2_symbols(streams[0], m, level)
            if np.abs(sym).max(initial=0) > 1 << 20:
                raise FormatError("gan-inversion latent out of range")
            img = inversion.decode_latents_v2(m, sym[None], level, precision)[0]
        else:
            if b not in m.tables:
                raise FormatError(f"gan-inversion latent bits {b} unsupported")
            n = d if d else m.zdim
            sym = decode_symbols(streams[0], n, m.tables[b])
            if np.abs(sym).max(initial=0) > 1 << 20:
                raise FormatError("gan-inversion latent out of range")
            img = inversion.decode_latents(m, sym[None], b, (seed, d) if d else None,
                                           precision)[0]
        if (width, height) != (64, 64):
            img = _resize(img, width, height)
        return img
