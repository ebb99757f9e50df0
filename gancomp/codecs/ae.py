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
- ``down=2`` (version 2, param ``d``): pass 1 codes the 2x box-downsampled image and the
  model's upsampling generator (``up.*``, seed 001's "generator decoding a downsampled
  image", L2-trained) decodes it to full size: a coarse latent for low rates and the cheap
  first pass of progressive files. With ``finetune`` the refit targets the half-size image.
- ``upsampler=gan`` (with ``down=2``; version 3, param ``u``): the first pass is decoded by
  the adversarially trained upsampler (``upg.*``: L2 + least-squares GAN) instead of the
  L2 one; same latents and size. Files without it are written as version 2.

Entropy coding reuses the hyperprior codec's integer Gaussian tables (64 scales, shipped in
the weights) through :func:`gancomp.entropy.encode_indexed`; the encoder picks a scale per
channel and a scale offset per 32x32 block (offsets coded adaptively), so the decoder needs
no float computation to rebuild the entropy model: streams decode bit-exactly anywhere.
Pixels come from the float64 synthesis.

Params: ``q`` quality * 100, ``P`` passes, ``g`` 1 for the GAN decoder, ``f`` 1 when a
fine-tune stream follows pass 1, ``d`` pass 1's downscale (1 or 2; absent in version 1), ``u`` 1
for the adversarial upsampler (version 3). Streams per pass: scales (channel bytes + block offsets),
latent symbols; then, after pass 1, the fine-tune stream when ``f``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..entropy import AdaptiveCoder, decode_indexed, encode_indexed
from ..errors import FormatError, InputError, ModelError
from .base import Codec, Encoded, Option, register
from .refit import CoefCoder, apply_filter, best_quantized, decode_filter, loop_filter

BLOCK = 32                  # pixels per block side (latent 8x8)
LB = BLOCK // 4             # latent block side
TILE = 512                  # pixels per transform window side (plus HALO)
HALO = 32                   # pixels of context around each analysis window
OFFSETS = 6                 # block scale offsets -6..6
OFF_STEP = 2                # scale-table steps per offset
RES_SCALE = 4.0
UP_HALO = 16                # half-resolution pixels of context around each upsampling window
DEFAULT_QUALITY = 50.0


# ---------------------------------------------------------------------------------------------
# model runtime

