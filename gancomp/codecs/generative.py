"""``generative`` (codec id 9): generative compression at very low rates (seed 002, HiFiC-like).

One quantized latent (mean-scale hyperprior, integer entropy model, bit-exact on any machine)
and two decoders of it, chosen at decode time with ``--decoder gan|mse`` (default gan): a GAN
generator that synthesizes plausible texture, or the MSE synthesis (blurrier, more faithful).

Selective generative compression: ``keep_mask`` (a PNG, white = keep) or ``keep=auto`` codes
the chosen 16x16 blocks at the rate of ``keep_quality`` (default 100) and the rest at the
rate of ``-q``; the block mask is coded in the file. The GAN decoder shows the MSE synthesis in
kept blocks (feathered 8 px into the synthesized area), so kept regions are not invented.
``keep=auto`` keeps the ``keep_fraction`` (default 0.2) of blocks with the highest edge
density (mean Sobel gradient magnitude of the luma in the block).

Params: ``q`` quality x100, ``k`` keep quality x100 (-1: no mask), ``t`` tile, ``h`` 32-bit
hash of the decoded latent state, ``s`` (version 2; 1 by default, 0 in version-1 files):
the GAN decoder smooths the generator's residual with [1 2 1]/4 (written as 1 for
half-resolution generators). Streams: [mask] then per tile the z and y streams.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ..entropy import AdaptiveCoder, decode_indexed, encode_indexed
from ..errors import FormatError, InputError, ModelError
from .base import Codec, Encoded, Option, clamp_quality, register
from .base import torch_device as _device
from .hyperprior import PAD, _padded, _state_hash, _tiles, load_int_entropy

BLOCK = 16
DEFAULT_TILE = 1024
DEFAULT_QUALITY = 30.0


class _Runtime:
    """A loaded generative model: float transforms in torch, integer h_s and tables in numpy."""

    def __init__(self, arrays: dict[str, np.ndarray], device: str = "cpu") -> None:
        import torch

        from ..nn.generative import GenerativeModel

        arch = [int(v) for v in arrays["arch"]]
        N, M, Nh, width, noise = arch[:5]
        last = arch[5] if len(arch) > 5 else width
        kind = arch[6] if len(arch) > 6 else 1  # 2: half-resolution generator
        if kind not in (1, 2):
            raise ModelError(f"unknown generator kind {kind}")
        lambdas = tuple(np.exp(arrays["log_lambdas"].astype(np.float64)).tolist())
        model = GenerativeModel(N, M, Nh, lambdas, width, bool(noise), last, kind)
        state = {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in arrays.items()
                 if k.startswith(("g_a.", "g_s.", "h_a.", "gen.")) or k in (
                     "log_gain", "log_inv_gain", "log_lambdas")}
        need = [k for k in model.state_dict() if k.startswith(("g_a.", "g_s.", "gen."))]
        if any(k not in state for k in need):
            raise ModelError("generative weights are incomplete")
        model.load_state_dict(state, strict=False)
        # float64 transforms: float32 convolutions round differently per CPU kernel set and
        # thread count, which moved a few pixels by one level across machines
        self.model = model.eval().double().to(device)
        self.device = device
        self.M = M
        load_int_entropy(self, arrays)
        so = arrays.get("scale_offsets")  # absent before gen-a2: no offsets, as it was coded
        self.scale_offsets = None if so is None else np.asarray(so, np.int64).reshape(
            model.levels, M)
        # decoder-side strength of the generator's residual (chosen on training crops)
        self.strength = float(arrays["gen_strength"][0]) if "gen_strength" in arrays else 1.0

    def offsets(self, q100: np.ndarray) -> np.ndarray | None:
        """(M, h, w) integer log-scale offsets (at 2^8) for a grid of integer qualities
        (0..10000): per-level offsets interpolated in integer arithmetic, as in hyperprior."""
        so = self.scale_offsets
        if so is None:
            return None
        p = q100.astype(np.int64) * (so.shape[0] - 1)
        i = np.minimum(p // 10000, so.shape[0] - 2)
        r = p - i * 10000
        return ((so[i] * (10000 - r)[..., None] + so[i + 1] * r[..., None]) // 10000
                ).transpose(2, 0, 1)

    def gains(self, tmap: np.ndarray):
        import torch

        t = torch.from_numpy(tmap.astype(np.float64))[None].to(self.device)
        return self.model.gain_maps(t)

    def entropy_params(self, z_hat: np.ndarray, offset: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Integer means (at 2^8) and scale indexes from integer z: exact on any machine.
        ``offset`` (M, h, w) is added to the integer log-scales first."""
        from ..nn.intnet import run

        out = run(self.hs, z_hat)
        log_s = out[self.M:].astype(np.int64)
        if offset is not None:
            log_s = log_s + offset
        return out[:self.M].astype(np.int64), np.searchsorted(self.bounds, log_s, side="right")

    def z_index(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.broadcast_to(np.arange(shape[0])[:, None, None], shape)


def _any_runtime(arrays: dict[str, np.ndarray], device: str = "cpu"):
    """A latent model (:class:`_Runtime`) or a generator v3 on wavelet2 (version 3 files)."""
    if "w2gen_arch" in arrays:
        from .generative_w2 import BaseRuntime

        return BaseRuntime(arrays, device)
    return _Runtime(arrays, device)


def _runtime(model_id: str, sha: str, device: str):
    from ..weights import runtime

    return runtime(_any_runtime, model_id, sha, device)


def _model_ref(model: str | None, codec: str = "generative") -> tuple[str, str]:
    from ..weights import model_ref

    return model_ref(model, codec)


# ---------------------------------------------------------------------------------------------
# keep masks


def edge_density(image: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """Mean Sobel gradient magnitude of the luma per ``block`` x ``block`` block."""
    y = image[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    p = np.pad(y, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    return _block_mean(np.hypot(gx, gy), block)


def _block_mean(a: np.ndarray, block: int) -> np.ndarray:
    h, w = a.shape
    bh, bw = -(-h // block), -(-w // block)
    p = np.pad(a, ((0, bh * block - h), (0, bw * block - w)), mode="edge")
    return p.reshape(bh, block, bw, block).mean(axis=(1, 3))


def auto_mask(image: np.ndarray, fraction: float) -> np.ndarray:
    """Block mask (True = keep) of the ``fraction`` of blocks with the most edges."""
    d = edge_density(image)
    n = int(round(fraction * d.size))
    if n <= 0:
        return np.zeros(d.shape, bool)
    order = np.argsort(-d, axis=None, kind="stable")[:n]
    m = np.zeros(d.size, bool)
    m[order] = True
    return m.reshape(d.shape)


def mask_from_pixels(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Block mask from a pixel mask (white = keep): a block is kept if any pixel is white."""
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[..., :3].mean(axis=2) if m.shape[2] >= 3 else m[..., 0]
    if m.shape != tuple(shape):
        raise InputError(f"keep mask is {m.shape[1]}x{m.shape[0]}, image is {shape[1]}x{shape[0]}")
    return _block_mean((m >= 128).astype(np.float64), BLOCK) > 0


def load_mask(path: str, shape: tuple[int, int]) -> np.ndarray:
    from ..imageio import load_image

    return mask_from_pixels(load_image(path).pixels, shape)


def _row_contexts(prev: np.ndarray) -> np.ndarray:
    """Contexts of a mask row from the row above (above-left, above, above-right)."""
    p = np.pad(prev.astype(np.int64), 1)
    return p[:-2] + 2 * p[1:-1] + 4 * p[2:]


def encode_mask(m: np.ndarray) -> bytes:
    """Block mask -> bytes (adaptive binary coder, 8 contexts from the row above)."""
    coder = AdaptiveCoder(2, 8, block=64)
    prev = np.zeros(m.shape[1], bool)
    for row in m:  # row by row, so the decoder knows each row's contexts
        coder.encode(row.astype(np.int32), _row_contexts(prev))
        prev = row
    return coder.finish()


def decode_mask(data: bytes, shape: tuple[int, int]) -> np.ndarray:
    coder = AdaptiveCoder.decoder(data, 2, 8, block=64)
    m = np.zeros(shape, bool)
    prev = np.zeros(shape[1], bool)
    for r in range(shape[0]):
        m[r] = coder.decode(_row_contexts(prev)).astype(bool)
        prev = m[r]
    coder.check_end()
    return m


def smooth_121(r):
    """[1 2 1]/4 in both directions (edges replicated): removes the 2-pixel-period grid that
    the half-resolution generator's pixel shuffle adds (about 40 % of its residual energy,
    which SSIMULACRA2 does not reward either). Elementwise float64 sums in a fixed order, so
    every machine gets the same values."""
    import torch.nn.functional as F

    p = F.pad(r, (1, 1, 1, 1), mode="replicate")
    h = (p[..., :, :-2] + 2 * p[..., :, 1:-1] + p[..., :, 2:]) * 0.25
    return (h[..., :-2, :] + 2 * h[..., 1:-1, :] + h[..., 2:, :]) * 0.25


def blend_weight(m: np.ndarray, h: int, w: int, feather: int = 8) -> np.ndarray:
    """Per-pixel weight of the kept reconstruction: 1 in kept blocks, fading to 0 over
    ``feather`` pixels outside them (integer box filter, exact everywhere)."""
    up = np.repeat(np.repeat(m.astype(np.int64), BLOCK, 0), BLOCK, 1)[:h, :w]
    k = 2 * feather + 1
    p = np.pad(up, feather, mode="edge")
    c = np.pad(p.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    box = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
    return np.maximum(up.astype(np.float64), box / float(k * k))


@register
class GenerativeCodec(Codec):
    name = "generative"
    codec_id = 9
    # 2: param "s" (smoothed generator residual), default 1; version-1 files: 0.
    # 3: "b" = 1: a wavelet2 bitstream + generator v3 (codecs/generative_w2.py); files of
    # latent models are still written as version 2
    version = 3
    channels = (3,)
    description = "GAN decoder for very low rates (seed 002, HiFiC-like), --decoder gan|mse"
    encode_options = (
        Option("model", str, None, "weights id (default: the installed default)"),
        Option("tile", int, DEFAULT_TILE, "independent tiles of this size (multiple of 64)",
               lo=64, hi=4096),
        Option("keep_mask", str, None, "PNG mask, white = keep these regions at high fidelity"),
        Option("keep", str, None, "auto: keep the blocks with the most edges", choices=("auto",)),
        Option("keep_fraction", float, 0.2, "share of blocks kept by keep=auto", lo=0.0, hi=1.0),
        Option("keep_quality", float, 100.0, "quality of kept regions", lo=0.0, hi=100.0),
        Option("tune", int, 1, "wavelet2-based models: 1 = pick the generator strength by "
               "SSIMULACRA2 against the original (stored in the file), 0 = the default", lo=0,
               hi=1),
    )
    decode_options = (
        Option("decoder", str, "gan", "gan: synthesized texture; mse: the MSE synthesis of the "
               "same latent", choices=("gan", "mse")),
    )

    def file_defaults(self, version: int) -> dict[str, Any]:
        return {"s": 0} if version < 2 else {"s": 1}

    def quality_range(self) -> tuple[float, float]:
        return (0.0, 100.0)

    def sweep_qualities(self) -> list[float]:
        return [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]

    def encode(self, image: np.ndarray, quality: float | None = None, **options: Any) -> Encoded:
        import torch

        mask_arr = options.pop("keep_mask", None) if isinstance(options.get("keep_mask"),
                                                                 np.ndarray) else None
        opts = self.encode_opts(options)
        q100 = int(round(clamp_quality(quality, DEFAULT_QUALITY) * 100))
        tile = opts["tile"]
        if tile % PAD:
            raise InputError(f"tile must be a multiple of {PAD}, got {tile}")
        h, w, _ = image.shape
        mask = None
        if mask_arr is not None:
            mask = mask_from_pixels(mask_arr, (h, w))
        elif opts.get("keep_mask"):
            mask = load_mask(opts["keep_mask"], (h, w))
        elif opts.get("keep") == "auto":
            mask = auto_mask(image, opts["keep_fraction"])
        k100 = int(round(opts["keep_quality"] * 100)) if mask is not None else -1
        model_id, sha = _model_ref(opts.get("model"))
        rt = _runtime(model_id, sha, _device(opts.get("device")))
        if not isinstance(rt, _Runtime):
            from . import generative_w2

            if mask is not None:
                raise InputError(f"model {model_id!r} (wavelet2 base) has no keep masks; "
                                 "use a latent model such as gen-a2-cpu")
            params, streams = generative_w2.encode(rt, image, q100 / 100.0, bool(opts["tune"]))
            return Encoded(params, streams, model_id=model_id, model_sha256=sha, version=3)
        streams: list[bytes] = [encode_mask(mask)] if mask is not None else []
        digest = hashlib.blake2b(digest_size=4)
        with torch.no_grad():
            for (y0, x0, th, tw) in _tiles(h, w, tile):
                part = image[y0:y0 + th, x0:x0 + tw]
                part = np.pad(part, ((0, _padded(th) - th), (0, _padded(tw) - tw), (0, 0)), mode="edge")
                qmap = _q_map(q100, k100, mask, y0, x0, part.shape[0], part.shape[1])
                g, _ = rt.gains(qmap / 10000.0 * (rt.model.levels - 1))
                x = torch.from_numpy(part.transpose(2, 0, 1).astype(np.float64) / 255.0)[None]
                y = rt.model.g_a(x.to(rt.device)) * g
                z_hat = torch.round(rt.model.h_a(y))[0].cpu().numpy().astype(np.int64)
                mean_int, idx = rt.entropy_params(z_hat, rt.offsets(qmap))
                sym = np.rint(y[0].double().cpu().numpy() - mean_int / 256.0).astype(np.int64)
                streams.append(encode_indexed(z_hat, rt.z_index(z_hat.shape), rt.z_freqs, rt.z_offsets))
                streams.append(encode_indexed(sym, idx, rt.y_freqs, rt.y_offsets))
                _state_hash(digest, z_hat, sym, mean_int, idx)
        params = {"q": q100, "k": k100, "t": tile, "h": int.from_bytes(digest.digest(), "little"),
                  "s": int(rt.model.gen_kind == 2)}
        notes = [f"kept {int(mask.sum())}/{mask.size} blocks"] if mask is not None else []
        return Encoded(params, streams, model_id=model_id, model_sha256=sha, notes=notes,
                       version=2)

    def trial_encoder(self, image: np.ndarray, **options: Any):
        """``quality -> Encoded`` for rate control. With a wavelet2-based model (version 3, no
        keep mask) the transform is computed once and each distinct step coded once; the
        strength search (``tune``) still runs per trial. Latent models encode afresh."""
        array_mask = isinstance(options.get("keep_mask"), np.ndarray)
        opts = self.encode_opts({k: v for k, v in options.items()
                                 if not (array_mask and k == "keep_mask")})
        model_id, sha = _model_ref(opts.get("model"))
        masked = array_mask or opts.get("keep_mask") or opts.get("keep")
        rt = None if masked else _runtime(model_id, sha, _device(opts.get("device")))
        if rt is None or isinstance(rt, _Runtime):
            return lambda quality: self.encode(image, quality, **options)
        from . import generative_w2

        trial = generative_w2.trial_encoder(rt, image, bool(opts["tune"]))

        def run(quality: float | None) -> Encoded:
            q100 = int(round(clamp_quality(quality, DEFAULT_QUALITY) * 100))
            params, streams = trial(q100 / 100.0)
            return Encoded(params, streams, model_id=model_id, model_sha256=sha, version=3)

        return run

    def decode(self, params, streams, width, height, channels, model_id="", model_sha256="",
               **options) -> np.ndarray:
        import torch

        opts = self.decode_opts(options)
        if "b" in params:
            from . import generative_w2

            if not model_id:
                raise FormatError("generative file names no model")
            dev = _device(opts.get("device"))
            return generative_w2.decode(lambda: _runtime(model_id, model_sha256, dev), params,
                                        streams, width, height, opts["decoder"] == "gan")
        try:
            q100, k100, tile, want = (int(params[k]) for k in ("q", "k", "t", "h"))
            smooth = int(params.get("s", 0))
        except (KeyError, TypeError, ValueError):
            raise FormatError("generative params missing or malformed") from None
        if smooth not in (0, 1):
            raise FormatError("generative params out of range")
        if not 0 <= q100 <= 10000 or not -1 <= k100 <= 10000 or not 64 <= tile <= 4096 \
                or tile % PAD or channels != 3:
            raise FormatError("generative params out of range")
        tiles = _tiles(height, width, tile)
        has_mask = k100 >= 0
        if len(streams) != 2 * len(tiles) + int(has_mask):
            raise FormatError(f"generative expects {2 * len(tiles) + int(has_mask)} streams, "
                              f"file has {len(streams)}")
        if not model_id:
            raise FormatError("generative file names no model")
        mask = decode_mask(streams[0], (-(-height // BLOCK), -(-width // BLOCK))) if has_mask else None
        streams = streams[int(has_mask):]
        rt = _runtime(model_id, model_sha256, _device(opts.get("device")))
        if not isinstance(rt, _Runtime):
            raise FormatError(f"model {model_id!r} has no latent decoder for this file")
        gan = opts["decoder"] == "gan"
        out = np.empty((height, width, 3), dtype=np.uint8)
        digest = hashlib.blake2b(digest_size=4)
        with torch.no_grad():
            for k, (y0, x0, th, tw) in enumerate(tiles):
                ph, pw = _padded(th), _padded(tw)
                qmap = _q_map(q100, k100, mask, y0, x0, ph, pw)
                _, ig = rt.gains(qmap / 10000.0 * (rt.model.levels - 1))
                zs = (rt.z_freqs.shape[0], ph // PAD, pw // PAD)
                z_hat = decode_indexed(streams[2 * k], rt.z_index(zs), rt.z_freqs,
                                       rt.z_offsets).reshape(zs)
                mean_int, idx = rt.entropy_params(z_hat, rt.offsets(qmap))
                sym = decode_indexed(streams[2 * k + 1], idx, rt.y_freqs, rt.y_offsets)
                sym = sym.reshape(mean_int.shape)
                _state_hash(digest, z_hat, sym, mean_int, idx)
                y_hat = torch.from_numpy(sym + mean_int / 256.0)[None]
                y_hat = y_hat.to(rt.device) * ig
                x_mse = rt.model.g_s(y_hat).clamp(0, 1)
                pix = x_mse
                if gan:
                    noise = torch.from_numpy(np.random.default_rng(k).standard_normal(
                        rt.model.gen.noise_shape(x_mse))).to(rt.device)
                    res = rt.model.gen(y_hat, x_mse, noise) - x_mse
                    if smooth:
                        res = smooth_121(res)
                    pix = (x_mse + rt.strength * res).clamp(0, 1)
                pix = (pix[0] * 255).double().cpu().numpy().transpose(1, 2, 0)[:th, :tw]
                if gan and mask is not None:
                    wgt = blend_weight(mask, height, width)[y0:y0 + th, x0:x0 + tw, None]
                    keep = (x_mse[0] * 255).double().cpu().numpy().transpose(1, 2, 0)[:th, :tw]
                    pix = wgt * keep + (1 - wgt) * pix
                out[y0:y0 + th, x0:x0 + tw] = np.clip(np.rint(pix), 0, 255).astype(np.uint8)
        if int.from_bytes(digest.digest(), "little") != want:
            raise FormatError("generative latent hash mismatch (entropy-model desync or corrupt stream)")
        return out


def _q_map(q100: int, k100: int, mask: np.ndarray | None, y0: int, x0: int,
           ph: int, pw: int) -> np.ndarray:
    """Integer qualities (x100) on a tile's latent grid: -q's everywhere, keep quality in kept
    blocks (the rate position of a cell is q / 10000 * (levels - 1))."""
    hl, wl = ph // BLOCK, pw // BLOCK
    q = np.full((hl, wl), q100, np.int64)
    if mask is not None:
        rows = np.minimum(y0 // BLOCK + np.arange(hl), mask.shape[0] - 1)
        cols = np.minimum(x0 // BLOCK + np.arange(wl), mask.shape[1] - 1)
        q = np.where(mask[np.ix_(rows, cols)], k100, q)
    return q
