"""``ablative`` (codec id 10): ablative image compression (seed 004, Kuznetsov & Singhal).

The encoder keeps the 8x8 blocks near edges (highest mean |Laplacian of Gaussian| of the
luma) plus a share of random blocks elsewhere, codes the block mask and the kept blocks
(JPEG-style YCbCr DCT at ``block_quality``, context-adaptive arithmetic coding), and drops
everything else. The decoder fills the removed area with an inpainting network trained with
the seed's edge, style and content losses (:mod:`gancomp.train.ablative`).

``-q`` is the kept percentage of blocks (rate is set by the kept fraction; at least one
block); ``-x block_quality=`` (1..100, default 50) the DCT quality of kept blocks;
``-x random_share=`` (default 0.25) the share of kept blocks drawn at random.

Params: ``f`` kept fraction x10000, ``b`` block quality, ``r`` random share x1000.
Streams: mask, end-of-block positions, coefficients, escapes (varints).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..blockdct import ZIGZAG, B, dequantize_blocks, quantize_blocks, select_blocks
from ..entropy import AdaptiveCoder, read_varint, unzigzag, write_varint, zigzag
from ..errors import FormatError, InputError, ModelError
from .base import Codec, Encoded, Option, clamp_quality, register
from .generative import _device, _model_ref, decode_mask, encode_mask

R = 24                       # coefficient symbols cover -R..R, then an escape
ESC = 2 * R + 1
MAX_PIXELS = 1 << 24         # the inpainting network runs on the whole image at once
BUCKETS = np.minimum(np.searchsorted([1, 2, 3, 5, 8, 12, 17, 23, 30, 40, 52], np.arange(64),
                                     side="right"), 11)


def _eob_bucket(e: np.ndarray) -> np.ndarray:
    return np.searchsorted([4, 11, 26], e, side="right")


def _coef_contexts(eobs: np.ndarray) -> np.ndarray:
    """Context of every coded coefficient, from the end-of-block positions (n, 3) alone."""
    ctx = []
    for (i, c), e in np.ndenumerate(eobs):
        if e:
            ctx.append(((1 if c else 0) * 4 + _eob_bucket(e)) * 12 + BUCKETS[:e])
    return np.concatenate(ctx) if ctx else np.zeros(0, np.int64)


def code_blocks(coefs: np.ndarray) -> list[bytes]:
    """(n, 3, 64) integer coefficients -> [eob stream, coefficient stream, escapes]."""
    zz = coefs[:, :, ZIGZAG].copy()
    zz[1:, :, 0] -= coefs[:-1, :, 0].copy() if len(coefs) else 0  # DC: DPCM per channel
    nz = zz != 0
    eobs = np.where(nz.any(-1), 64 - np.argmax(nz[:, :, ::-1], axis=-1), 0)
    ce = AdaptiveCoder(65, 3, block=256)
    ce.encode(eobs.ravel(), np.tile(np.arange(3), len(eobs)))
    vals = np.concatenate([zz[i, c, :e] for (i, c), e in np.ndenumerate(eobs)]) if eobs.any() \
        else np.zeros(0, np.int64)
    esc = np.abs(vals) > R
    sym = np.where(esc, ESC, vals + R)
    cc = AdaptiveCoder(ESC + 1, 96, block=1024)
    cc.encode(sym, _coef_contexts(eobs))
    side = bytearray()
    for v in vals[esc].tolist():
        write_varint(side, zigzag(int(v)))
    return [ce.finish(), cc.finish(), bytes(side)]


def decode_blocks(streams: list[bytes], n: int) -> np.ndarray:
    """Inverse of :func:`code_blocks` for ``n`` kept blocks."""
    ce = AdaptiveCoder.decoder(streams[0], 65, 3, block=256)
    eobs = ce.decode(np.tile(np.arange(3), n)).reshape(n, 3)
    ce.check_end()
    cc = AdaptiveCoder.decoder(streams[1], ESC + 1, 96, block=1024)
    sym = cc.decode(_coef_contexts(eobs))
    cc.check_end()
    vals = sym - R
    esc = np.flatnonzero(sym == ESC)
    pos = 0
    for i in esc:
        u, pos = read_varint(streams[2], pos)
        vals[i] = unzigzag(u)
    if pos != len(streams[2]):
        raise FormatError("ablative escape stream has trailing bytes")
    zz = np.zeros((n, 3, 64), np.int64)
    k = 0
    for (i, c), e in np.ndenumerate(eobs):
        zz[i, c, :e] = vals[k:k + e]
        k += e
    zz[:, :, 0] = np.cumsum(zz[:, :, 0], axis=0)
    coefs = np.zeros_like(zz)
    coefs[:, :, ZIGZAG] = zz
    return coefs


class _Net:
    def __init__(self, arrays: dict[str, np.ndarray], device: str) -> None:
        import torch

        from ..nn.inpaint import InpaintNet

        net = InpaintNet(int(arrays["arch"][0]))
        sd = net.state_dict()
        if any(k not in arrays for k in sd):
            raise ModelError("ablative weights are incomplete")
        net.load_state_dict({k: torch.from_numpy(np.asarray(arrays[k], np.float32)) for k in sd})
        self.net = net.eval().double().to(device)  # float64: same pixels on every CPU
        self.device = device


def _net(model_id: str, sha: str, device: str) -> _Net:
    from ..weights import runtime

    return runtime(_Net, model_id, sha, device)


def inpaint(net: _Net, kept: np.ndarray, mask_px: np.ndarray) -> np.ndarray:
    """uint8 image from kept pixels (uint8, zeros elsewhere) and the pixel mask."""
    import torch

    x = torch.from_numpy(kept.transpose(2, 0, 1).astype(np.float64) / 255.0)[None].to(net.device)
    m = torch.from_numpy(mask_px.astype(np.float64))[None, None].to(net.device)
    with torch.no_grad():
        p = net.net(x, m)[0].clamp(0, 1)
    out = np.rint(p.double().cpu().numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
    return np.where(mask_px[..., None], kept, out)


@register
class AblativeCodec(Codec):
    name = "ablative"
    codec_id = 10
    version = 1
    channels = (3,)
    description = "keep edge + random 8x8 blocks, inpaint the rest with a trained network (seed 004)"
    encode_options = (
        Option("model", str, None, "weights id (default: the installed default)"),
        Option("block_quality", int, 50, "DCT quality of the kept blocks", lo=1, hi=100),
        Option("random_share", float, 0.25, "share of kept blocks drawn at random", lo=0.0, hi=1.0),
    )

    def quality_range(self) -> tuple[float, float]:
        return (0.0, 100.0)

    def encode(self, image: np.ndarray, quality: float | None = None, **options: Any) -> Encoded:
        opts = self.encode_opts(options)
        frac = clamp_quality(quality, 20.0) / 100.0
        h, w, _ = image.shape
        if h * w > MAX_PIXELS:
            raise InputError(f"ablative codes images up to {MAX_PIXELS} pixels, got {w}x{h}")
        model_id, sha = _model_ref(opts.get("model"), "ablative")
        bq, rs = opts["block_quality"], opts["random_share"]
        mask = select_blocks(image, frac, rs, np.random.default_rng(0))
        if not mask.any():
            mask.flat[0] = True
        coefs = quantize_blocks(image, mask, bq)
        streams = [encode_mask(mask), *code_blocks(coefs)]
        params = {"f": int(round(frac * 10000)), "b": int(bq), "r": int(round(rs * 1000))}
        notes = [f"kept {int(mask.sum())}/{mask.size} blocks"]
        return Encoded(params, streams, model_id=model_id, model_sha256=sha, notes=notes)

    def decode(self, params, streams, width, height, channels, model_id="", model_sha256="",
               **options) -> np.ndarray:
        opts = self.decode_opts(options)
        try:
            bq = int(params["b"])
        except (KeyError, TypeError, ValueError):
            raise FormatError("ablative params missing or malformed") from None
        if not 1 <= bq <= 100 or channels != 3 or len(streams) != 4:
            raise FormatError("ablative params or streams out of range")
        if width * height > MAX_PIXELS:
            raise FormatError("ablative image too large")
        if not model_id:
            raise FormatError("ablative file names no model")
        mask = decode_mask(streams[0], (-(-height // B), -(-width // B)))
        coefs = decode_blocks(streams[1:], int(mask.sum()))
        kept = np.clip(np.rint(dequantize_blocks(coefs, mask, bq)), 0, 255).astype(np.uint8)
        mask_px = np.repeat(np.repeat(mask, B, 0), B, 1)
        net = _net(model_id, model_sha256, _device(opts.get("device")))
        return inpaint(net, kept, mask_px)[:height, :width]