class _Runtime:
    """Loaded float64 models and the integer tables."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        import torch

        from ..nn.ae import BlockAE, Synthesis, Upsampler

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
            self.up = self.upg = None
            for name in ("up", "upg"):
                if f"{name}.skip.weight" not in arrays:
                    continue
                convs = sorted(int(k.split(".")[2]) for k in arrays
                               if k.startswith(f"{name}.body.") and k.endswith(".weight"))
                m = Upsampler(arrays[f"{name}.body.0.weight"].shape[0], len(convs)).double()
                m.load_state_dict(sub(f"{name}."))
                setattr(self, name, m.eval().requires_grad_(False))
            self.freqs = arrays["y_freqs"].astype(np.int64)
            self.offsets = arrays["y_offsets"].astype(np.int64)
        except (KeyError, RuntimeError) as exc:
            raise ModelError(f"ae weights incomplete: {exc}") from None
        for m in (self.base, self.res, self.gan):
            m.requires_grad_(False)
        self.N, self.C = N, C
        self.coder = CoefCoder(self.freqs, self.offsets)
        self.cost = self.coder.cost

    def t_of(self, q100: int):
        import torch

        return torch.tensor([q100 / 10000.0 * (self.base.levels - 1)], dtype=torch.float64)


def _runtime(model_id: str, sha: str) -> _Runtime:
    from ..weights import card_for_file, runtime

    card = card_for_file(model_id, sha)
    if card.codec != "ae":
        raise ModelError(f"model {model_id!r} is for codec {card.codec!r}, not ae")
    return runtime(_Runtime, model_id, card.sha256)


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


def upsample(up, z: np.ndarray) -> np.ndarray:
    """Half-resolution 8-bit image (3, h, w) as float [0,1] -> float64 (3, 2h, 2w) through the
    upsampling generator, over overlapping windows (its receptive field is < UP_HALO)."""
    import torch

    _, h, w = z.shape
    zt = torch.from_numpy(np.ascontiguousarray(z))
    out = np.empty((3, 2 * h, 2 * w))
    with torch.no_grad():
        for y0, th in _windows(h, TILE // 2):
            for x0, tw in _windows(w, TILE // 2):
                a, b = max(0, y0 - UP_HALO), min(h, y0 + th + UP_HALO)
                c, d = max(0, x0 - UP_HALO), min(w, x0 + tw + UP_HALO)
                img = up(zt[None, :, a:b, c:d])[0].numpy()
                sy, sx = 2 * (y0 - a), 2 * (x0 - c)
                out[:, 2 * y0:2 * (y0 + th), 2 * x0:2 * (x0 + tw)] = \
                    img[:, sy:sy + 2 * th, sx:sx + 2 * tw]
    return out


def _downsample(x: np.ndarray) -> np.ndarray:
    """(3, H, W) float -> (3, H/2, W/2) 2x2 box mean (the encoder side of ``down=2``)."""
    c, H, W = x.shape
    return x.reshape(c, H // 2, 2, W // 2, 2).mean(axis=(2, 4))


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

FT_TAIL, FT_FILTER = 1, 2            # bits of param ``f``: which refit streams follow pass 1


def _decode_delta(rt: _Runtime, data: bytes) -> np.ndarray:
    return rt.coder.decode(data, (rt.N + 1) * 12).reshape(rt.N + 1, 12)


def _to8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255.0), 0, 255) / 255.0


def finetune(rt: _Runtime, syn, y_ig: np.ndarray, x: np.ndarray, lam: float,
             bits0: float) -> tuple[list[bytes], int, np.ndarray, list[str]]:
    """Refit the decoder to image ``x`` (3, H, W in [0,1]) in two least-squares stages: the
    tail's centre tap + bias (12 x (N+1) numbers), then an adaptive loop filter on the 8-bit
    result (:mod:`gancomp.codecs.refit`). Each stage is kept only when bpp + lam * 255^2 * MSE,
    measured on the 8-bit reconstruction, improves. Returns (streams, flags of param ``f``,
    reconstruction before rounding, notes)."""
    rec0, G, B = synthesize(syn, y_ig, x)
    npix = x.shape[1] * x.shape[2]
    sse = float(((_to8(rec0) - x) ** 2).sum())
    streams: list[bytes] = []
    flags, rec, nbytes, notes = 0, rec0, 0, []

    def j_of(dsse: float, n: int) -> float:
        return (bits0 + 8 * (nbytes + n)) / npix + lam * 255 ** 2 * (sse + dsse) / (3 * npix)

    j0 = j_of(0.0, 0)
    # stage 1: the tail (predicted from the unclamped error, then measured)
    sse_u = float(((rec0 - x) ** 2).sum())
    best = best_quantized(G, B, rt.coder.encode, lambda dsse, n: j_of(dsse + sse_u - sse, n))
    if best is not None and best[0] < j0:
        rec1 = synthesize(_with_delta(syn, best[2]), y_ig)
        sse1 = float(((_to8(rec1) - x) ** 2).sum())
        j1 = j_of(sse1 - sse, len(best[1]))
        notes.append(f"finetune tail: J {j0:.4f} -> {j1:.4f} with {len(best[1])} bytes")
        if j1 < j0:
            streams.append(best[1])
            flags |= FT_TAIL
            rec, sse, j0, nbytes = rec1, sse1, j1, len(best[1])
    # stage 2: loop filter on the 8-bit reconstruction
    lf = loop_filter(rt.coder, _to8(rec), x, j_of)
    if lf is not None:
        notes.append(f"finetune filter r={lf[3]}: J {j0:.4f} -> {lf[2]:.4f} with {len(lf[0])} bytes")
        streams.append(lf[0])
        flags |= FT_FILTER
        rec = lf[1]
    if not flags:
        notes.append("finetune: no gain, not stored")
    return streams, flags, rec, notes


def refit_synthesis(rt: _Runtime, syn, flags: int, streams: list[bytes]):
    """(synthesis, filter or None, streams used) for a file's refit streams."""
    pos = 0
    if flags & FT_TAIL:
        syn = _with_delta(syn, _decode_delta(rt, streams[pos]))
        pos += 1
    filt = None
    if flags & FT_FILTER:
        filt = decode_filter(rt.coder, streams[pos])
        pos += 1
    return syn, filt, pos


# ---------------------------------------------------------------------------------------------

def _pad(image: np.ndarray, unit: int = BLOCK) -> np.ndarray:
    h, w, _ = image.shape
    ph, pw = -h % unit, -w % unit
    return np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="edge") if ph or pw else image


