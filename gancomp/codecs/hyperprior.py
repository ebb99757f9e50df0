"""``hyperprior``: the learned transform codec (Ballé et al. 2018 hyperprior with the
mean-scale Gaussian conditional of Minnen et al. 2018, gain units of Cui et al. 2021 for a
continuous ``--quality``).

Codec version 2 (layout 2, param ``l`` = 2): the image, edge-padded to a multiple of 64, has
one latent y = g_a(x) * gain(q), computed in overlapping tiles (64 px of context, cropped);
z = round(h_a(y)) is coded with the factorized prior's integer tables (one row per channel).
The decoder side runs h_s as an integer network (exact in float64, see
:mod:`gancomp.nn.intnet`) giving means at 1/256 and log-scales at 1/256; an integer
per-(rate level, channel) log-scale offset stored with the weights (interpolated between
levels in integer arithmetic) is added before the log-scale is quantized to an index into a
fixed table of 64 scales by integer thresholds; y symbols round(y - mean) are coded with the
integer Gaussian tables stored in the weights. Tiles of ``t`` pixels split the latent into
streams; each tile's means and scales come from h_s over its z neighbourhood (4 z positions of
context), so they equal the whole-image values exactly, and g_s runs on overlapping latent
tiles (4 latent positions of context): no seam at tile edges. Pixels come from the float g_s.

Codec version 3 adds ``--adapt`` (param ``a`` = 1, absent = 0): one more stream after the
tiles holds per-image least-squares refits (:mod:`gancomp.codecs.refit`, shared with ``ae
--finetune``): bit 0 of ``a``, the centre taps of g_s's last layer per output phase plus a
per-phase bias ((N+1) x 12 numbers, a 1x1 conv of its input features, pixel-shuffled); bit
1, a loop filter on the decoded 8-bit image. Each is counted in the size and kept only when
it lowers bpp + lambda * 255^2 * MSE. Files without ``a`` are version-2 bitstreams and are
written as version 2 (``Encoded.version``), so builds that predate ``--adapt`` read them.

Codec version 1 (hp-a1 files, no ``l``): independent image tiles, each padded by itself
(decoded as before; the seams they show are why layout 2 exists).

Params: ``q`` quality * 100 (int), ``t`` tile size, ``l`` layout, ``h`` a 32-bit hash of the
decoded latent state (per tile: z symbols, y symbols, means, scale indexes) that catches any
desync. Streams: per tile, the z stream then the y stream (gancomp.entropy indexed framing).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from .. import progress
from ..entropy import decode_indexed, encode_indexed
from ..errors import FormatError, InputError, ModelError
from ..weights import cached_runtime as _cached_runtime  # noqa: F401  (tests clear it)
from .base import Codec, Encoded, Option, clamp_quality, register
from .base import torch_device as _device

PAD = 64
DEFAULT_TILE = 1024
DEFAULT_QUALITY = 50.0


def load_int_entropy(rt: Any, arrays: dict[str, np.ndarray]) -> None:
    """Give a runtime the integer h_s layers (checked) and the integer coding tables of the
    Gaussian-conditional y and the factorized z, as the hyperprior family ships them."""
    from ..nn.intnet import IntLayer

    n = len([k for k in arrays if k.startswith("hs_int.") and k.endswith(".meta")])
    rt.hs = [IntLayer.from_arrays(arrays[f"hs_int.{i}.weight"], arrays[f"hs_int.{i}.bias"],
                                  arrays[f"hs_int.{i}.meta"]) for i in range(n)]
    for layer in rt.hs:
        layer.check()
    rt.y_freqs = arrays["y_freqs"].astype(np.int64)
    rt.y_offsets = arrays["y_offsets"].astype(np.int64)
    rt.bounds = arrays["scale_bounds"].astype(np.int64)
    rt.z_freqs = arrays["z_freqs"].astype(np.int64)
    rt.z_offsets = arrays["z_offsets"].astype(np.int64)


class _Runtime:
    """A loaded model: float transforms in torch, integer h_s and tables in numpy."""

    def __init__(self, arrays: dict[str, np.ndarray], device: str = "cpu") -> None:
        import torch

        from ..nn.hyperprior import HyperpriorModel
        N = arrays["g_a.0.weight"].shape[0]
        M = arrays["g_a.6.weight"].shape[0]
        Nh = arrays["h_a.0.weight"].shape[0]
        lambdas = tuple(np.exp(arrays["log_lambdas"].astype(np.float64)).tolist())
        model = HyperpriorModel(N, M, Nh, lambdas)
        state = {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in arrays.items()
                 if k.startswith(("g_a.", "g_s.", "h_a.")) or k in ("log_gain", "log_inv_gain",
                                                                   "log_lambdas")}
        missing = [k for k in model.state_dict() if k.startswith(("g_a.", "g_s.", "h_a."))
                   and k not in state]
        if missing:
            raise ModelError(f"hyperprior weights lack {missing[0]}")
        model.load_state_dict(state, strict=False)
        self.model = model.eval().to(device)
        self.device = device
        self.M = M
        load_int_entropy(self, arrays)
        levels = int(arrays["log_lambdas"].size)
        so = arrays.get("scale_offsets")   # absent in hp-a1: no offsets, as it was coded
        self.scale_offsets = (np.zeros((levels, M), np.int64) if so is None
                              else np.asarray(so, np.int64).reshape(levels, M))

    def t_of(self, quality: float):
        import torch

        return torch.tensor([quality / 100.0 * (self.model.levels - 1)], device=self.device)

    def scale_offset(self, q100: int) -> np.ndarray:
        """(M,) integer log-scale offsets (at 2^8) at quality ``q100`` (0..10000): the per-level
        offsets interpolated in integer arithmetic, so every machine gets the same values."""
        so = self.scale_offsets
        if so.shape[0] == 1:
            return so[0].copy()
        p = int(q100) * (so.shape[0] - 1)
        i = min(p // 10000, so.shape[0] - 2)
        r = p - i * 10000
        return (so[i] * (10000 - r) + so[i + 1] * r) // 10000

    def entropy_params(self, z_hat: np.ndarray,
                       offset: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Integer means (at 2^8) and scale indexes from integer z: exact on any machine.
        ``offset`` (M,) is added to the log-scales before the scale index is chosen."""
        from ..nn.intnet import run

        out = run(self.hs, z_hat)
        mean_int = out[:self.M].astype(np.int64)
        log_s = out[self.M:].astype(np.int64)
        if offset is not None:
            log_s = log_s + np.asarray(offset, np.int64).reshape(-1, *([1] * (log_s.ndim - 1)))
        idx = np.searchsorted(self.bounds, log_s, side="right")
        return mean_int, idx

    def z_index(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.broadcast_to(np.arange(shape[0])[:, None, None], shape)


def _runtime(model_id: str, sha: str, device: str) -> _Runtime:
    """The loaded model ``model_id``; ModelError unless its SHA-256 starts with ``sha``."""
    from ..weights import runtime

    return runtime(_Runtime, model_id, sha, device)


def _model_ref(model: str | None) -> tuple[str, str]:
    from ..weights import model_ref

    return model_ref(model, "hyperprior")


def _tiles(h: int, w: int, tile: int) -> list[tuple[int, int, int, int]]:
    return [(y, x, min(tile, h - y), min(tile, w - x))
            for y in range(0, h, tile) for x in range(0, w, tile)]


def _padded(n: int) -> int:
    return -(-n // PAD) * PAD


def _state_hash(h: "hashlib._Hash", *arrays: np.ndarray) -> None:
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype="<i8").tobytes())


