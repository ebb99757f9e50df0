"""``ae`` (codec id 8): the autoencoder family of seed 001 with entropy-coded latents.

- default: the block CNN-AE (:mod:`gancomp.nn.ae`): 32x32 blocks, each an 8x8xC integer
  latent; the transforms run fully convolutionally over overlapping windows (``TILE`` pixels
  plus a halo), so neighbouring blocks share context and no block grid is visible.
- ``passes=K``: the residual progressive AE (CNN-RNN-AE): pass 1 codes the image, pass k
  codes ``0.5 + RES_SCALE * (x - x_{k-1})`` with the residual model, x_{k-1} being the 8-bit
  reconstruction after k-1 passes. The file holds the passes in order; decoding with
  ``passes=k`` (``gancomp decode --passes k``) uses the first k, and
  :func:`truncate_passes` rewrites a file to its first k passes (a progressive file served
  short). A file with fewer passes than it declares decodes only when ``passes`` asks for
  at most what it holds.
- ``finetune=True`` (CNN-AE-FT): the centre tap and bias of the decoder's last conv (12 x
  (N+1) numbers) are refitted to this image by least squares, quantized, entropy-coded into
  the file and counted in the rate; kept only when bpp + lambda * 255^2 * MSE improves.
- ``decoder=gan``: the synthesis trained with L2 + a least-squares GAN loss (GAN-AE).

Entropy coding reuses the hyperprior codec's integer Gaussian tables (64 scales, shipped in
the weights) through :func:`gancomp.entropy.encode_indexed`; the encoder picks a scale per
channel and a scale offset per 32x32 block (offsets coded adaptively), so the decoder needs
no float computation to rebuild the entropy model: streams decode bit-exactly anywhere.
Pixels come from the float64 synthesis.

Params: ``q`` quality * 100, ``P`` passes, ``g`` 1 for the GAN decoder, ``f`` 1 when a
fine-tune stream follows pass 1. Streams per pass: scales (channel bytes + block offsets),
latent symbols; then, after pass 1, the fine-tune stream when ``f``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from ..entropy import AdaptiveCoder, decode_indexed, encode_indexed
from ..errors import FormatError, InputError, ModelError
from .base import Codec, Encoded, Option, register

BLOCK = 32                  # pixels per block side (latent 8x8)
LB = BLOCK // 4             # latent block side
TILE = 512                  # pixels per transform window side (plus HALO)
HALO = 32                   # pixels of context around each analysis window
OFFSETS = 6                 # block scale offsets -6..6
OFF_STEP = 2                # scale-table steps per offset
RES_SCALE = 4.0
DEFAULT_QUALITY = 50.0


# ---------------------------------------------------------------------------------------------
# model runtime

class _Runtime:
    """Loaded float64 models and the integer tables."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        import torch

        from ..nn.ae import BlockAE, Synthesis

        def sub(prefix: str) -> dict[str, Any]:
            return {k[len(prefix):]: torch.from_numpy(np.asarray(v, np.float64))
                    for k, v in arrays.items() if k.startswith(prefix)}

        try:
            N = arrays["base.g_a.0.weight"].shape[0]
            C = arrays["base.g_a.4.weight"].shape[0]
            lambdas = tuple(np.exp(arrays["base.log_lambdas"].astype(np.float64)).tolist())
            self.base = BlockAE(N, C, lambdas).double().eval()
            self.base.load_state_dict(sub("base."))
            self.res = BlockAE(N, C, lambdas).double().eval()
            self.res.load_state_dict(sub("res."))
            self.gan = Synthesis(N, C).double().eval()
            self.gan.load_state_dict(sub("gan.g_s."))
            self.freqs = arrays["y_freqs"].astype(np.int64)
            self.offsets = arrays["y_offsets"].astype(np.int64)
        except (KeyError, RuntimeError) as exc:
            raise ModelError(f"ae weights incomplete: {exc}") from None
        for m in (self.base, self.res, self.gan):
            m.requires_grad_(False)
        self.N, self.C = N, C
        self.cost = _cost_table(self.freqs, self.offsets)

    def t_of(self, q100: int):
        import torch

        return torch.tensor([q100 / 10000.0 * (self.base.levels - 1)], dtype=torch.float64)