@register
class AECodec(Codec):
    name = "ae"
    codec_id = 8
    version = 3             # 2: param ``d`` (down=2 first pass); version 1 files decode as d=1;
    #                         3: param ``u`` (adversarial upsampler), written only when u=1
    channels = (3,)
    description = "block CNN-AE of seed 001 with entropy-coded latents; progressive, fine-tuned, GAN decoder"
    encode_options = (
        Option("model", str, None, "ae model id (default: the installed default)"),
        Option("passes", int, 1, "progressive residual passes (CNN-RNN-AE)", lo=1, hi=8),
        Option("finetune", bool, False, "refit the decoder's last layer to the image (CNN-AE-FT)"),
        Option("decoder", str, "mse", "synthesis: mse (CNN-AE) or gan (GAN-AE, L2 + LSGAN)",
               choices=("mse", "gan")),
        Option("down", int, 1, "2: code pass 1 at half resolution, decoded to full size by the "
               "model's upsampling generator (low rates; coarse progressive first pass)",
               lo=1, hi=2),
        Option("upsampler", str, "mse", "with down=2: the generator decoding the half-size pass: "
               "mse (L2-trained) or gan (L2 + least-squares GAN)", choices=("mse", "gan")),
    )
    decode_options = (
        Option("passes", int, None, "decode only the first k passes of a progressive file",
               lo=1, hi=8),
    )

    def file_defaults(self, version: int) -> dict[str, Any]:
        return {"d": 1, "u": 0} if version >= 3 else {"d": 1} if version >= 2 else {}

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
        down = opts["down"]
        if down == 2 and rt.up is None:
            raise InputError(f"model {model_id} has no upsampling generator; down=2 needs ae-v2 "
                             f"or later")
        gan_up = opts["upsampler"] == "gan"
        if gan_up and down != 2:
            raise InputError("upsampler=gan needs down=2")
        if gan_up and rt.upg is None:
            raise InputError(f"model {model_id} has no adversarial upsampler; upsampler=gan "
                             f"needs ae-v4 or later")
        upsampler = rt.upg if gan_up else rt.up
        t = rt.t_of(q100)
        h, w, _ = image.shape
        img = _pad(image, BLOCK * down)
        x = img.transpose(2, 0, 1).astype(np.float64) / 255.0
        streams: list[bytes] = []
        recons, notes = [], []
        rec = None
        ft = 0
        for k in range(opts["passes"]):
            model = rt.base if k == 0 else rt.res
            target = _downsample(x) if (k == 0 and down == 2) else x
            if k == 0:
                src = img if down == 1 else target.transpose(1, 2, 0)
            else:
                src = (0.5 + RES_SCALE * (x - rec)).transpose(1, 2, 0)
            y = analyze(model, src, t)
            sym = np.rint(y).astype(np.int64)
            streams += encode_latent(rt, sym)
            _, ig = model.gains(t)
            y_ig = sym * ig[0].numpy()
            syn = rt.gan if (k == 0 and opts["decoder"] == "gan") else model.g_s
            last = not _recons and k + 1 == opts["passes"]
            if k == 0 and opts["finetune"]:
                lam = float(model.lam(t))
                bits0 = 8 * sum(len(s) for s in streams)
                fs, ft, out, nts = finetune(rt, syn, y_ig, target, lam, bits0)
                notes += nts
                streams += fs
            elif not last:
                out = synthesize(syn, y_ig)
            else:
                break
            if k == 0 and down == 2:
                out = upsample(upsampler, _next(None, out, 0))
            rec = _next(rec, out, k)
            recons.append(to_uint8(rec)[:h, :w])
        params = {"q": q100, "P": opts["passes"], "g": int(opts["decoder"] == "gan"), "f": ft,
                  "d": down}
        if gan_up:
            params["u"] = 1
        return Encoded(params, streams, model_id=model_id, model_sha256=sha, notes=notes,
                       version=None if gan_up else 2), recons

    def decode(self, params, streams, width, height, channels, model_id="", model_sha256="",
               **options) -> np.ndarray:
        import torch

        torch.set_num_threads(1)
        opts = self.decode_opts(options)
        try:
            q100, P, g, f = (int(params[k]) for k in ("q", "P", "g", "f"))
            down = int(params.get("d", 1))
            u = int(params.get("u", 0))
        except (KeyError, TypeError, ValueError):
            raise FormatError("ae params missing or malformed") from None
        if not 0 <= q100 <= 10000 or not 1 <= P <= 8 or g not in (0, 1) or not 0 <= f <= 3 \
                or down not in (1, 2) or u not in (0, 1) or (u and down != 2) or channels != 3:
            raise FormatError("ae params out of range")
        ft = bin(f).count("1")                # refit streams after pass 1
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
        if down == 2 and (rt.upg if u else rt.up) is None:
            raise FormatError(f"ae file needs {'an adversarial' if u else 'an'} upsampling "
                              f"generator; model {model_id} has none")
        t = rt.t_of(q100)
        unit = BLOCK * down
        H, W = -(-height // unit) * unit, -(-width // unit) * unit
        rec = None
        pos = 0
        for k in range(want):
            model = rt.base if k == 0 else rt.res
            s = down if k == 0 else 1
            sym = decode_latent(rt, streams[pos:pos + 2], rt.C, H // (4 * s), W // (4 * s))
            pos += 2
            _, ig = model.gains(t)
            syn = rt.gan if (k == 0 and g) else model.g_s
            filt = None
            if k == 0 and f:
                syn, filt, n = refit_synthesis(rt, syn, f, streams[pos:])
                pos += n
            out = synthesize(syn, sym * ig[0].numpy())
            if filt is not None:
                out = apply_filter(_to8(out), *filt)
            if k == 0 and down == 2:
                out = upsample(rt.upg if u else rt.up, _next(None, out, 0))
            rec = _next(rec, out, k)
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
    P, ft = int(c.params["P"]), bin(int(c.params["f"])).count("1")
    if not 1 <= k <= P:
        raise InputError(f"file has {P} passes; cannot keep {k}")
    c.streams = c.streams[:2 * k + ft]
    return ct.pack(c)