# Margins of the overlapped tiles of layout 2, each beyond the receptive field of its transform:
# g_a (4 conv5 s2: 30 px), h_s (in z units: < 3) and g_s (in latent units: < 3).
MARGIN_A = 64        # pixels
MARGIN_HS = 4        # z positions (64 px)
MARGIN_S = 4         # latent positions (64 px)


def _window(a: int, n: int, m: int, size: int) -> tuple[int, int]:
    """[a - m, a + n + m) clipped to [0, size)."""
    return max(0, a - m), min(size, a + n + m)


def _analysis(rt: "_Runtime", padded: np.ndarray, tile: int, g):
    """y = g_a(x) * gain of the whole padded image, computed in overlapping tiles (each tile's
    latent cropped from a run with MARGIN_A pixels of context) so tiles leave no trace."""
    import torch

    H, W, _ = padded.shape
    y = torch.empty((rt.M, H // 16, W // 16), dtype=torch.float32)
    for (y0, x0, th, tw) in _tiles(H, W, tile):
        a0, a1 = _window(y0, th, MARGIN_A, H)
        b0, b1 = _window(x0, tw, MARGIN_A, W)
        part = padded[a0:a1, b0:b1]
        x = torch.from_numpy(part.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
        out = rt.model.g_a(x.to(rt.device))[0].cpu()
        oy, ox = (y0 - a0) // 16, (x0 - b0) // 16
        y[:, y0 // 16:(y0 + th) // 16, x0 // 16:(x0 + tw) // 16] = \
            out[:, oy:oy + th // 16, ox:ox + tw // 16]
    return y * g[0].cpu()


def _hs_tile(rt: "_Runtime", z_hat: np.ndarray, y0: int, x0: int, th: int, tw: int,
             offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means and scale indexes of the latent tile at pixels (y0, x0, th, tw), from the integer
    h_s on the z window with MARGIN_HS of context: exactly the whole-image values."""
    zh, zw = z_hat.shape[1:]
    a0, a1 = _window(y0 // PAD, th // PAD, MARGIN_HS, zh)
    b0, b1 = _window(x0 // PAD, tw // PAD, MARGIN_HS, zw)
    mean, idx = rt.entropy_params(z_hat[:, a0:a1, b0:b1], offset)
    oy, ox = (y0 // PAD - a0) * 4, (x0 // PAD - b0) * 4
    sl = (slice(None), slice(oy, oy + th // 16), slice(ox, ox + tw // 16))
    return np.ascontiguousarray(mean[sl]), np.ascontiguousarray(idx[sl])


def _synthesis(rt: "_Runtime", y_hat, ig, height: int, width: int, tile: int,
               delta: np.ndarray | None = None, target: np.ndarray | None = None):
    """Pixels from the whole latent, g_s run on overlapping latent tiles (MARGIN_S of context,
    cropped) so that no seam shows at tile edges. ``delta`` ((N+1, 12), ``--adapt``) adds a
    1x1 conv of g_s's last input features, pixel-shuffled: a refit of the last layer's centre
    taps per output phase plus a per-phase bias. With ``target`` ((H, W, 3) float, the padded
    image) also return the normal equations (G, B) of that refit. Runs on one torch thread:
    with two, this machine's float32 convolutions gave other pixels (measured 2026-12-01 on an
    AVX-512 EPYC), so a file must decode the same whatever the caller's thread count."""
    from ..nn import one_thread

    with one_thread():   # float g_s: more threads split its sums differently (other pixels)
        return _synthesis_1t(rt, y_hat, ig, height, width, tile, delta, target)


def _synthesis_1t(rt: "_Runtime", y_hat, ig, height: int, width: int, tile: int,
                  delta: np.ndarray | None, target: np.ndarray | None):
    import torch
    from torch.nn import functional as F

    out = np.empty((height, width, 3), dtype=np.uint8)
    Lh, Lw = y_hat.shape[1:]
    t = tile // 16
    G = B = None
    head, last = rt.model.g_s[:-1], rt.model.g_s[-1]
    dt = None if delta is None else torch.from_numpy(delta.astype(np.float32)).to(rt.device)
    for (u0, v0, uh, vw) in _tiles(Lh, Lw, t):
        a0, a1 = _window(u0, uh, MARGIN_S, Lh)
        b0, b1 = _window(v0, vw, MARGIN_S, Lw)
        part = y_hat[None, :, a0:a1, b0:b1].to(rt.device) * ig
        feat = head(part)
        x_hat = last(feat)
        if dt is not None:
            x_hat = x_hat + F.pixel_shuffle(F.conv2d(feat, dt[:-1].T[:, :, None, None], dt[-1]), 2)
        py, px = (u0 - a0) * 16, (v0 - b0) * 16
        h0, w0 = u0 * 16, v0 * 16
        hh, ww = min(uh * 16, height - h0), min(vw * 16, width - w0)
        if target is not None:
            f = feat[0, :, py // 2:(py + uh * 16) // 2, px // 2:(px + vw * 16) // 2].double().cpu()
            A = torch.cat([f.reshape(f.shape[0], -1), torch.ones(1, f[0].numel(), dtype=f.dtype)])
            r = torch.from_numpy(target[h0:h0 + uh * 16, w0:w0 + vw * 16].transpose(2, 0, 1).copy())
            r = r - x_hat[0, :, py:py + uh * 16, px:px + vw * 16].double().cpu()
            T = F.pixel_unshuffle(r[None], 2)[0].reshape(12, -1)
            G = A @ A.T if G is None else G + A @ A.T
            B = A @ T.T if B is None else B + A @ T.T
        pix = torch.round(x_hat[0].clamp(0, 1) * 255).to(torch.uint8).cpu().numpy().transpose(1, 2, 0)
        if hh > 0 and ww > 0:
            out[h0:h0 + hh, w0:w0 + ww] = pix[py:py + hh, px:px + ww]
    return out if target is None else (out, G.numpy(), B.numpy())


@register
class HyperpriorCodec(Codec):
    name = "hyperprior"
    codec_id = 3
    version = 3             # 3: optional loop-filter stream (param ``a``)
    channels = (3,)
    description = "learned mean-scale hyperprior (Ballé 2018 / Minnen 2018), deterministic decoding"
    encode_options = (
        Option("model", str, None, "weights id (default: the default hyperprior model)"),
        Option("tile", int, DEFAULT_TILE, "tile size in pixels, a multiple of 64: bounds memory "
               "(tiles overlap, so they leave no seams)", lo=64, hi=4096),
        Option("adapt", bool, None, "per-image least-squares refit of g_s's last layer and a "
               "loop filter on the decoded image, coded in the file; each kept only when it "
               "lowers rate + lambda * distortion"),
    )

    def file_defaults(self, version: int) -> dict[str, Any]:
        return {"a": 0} if version >= 3 else {}

    def quality_range(self) -> tuple[float, float]:
        return (0.0, 100.0)

    def sweep_qualities(self) -> list[float]:
        return [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]

    def encode(self, image: np.ndarray, quality: float | None = None, **options: Any) -> Encoded:
        import torch

        opts = self.encode_opts(options)
        q100 = int(round(clamp_quality(quality, DEFAULT_QUALITY) * 100))
        tile = opts["tile"]
        if tile % PAD:
            raise InputError(f"tile must be a multiple of {PAD} in 64..4096, got {tile}")
        model_id, sha = _model_ref(opts.get("model"))
        rt = _runtime(model_id, sha, _device(opts.get("device")))
        t = rt.t_of(q100 / 100.0)
        h, w, _ = image.shape
        H, W = _padded(h), _padded(w)
        padded = np.pad(image, ((0, H - h), (0, W - w), (0, 0)), mode="edge")
        streams: list[bytes] = []
        digest = hashlib.blake2b(digest_size=4)
        off = rt.scale_offset(q100)
        with torch.no_grad():
            g, ig = rt.model.gains(t)
            y = _analysis(rt, padded, tile, g)
            z_hat = torch.round(rt.model.h_a(y[None].to(rt.device)))[0].cpu().numpy().astype(np.int64)
            tiles = _tiles(H, W, tile)
            y_hat = torch.empty_like(y)
            for k, (y0, x0, th, tw) in enumerate(tiles):
                zt = np.ascontiguousarray(z_hat[:, y0 // PAD:(y0 + th) // PAD, x0 // PAD:(x0 + tw) // PAD])
                mean_int, idx = _hs_tile(rt, z_hat, y0, x0, th, tw, off)
                yt = y[:, y0 // 16:(y0 + th) // 16, x0 // 16:(x0 + tw) // 16].double().numpy()
                sym = np.rint(yt - mean_int / 256.0).astype(np.int64)
                streams.append(encode_indexed(zt, rt.z_index(zt.shape), rt.z_freqs, rt.z_offsets))
                streams.append(encode_indexed(sym, idx, rt.y_freqs, rt.y_offsets))
                _state_hash(digest, zt, sym, mean_int, idx)
                y_hat[:, y0 // 16:(y0 + th) // 16, x0 // 16:(x0 + tw) // 16] = \
                    torch.from_numpy((sym + mean_int / 256.0).astype(np.float32))
                progress.update(k + 1, len(tiles), "tiles")
            notes, adapted = [], 0
            if opts.get("adapt"):
                fs, adapted, notes = _adapt(rt, y_hat, ig, tile, padded, image,
                                            float(rt.model.lam(t)), 8 * sum(map(len, streams)))
                streams += fs
        params = {"q": q100, "t": tile, "l": 2, "h": int.from_bytes(digest.digest(), "little")}
        if adapted:  # only a file with the loop-filter stream needs version 3
            params["a"] = adapted
        return Encoded(params, streams, model_id=model_id, model_sha256=sha, notes=notes,
                       version=3 if adapted else 2)

    def decode(self, params, streams, width, height, channels, model_id="", model_sha256="",
               **options) -> np.ndarray:
        opts = self.decode_opts(options)
        try:
            q100, tile, want = int(params["q"]), int(params["t"]), int(params["h"])
            layout = int(params.get("l", 1))
            adapted = int(params.get("a", 0))
            n_adapt = bin(adapted).count("1") if 0 <= adapted <= 3 else 0
        except (KeyError, TypeError, ValueError):
            raise FormatError("hyperprior params missing or malformed") from None
        if not 0 <= q100 <= 10000 or not 64 <= tile <= 4096 or tile % PAD or channels != 3 \
                or layout not in (1, 2) or not 0 <= adapted <= 3 or (adapted and layout != 2):
            raise FormatError("hyperprior params out of range")
        H, W = (_padded(height), _padded(width)) if layout == 2 else (height, width)
        tiles = _tiles(H, W, tile)
        if len(streams) != 2 * len(tiles) + n_adapt:
            raise FormatError(f"hyperprior expects {2 * len(tiles) + n_adapt} streams, file has "
                              f"{len(streams)}")
        if not model_id:
            raise FormatError("hyperprior file names no model")
        rt = _runtime(model_id, model_sha256, _device(opts.get("device")))
        if layout == 1:
            return _decode_layout1(rt, q100, tiles, streams, width, height, tile, want)
        extra = streams[2 * len(tiles):]
        delta = filt = None
        if adapted:
            from .refit import CoefCoder, decode_filter

            coder = CoefCoder(rt.y_freqs, rt.y_offsets)
            if adapted & 1:
                n = rt.model.g_s[-1].weight.shape[0] + 1
                delta = coder.decode(extra.pop(0), n * 12).reshape(n, 12)
            if adapted & 2:
                filt = decode_filter(coder, extra.pop(0))
        out = _decode_layout2(rt, q100, tiles, streams[:2 * len(tiles)], width, height, tile,
                              want, delta)
        if filt is not None:
            from .refit import apply_filter

            out = _to_u8(apply_filter(out.transpose(2, 0, 1) / 255.0, *filt))
        return out


def _to_u8(img: np.ndarray) -> np.ndarray:
    """(3, H, W) float [0, 1] -> (H, W, 3) uint8."""
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0).copy()


def _adapt(rt: _Runtime, y_hat, ig, tile: int, padded: np.ndarray, image: np.ndarray,
           lam: float, bits0: float) -> tuple[list[bytes], int, list[str]]:
    """The ``--adapt`` streams and flags (bit 0: last-layer refit, bit 1: loop filter) for
    ``image`` (H, W, 3) uint8, each stage kept only when it lowers bpp + lam * 255^2 * MSE
    measured on the decoded 8-bit image (the refits of ``ae --finetune``,
    :mod:`gancomp.codecs.refit`)."""
    from .refit import CoefCoder, best_quantized, loop_filter

    h, w, _ = image.shape
    coder = CoefCoder(rt.y_freqs, rt.y_offsets)
    rec, G, B = _synthesis(rt, y_hat, ig, h, w, tile, target=padded / 255.0)
    x = image.transpose(2, 0, 1) / 255.0
    npix = h * w
    sse = float(((rec.transpose(2, 0, 1) / 255.0 - x) ** 2).sum())
    streams: list[bytes] = []
    flags, nbytes, notes = 0, 0, []

    def j_of(dsse: float, n: int) -> float:
        return (bits0 + 8 * (nbytes + n)) / npix + lam * 255 ** 2 * (sse + dsse) / (3 * npix)

    j0 = j_of(0.0, 0)
    best = best_quantized(G, B, coder.encode, j_of)
    if best is not None and best[0] < j0:
        rec1 = _synthesis(rt, y_hat, ig, h, w, tile, delta=best[2])
        sse1 = float(((rec1.transpose(2, 0, 1) / 255.0 - x) ** 2).sum())
        j1 = j_of(sse1 - sse, len(best[1]))
        notes.append(f"adapt last layer: J {j0:.4f} -> {j1:.4f} with {len(best[1])} bytes")
        if j1 < j0:
            streams.append(best[1])
            flags |= 1
            rec, sse, j0, nbytes = rec1, sse1, j1, len(best[1])
    lf = loop_filter(coder, rec.transpose(2, 0, 1) / 255.0, x, j_of)
    if lf is not None:
        notes.append(f"adapt loop filter r={lf[3]}: J {j0:.4f} -> {lf[2]:.4f} with "
                     f"{len(lf[0])} bytes")
        streams.append(lf[0])
        flags |= 2
    if not flags:
        notes.append("adapt: no gain, not stored")
    return streams, flags, notes


def _decode_layout1(rt: _Runtime, q100: int, tiles, streams, width: int, height: int,
                    tile: int, want: int) -> np.ndarray:
    """Files of codec version 1 (hp-a1): independent image tiles, each padded by itself."""
    import torch

    t = rt.t_of(q100 / 100.0)
    off = rt.scale_offset(q100)
    out = np.empty((height, width, 3), dtype=np.uint8)
    digest = hashlib.blake2b(digest_size=4)
    from ..nn import one_thread

    with torch.no_grad(), one_thread():   # one thread: see _synthesis
        _, ig = rt.model.gains(t)
        for k, (y0, x0, th, tw) in enumerate(tiles):
            ph, pw = _padded(th), _padded(tw)
            zs = (rt.z_freqs.shape[0], ph // PAD, pw // PAD)
            z_hat = decode_indexed(streams[2 * k], rt.z_index(zs), rt.z_freqs,
                                   rt.z_offsets).reshape(zs)
            mean_int, idx = rt.entropy_params(z_hat, off)
            sym = decode_indexed(streams[2 * k + 1], idx, rt.y_freqs, rt.y_offsets)
            sym = sym.reshape(mean_int.shape)
            _state_hash(digest, z_hat, sym, mean_int, idx)
            y_hat = torch.from_numpy((sym + mean_int / 256.0).astype(np.float32))[None]
            x_hat = rt.model.g_s(y_hat.to(rt.device) * ig)[0].clamp(0, 1)
            pix = torch.round(x_hat * 255).to(torch.uint8).cpu().numpy().transpose(1, 2, 0)
            out[y0:y0 + th, x0:x0 + tw] = pix[:th, :tw]
            progress.update(k + 1, len(tiles), "tiles")
    if int.from_bytes(digest.digest(), "little") != want:
        raise FormatError("hyperprior latent hash mismatch (entropy-model desync or corrupt stream)")
    return out


def _decode_layout2(rt: _Runtime, q100: int, tiles, streams, width: int, height: int,
                    tile: int, want: int, delta: np.ndarray | None = None) -> np.ndarray:
    """Latent tiles of one whole-image latent: all z first, then each tile's y with means and
    scales from h_s over its z neighbourhood, then g_s on overlapping latent tiles."""
    import torch

    t = rt.t_of(q100 / 100.0)
    off = rt.scale_offset(q100)
    H, W = _padded(height), _padded(width)
    z_hat = np.empty((rt.z_freqs.shape[0], H // PAD, W // PAD), dtype=np.int64)
    for k, (y0, x0, th, tw) in enumerate(tiles):
        zs = (z_hat.shape[0], th // PAD, tw // PAD)
        z_hat[:, y0 // PAD:(y0 + th) // PAD, x0 // PAD:(x0 + tw) // PAD] = decode_indexed(
            streams[2 * k], rt.z_index(zs), rt.z_freqs, rt.z_offsets).reshape(zs)
    y_hat = torch.empty((rt.M, H // 16, W // 16), dtype=torch.float32)
    digest = hashlib.blake2b(digest_size=4)
    for k, (y0, x0, th, tw) in enumerate(tiles):
        mean_int, idx = _hs_tile(rt, z_hat, y0, x0, th, tw, off)
        sym = decode_indexed(streams[2 * k + 1], idx, rt.y_freqs, rt.y_offsets).reshape(mean_int.shape)
        zt = np.ascontiguousarray(z_hat[:, y0 // PAD:(y0 + th) // PAD, x0 // PAD:(x0 + tw) // PAD])
        _state_hash(digest, zt, sym, mean_int, idx)
        y_hat[:, y0 // 16:(y0 + th) // 16, x0 // 16:(x0 + tw) // 16] = \
            torch.from_numpy((sym + mean_int / 256.0).astype(np.float32))
        progress.update(k + 1, len(tiles), "tiles")
    if int.from_bytes(digest.digest(), "little") != want:
        raise FormatError("hyperprior latent hash mismatch (entropy-model desync or corrupt stream)")
    with torch.no_grad():
        _, ig = rt.model.gains(t)
        return _synthesis(rt, y_hat, ig, height, width, tile, delta)