def _cost_table(freqs: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(S, 2V+1) bits to code value v (column v + V) with scale row s, escapes approximated."""
    S, K = freqs.shape
    V = K
    tot = freqs.sum(1, keepdims=True).astype(np.float64)
    bits = -np.log2(np.maximum(freqs, 1) / tot)
    out = np.empty((S, 2 * V + 1))
    v = np.arange(-V, V + 1)
    for s in range(S):
        col = v - offsets[s]
        inside = (col >= 0) & (col < K - 1)
        esc = bits[s, K - 1] + 8 * (1 + np.floor(np.log2(2 * np.abs(v) + 1) / 7))
        out[s] = np.where(inside, bits[s, np.clip(col, 0, K - 2)], esc)
    return out


@lru_cache(maxsize=2)
def _cached_runtime(model_id: str, sha: str, path: str, mtime: float) -> _Runtime:
    from ..weights import load

    arrays, _ = load(model_id, sha)
    return _Runtime(arrays)


def _runtime(model_id: str, sha: str) -> _Runtime:
    from ..weights import card_for_file

    card = card_for_file(model_id, sha)
    if card.codec != "ae":
        raise ModelError(f"model {model_id!r} is for codec {card.codec!r}, not ae")
    return _cached_runtime(model_id, card.sha256, str(card.path), card.path.stat().st_mtime)


def _model_ref(model: str | None) -> tuple[str, str]:
    from ..weights import model_ref

    return model_ref(model, "ae")


# ---------------------------------------------------------------------------------------------
# transforms over overlapping windows

def _windows(n: int, tile: int) -> list[tuple[int, int]]:
    return [(a, min(tile, n - a)) for a in range(0, n, tile)]


def analyze(model, img: np.ndarray, t) -> np.ndarray:
    """(H, W, 3) uint8 or float [0,1] with H, W multiples of BLOCK -> gained latent (C, H/4, W/4)."""
    import torch

    # float32 is enough here: the decoder never reruns the analysis, it reads the symbols
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32))
    if img.dtype == np.uint8:
        x = x / 255.0
    H, W = x.shape[1:]
    g, _ = model.gains(t)
    model = model.float()
    out = np.empty((model.C, H // 4, W // 4))
    with torch.no_grad():
        for y0, th in _windows(H, TILE):
            for x0, tw in _windows(W, TILE):
                a, b = max(0, y0 - HALO), min(H, y0 + th + HALO)
                c, d = max(0, x0 - HALO), min(W, x0 + tw + HALO)
                y = (model.analysis(x[None, :, a:b, c:d]).double() * g)[0].numpy()
                out[:, y0 // 4:(y0 + th) // 4, x0 // 4:(x0 + tw) // 4] = \
                    y[:, (y0 - a) // 4:(y0 - a + th) // 4, (x0 - c) // 4:(x0 - c + tw) // 4]
    model.double()
    return out


def synthesize(syn, y: np.ndarray, target: np.ndarray | None = None):
    """Latent (C, h, w) without gain -> float64 image (3, 4h, 4w) in [0,1] units (unclamped).
    With ``target`` (3, 4h, 4w) also the normal equations (G, B) of the least-squares refit of
    the tail's centre tap and bias."""
    import torch
    from torch.nn import functional as F

    C, h, w = y.shape
    yt = torch.from_numpy(np.ascontiguousarray(y))
    out = np.empty((3, 4 * h, 4 * w))
    G = B = None
    lt, lh = TILE // 4, HALO // 4
    with torch.no_grad():
        for y0, th in _windows(h, lt):
            for x0, tw in _windows(w, lt):
                a, b = max(0, y0 - lh), min(h, y0 + th + lh)
                c, d = max(0, x0 - lh), min(w, x0 + tw + lh)
                part = yt[None, :, a:b, c:d]
                feat = syn.features(part)
                img = 0.5 + F.pixel_shuffle(syn.tail(feat), 2) + syn.skip(part)
                sy, sx = 4 * (y0 - a), 4 * (x0 - c)
                crop = img[0, :, sy:sy + 4 * th, sx:sx + 4 * tw].numpy()
                out[:, 4 * y0:4 * (y0 + th), 4 * x0:4 * (x0 + tw)] = crop
                if target is not None:
                    f = feat[0, :, sy // 2:(sy + 4 * th) // 2, sx // 2:(sx + 4 * tw) // 2]
                    A = torch.cat([f.reshape(f.shape[0], -1), torch.ones(1, f[0].numel(), dtype=f.dtype)])
                    r = torch.from_numpy(target[:, 4 * y0:4 * (y0 + th), 4 * x0:4 * (x0 + tw)] - crop)
                    T = F.pixel_unshuffle(r[None], 2)[0].reshape(12, -1)
                    G = A @ A.T if G is None else G + A @ A.T
                    B = A @ T.T if B is None else B + A @ T.T
    if target is None:
        return out
    return out, G.numpy(), B.numpy()


def _with_delta(syn, delta: np.ndarray | None):
    """A copy of synthesis ``syn`` whose tail centre tap and bias are moved by ``delta``
    ((N+1, 12): rows 0..N-1 weights, row N bias)."""
    import copy

    import torch

    if delta is None:
        return syn
    s = copy.deepcopy(syn)
    with torch.no_grad():
        s.tail.weight[:, :, 1, 1] += torch.from_numpy(delta[:-1].T.copy())
        s.tail.bias += torch.from_numpy(delta[-1].copy())
    return s


def to_uint8(img: np.ndarray) -> np.ndarray:
    """(3, H, W) float [0,1] -> (H, W, 3) uint8."""
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0)


# ---------------------------------------------------------------------------------------------
# latent entropy coding: per-channel scale + per-block offset

def _blocks(sym: np.ndarray) -> np.ndarray:
    C, h, w = sym.shape
    return sym.reshape(C, h // LB, LB, w // LB, LB).transpose(0, 1, 3, 2, 4).reshape(C, -1, LB * LB)


def _scale_index(base: np.ndarray, off: np.ndarray, h: int, w: int) -> np.ndarray:
    """(C, h, w) table rows from channel bases (C,) and block offsets (nb,) in -6..6."""
    ob = off.reshape(h // LB, w // LB).repeat(LB, 0).repeat(LB, 1)
    return np.clip(base[:, None, None] + OFF_STEP * ob[None], 0, 63)


def choose_scales(rt: _Runtime, sym: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Channel base rows and block offsets that (greedily) minimize the code length."""
    V = (rt.cost.shape[1] - 1) // 2
    vi = np.clip(_blocks(sym) + V, 0, 2 * V)                     # (C, nb, 64)
    C, nb, _ = vi.shape
    hist = np.stack([np.bincount(v.ravel(), minlength=2 * V + 1) for v in vi])
    base = np.argmin(hist @ rt.cost.T, axis=1)                   # (C,)
    off = np.zeros(nb, dtype=np.int64)
    cols = np.arange(C)[:, None, None]
    for _ in range(2):
        costs = []
        for o in range(-OFFSETS, OFFSETS + 1):
            rows = np.clip(base + OFF_STEP * o, 0, 63)[:, None, None]
            costs.append(rt.cost[rows, vi].sum(axis=(0, 2)))
        off = np.argmin(np.stack(costs), axis=0) - OFFSETS
        cands = []
        for db in range(-3, 4):
            rows = np.clip(base[:, None, None] + db + OFF_STEP * off[None, :, None], 0, 63)
            cands.append(rt.cost[rows, vi].sum(axis=(1, 2)))
        base = np.clip(base + np.argmin(np.stack(cands), axis=0) - 3, 0, 63)
    del cols
    return base.astype(np.int64), off


def encode_latent(rt: _Runtime, sym: np.ndarray) -> list[bytes]:
    """Two streams: scales (C base bytes + adaptive offsets) and the symbols."""
    C, h, w = sym.shape
    base, off = choose_scales(rt, sym)
    ac = AdaptiveCoder(2 * OFFSETS + 1, 1, block=256)
    ac.encode(off + OFFSETS, np.zeros(off.size, dtype=np.int64))
    idx = _scale_index(base, off, h, w)
    return [bytes(base.astype(np.uint8)) + ac.finish(),
            encode_indexed(sym, idx, rt.freqs, rt.offsets)]


def decode_latent(rt: _Runtime, streams: list[bytes], C: int, h: int, w: int) -> np.ndarray:
    head = streams[0]
    if len(head) < C:
        raise FormatError("ae scale stream too short")
    base = np.frombuffer(head[:C], dtype=np.uint8).astype(np.int64)
    if base.max(initial=0) > 63:
        raise FormatError("ae scale index out of range")
    nb = (h // LB) * (w // LB)
    ac = AdaptiveCoder.decoder(head[C:], 2 * OFFSETS + 1, 1, block=256)
    off = ac.decode(np.zeros(nb, dtype=np.int64)) - OFFSETS
    ac.check_end()
    idx = _scale_index(base, off, h, w)
    return decode_indexed(streams[1], idx, rt.freqs, rt.offsets).reshape(C, h, w)


# ---------------------------------------------------------------------------------------------
# per-image decoder fine-tuning (CNN-AE-FT)

FT_STEPS = tuple(range(7, 14))       # quantizer step 2^-e candidates
FT_RIDGE = (0.0, 1e-4, 1e-3)


def _encode_delta(rt: _Runtime, q: np.ndarray, e: int) -> bytes:
    V = (rt.cost.shape[1] - 1) // 2
    vi = np.clip(q.ravel() + V, 0, 2 * V)
    row = int(np.argmin(rt.cost[:, vi].sum(1)))
    return bytes([e, row]) + encode_indexed(q.ravel(), np.full(q.size, row), rt.freqs, rt.offsets)


def _decode_delta(rt: _Runtime, data: bytes) -> np.ndarray:
    if len(data) < 2 or data[1] > 63 or not 0 < data[0] < 40:
        raise FormatError("ae fine-tune stream malformed")
    n = (rt.N + 1) * 12
    q = decode_indexed(data[2:], np.full(n, data[1]), rt.freqs, rt.offsets)
    return q.reshape(rt.N + 1, 12).astype(np.float64) * 2.0 ** -data[0]


def finetune(rt: _Runtime, syn, y_ig: np.ndarray, x: np.ndarray, lam: float,
             bits0: float, check: bool = True) -> tuple[bytes | None, np.ndarray | None, list[str]]:
    """Refit the narrow decoder part to image ``x`` (3, H, W in [0,1]); return (stream or None,
    reconstruction float, notes). Kept only when bpp + lam * 255^2 * MSE improves: measured
    on the 8-bit reconstruction when ``check``, else from the exact quadratic form of the
    unclamped error (then no reconstruction is returned)."""
    rec0, G, B = synthesize(syn, y_ig, x)
    npix = x.shape[1] * x.shape[2]
    mse0 = float(((np.clip(np.rint(rec0 * 255), 0, 255) / 255 - x) ** 2).mean())
    j0 = bits0 / npix + lam * 255 ** 2 * mse0
    P = G[-1, -1]
    best = None
    for mu in FT_RIDGE:
        D = np.linalg.solve(G + mu * P * np.eye(G.shape[0]), B)
        for e in FT_STEPS:
            q = np.rint(D * 2.0 ** e).astype(np.int64)
            if not q.any():
                continue
            d = q * 2.0 ** -e
            dsse = float(-2 * (d * B).sum() + np.einsum("io,ij,jo->", d, G, d))
            stream = _encode_delta(rt, q, e)
            j = (bits0 + 8 * len(stream)) / npix + lam * 255 ** 2 * (mse0 + dsse / (3 * npix))
            if best is None or j < best[0]:
                best = (j, stream, d)
    notes = []
    if best is not None and best[0] < j0 and not check:
        notes.append(f"finetune: J {j0:.4f} -> {best[0]:.4f} (predicted) with {len(best[1])} bytes")
        return best[1], None, notes
    if best is not None and best[0] < j0:
        rec = synthesize(_with_delta(syn, best[2]), y_ig)
        mse1 = float(((np.clip(np.rint(rec * 255), 0, 255) / 255 - x) ** 2).mean())
        j1 = (bits0 + 8 * len(best[1])) / npix + lam * 255 ** 2 * mse1
        notes.append(f"finetune: J {j0:.4f} -> {j1:.4f} with {len(best[1])} bytes")
        if j1 < j0:
            return best[1], rec, notes
    notes.append("finetune: no gain, not stored")
    return None, rec0, notes


# ---------------------------------------------------------------------------------------------

def _pad(image: np.ndarray) -> np.ndarray:
    h, w, _ = image.shape
    ph, pw = -h % BLOCK, -w % BLOCK
    return np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="edge") if ph or pw else image


@register
class AECodec(Codec):
    name = "ae"
    codec_id = 8
    version = 1
    channels = (3,)
    description = "block CNN-AE of seed 001 with entropy-coded latents; progressive, fine-tuned, GAN decoder"
    encode_options = (
        Option("model", str, None, "ae model id (default: the installed default)"),
        Option("passes", int, 1, "progressive residual passes (CNN-RNN-AE)", lo=1, hi=8),
        Option("finetune", bool, False, "refit the decoder's last layer to the image (CNN-AE-FT)"),
        Option("decoder", str, "mse", "synthesis: mse (CNN-AE) or gan (GAN-AE, L2 + LSGAN)",
               choices=("mse", "gan")),
    )
    decode_options = (
        Option("passes", int, None, "decode only the first k passes of a progressive file",
               lo=1, hi=8),
    )

    def quality_range(self) -> tuple[float, float]:
        return (0.0, 100.0)

    def sweep_qualities(self) -> list[float]:
        return [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]

    def encode(self, image: np.ndarray, quality: float | None = None, **options: Any) -> Encoded:
        return self.encode_passes(image, quality, _recons=False, **options)[0]

    def encode_passes(self, image: np.ndarray, quality: float | None = None, _recons: bool = True,
                      **options: Any) -> tuple[Encoded, list[np.ndarray]]:
        """Encode; also return the reconstruction after each pass (what the decoder gives)."""
        import torch

        torch.set_num_threads(1)
        opts = self.encode_opts(options)
        q = DEFAULT_QUALITY if quality is None else float(quality)
        if not np.isfinite(q) or not 0 <= q <= 100:
            raise InputError(f"quality must be in 0..100, got {quality}")
        q100 = int(round(q * 100))
        model_id, sha = _model_ref(opts.get("model"))
        rt = _runtime(model_id, sha)
        t = rt.t_of(q100)
        h, w, _ = image.shape
        img = _pad(image)
        x = img.transpose(2, 0, 1).astype(np.float64) / 255.0
        streams: list[bytes] = []
        recons, notes = [], []
        rec = None
        ft = 0
        for k in range(opts["passes"]):
            model = rt.base if k == 0 else rt.res
            src = img if k == 0 else (0.5 + RES_SCALE * (x - rec)).transpose(1, 2, 0)
            y = analyze(model, src, t)
            sym = np.rint(y).astype(np.int64)
            streams += encode_latent(rt, sym)
            _, ig = model.gains(t)
            y_ig = sym * ig[0].numpy()
            syn = rt.gan if (k == 0 and opts["decoder"] == "gan") else model.g_s
            if k == 0 and opts["finetune"]:
                lam = float(model.lam(t))
                bits0 = 8 * sum(len(s) for s in streams)
                last = not _recons and k + 1 == opts["passes"]
                fs, out, nts = finetune(rt, syn, y_ig, x, lam, bits0, check=not last)
                notes += nts
                if fs is not None:
                    streams.append(fs)
                    ft = 1
                if out is None:
                    break
            elif _recons or k + 1 < opts["passes"]:
                out = synthesize(syn, y_ig)
            else:
                break
            rec = _next(rec, out, k)
            recons.append(to_uint8(rec)[:h, :w])
        params = {"q": q100, "P": opts["passes"], "g": int(opts["decoder"] == "gan"), "f": ft}
        return Encoded(params, streams, model_id=model_id, model_sha256=sha, notes=notes), recons

    def decode(self, params, streams, width, height, channels, model_id="", model_sha256="",
               **options) -> np.ndarray:
        import torch

        torch.set_num_threads(1)
        opts = self.decode_opts(options)
        try:
            q100, P, g, ft = (int(params[k]) for k in ("q", "P", "g", "f"))
        except (KeyError, TypeError, ValueError):
            raise FormatError("ae params missing or malformed") from None
        if not 0 <= q100 <= 10000 or not 1 <= P <= 8 or g not in (0, 1) or ft not in (0, 1) \
                or channels != 3:
            raise FormatError("ae params out of range")
        present = (len(streams) - ft) // 2
        if len(streams) < 2 + ft or (len(streams) - ft) % 2 or present > P:
            raise FormatError(f"ae file has {len(streams)} streams, inconsistent with {P} passes")
        want = opts.get("passes") or P
        if want > P:
            raise InputError(f"file has {P} passes; cannot decode {want}")
        if present < want:
            raise FormatError(f"file holds {present} of its {P} passes (truncated); "
                              f"decode with passes={present}")
        if not model_id:
            raise FormatError("ae file names no model")
        rt = _runtime(model_id, model_sha256)
        t = rt.t_of(q100)
        H, W = -(-height // BLOCK) * BLOCK, -(-width // BLOCK) * BLOCK
        rec = None
        pos = 0
        for k in range(want):
            model = rt.base if k == 0 else rt.res
            sym = decode_latent(rt, streams[pos:pos + 2], rt.C, H // 4, W // 4)
            pos += 2
            _, ig = model.gains(t)
            syn = rt.gan if (k == 0 and g) else model.g_s
            if k == 0 and ft:
                syn = _with_delta(syn, _decode_delta(rt, streams[pos]))
                pos += 1
            rec = _next(rec, synthesize(syn, sym * ig[0].numpy()), k)
        return np.ascontiguousarray(to_uint8(rec)[:height, :width])


def _next(rec: np.ndarray | None, out: np.ndarray, k: int) -> np.ndarray:
    """The 8-bit reconstruction (as float [0,1]) after pass k."""
    if k == 0:
        new = out
    else:
        new = rec + (out - 0.5) / RES_SCALE
    return np.clip(np.rint(new * 255.0), 0, 255) / 255.0


def truncate_passes(data: bytes, k: int) -> bytes:
    """A progressive ae .gcz cut to its first ``k`` passes (re-packed with a valid checksum);
    it decodes with ``passes=k``. Raw byte truncation is refused by the container checksum."""
    from .. import container as ct

    c = ct.unpack(data)
    if c.codec_id != AECodec.codec_id:
        raise InputError("not an ae file")
    P, ft = int(c.params["P"]), int(c.params["f"])
    if not 1 <= k <= P:
        raise InputError(f"file has {P} passes; cannot keep {k}")
    c.streams = c.streams[:2 * k + ft]
    return ct.pack(c)
