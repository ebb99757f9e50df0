"""The per-image model: latent grids, the synthesis, the ARM; float for fitting, exact for coding.

Latents: G single-channel grids, grid g of size ceil(H / 2^g) x ceil(W / 2^g), quantization
step 1. Synthesis: each grid upsampled bilinearly by 2^g (dyadic weights), stacked to G
channels per pixel; 1x1 layers G -> hidden... -> 3 (ReLU between) written as matrix products
on (channels, pixels); then two 3x3 residual layers on the 3-channel image
(x1 = relu(conv(x0) + x0), x2 = conv(x1) + x1). Output is RGB in 0..1.

Exact synthesis (decoder, and the encoder's final PSNR): float64 with quantized weights
(step 2^-k, biases 2^-(k+4)) and every activation floored to 2^-16 and clipped to +-2^12;
every product and sum is then a dyadic number with < 53 significant bits, so the result does
not depend on summation order, threads, CPU kernels or device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..entropy import AdaptiveCoder, read_varint, write_varint
from ..errors import FormatError
from . import arm as A

ACT_FRAC = 16
ACT_CLIP = float(1 << 12)
BIAS_EXTRA = 4
MAX_WBITS = 12


@dataclass(frozen=True)
class Arch:
    """Sizes of one tile's model (stored in the file)."""

    grids: int = 7
    syn: tuple[int, ...] = (24, 24)
    arm: int = 16

    def encode(self) -> bytes:
        return bytes([self.grids, self.arm, len(self.syn), *self.syn])

    @classmethod
    def decode(cls, b: bytes) -> "Arch":
        if len(b) < 3 or len(b) != 3 + b[2] or not (1 <= b[0] <= 8) or not (1 <= b[1] <= 64) \
                or any(not (1 <= s <= 64) for s in b[3:]):
            raise FormatError("overfit: bad architecture header")
        return cls(b[0], tuple(b[3:]), b[1])

    def grid_shapes(self, h: int, w: int) -> list[tuple[int, int]]:
        return [(-(-h // 2 ** g), -(-w // 2 ** g)) for g in range(self.grids)]

    def syn_dims(self) -> list[int]:
        return [self.grids, *self.syn, 3]

    def arm_dims(self) -> list[int]:
        return [A.N_CTX, self.arm, self.arm, 2]

    def macs_per_pixel(self, h: int, w: int) -> float:
        d = self.syn_dims()
        syn = sum(a * b for a, b in zip(d[:-1], d[1:])) + 2 * 81
        a = self.arm_dims()
        n_lat = sum(x * y for x, y in self.grid_shapes(h, w))
        return syn + sum(x * y for x, y in zip(a[:-1], a[1:])) * n_lat / (h * w)


def param_shapes(arch: Arch) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of every network tensor, in file order."""
    out = []
    d = arch.syn_dims()
    for i in range(len(d) - 1):
        out += [(f"syn{i}.w", (d[i + 1], d[i])), (f"syn{i}.b", (d[i + 1],))]
    for i in range(2):
        out += [(f"conv{i}.w", (3, 3, 3, 3)), (f"conv{i}.b", (3,))]
    a = arch.arm_dims()
    for i in range(len(a) - 1):
        out += [(f"arm{i}.w", (a[i], a[i + 1])), (f"arm{i}.b", (a[i + 1],))]
    return out


def quantize(params: dict[str, np.ndarray], names: list[str], k: int) -> dict[str, np.ndarray]:
    """Integer versions of the named float tensors: weights at 2^-k, biases at 2^-(k+4)."""
    out = {}
    for n in names:
        s = k + (BIAS_EXTRA if n.endswith(".b") else 0)
        q = np.round(np.asarray(params[n], np.float64) * 2.0 ** s).astype(np.int64)
        out[n] = np.clip(q, -(1 << 15) + 1, (1 << 15) - 1) if n.endswith(".w") else q
    return out


def int_arm(arch: Arch, ints: dict[str, np.ndarray], k: int) -> A.IntArm:
    n = len(arch.arm_dims()) - 1
    return A.IntArm([(ints[f"arm{i}.w"], ints[f"arm{i}.b"]) for i in range(n)], k)


def _fix(t):
    """Floor to the 2^-ACT_FRAC grid and clip, in place (exact)."""
    return t.mul_(2.0 ** ACT_FRAC).floor_().clamp_(-ACT_CLIP * 2.0 ** ACT_FRAC,
                                                   ACT_CLIP * 2.0 ** ACT_FRAC).mul_(2.0 ** -ACT_FRAC)


def _conv3x3(x, w, b, stripe: int = 16):
    """3x3 convolution (zero padding) of (C, H, W) float64, by row stripes: im2col + one
    matrix product each, small enough to stay in cache."""
    import torch
    import torch.nn.functional as F

    c, h, wd = x.shape
    p = F.pad(x, (1, 1, 1, 1))
    wm = w.reshape(w.shape[0], -1)
    out = torch.empty((w.shape[0], h, wd), dtype=x.dtype)
    for y0 in range(0, h, stripe):
        y1 = min(h, y0 + stripe)
        cols = torch.stack([p[:, y0 + dy:y1 + dy, dx:dx + wd] for dy in range(3) for dx in range(3)], 1)
        out[:, y0:y1] = (torch.addmm(b[:, None], wm, cols.reshape(c * 9, -1))).reshape(-1, y1 - y0, wd)
    return out


def synthesize_exact(arch: Arch, grids: list[np.ndarray], ints: dict[str, np.ndarray], k: int,
                     h: int, w: int) -> np.ndarray:
    """Decoded (h, w, 3) uint8 pixels: bit-exact on every machine (see module docstring).
    The 1x1 layers run on chunks of pixels that stay in cache."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        chans = []
        for g, q in enumerate(grids):
            t = torch.from_numpy(np.asarray(q, np.float64))
            if g:
                t = F.interpolate(t[None, None], scale_factor=float(2 ** g), mode="bilinear",
                                  align_corners=False)[0, 0]
            chans.append(t[:h, :w])
        x = torch.stack(chans).reshape(len(grids), -1)
        n_syn = len(arch.syn_dims()) - 1

        def wt(name: str) -> torch.Tensor:
            s = k + (BIAS_EXTRA if name.endswith(".b") else 0)
            return torch.from_numpy(ints[name].astype(np.float64)) * 2.0 ** -s

        ws = [wt(f"syn{i}.w") for i in range(n_syn)]
        bs = [wt(f"syn{i}.b")[:, None] for i in range(n_syn)]
        img = torch.empty((3, h * w), dtype=torch.float64)
        for a in range(0, h * w, 16384):
            y = x[:, a:a + 16384]
            for i in range(n_syn):
                y = torch.addmm(bs[i], ws[i], y)
                if i < n_syn - 1:
                    y.clamp_(min=0.0)
                _fix(y)
            img[:, a:a + 16384] = y
        x0 = img.reshape(3, h, w)
        x1 = _fix(_conv3x3(x0, wt("conv0.w"), wt("conv0.b")).add_(x0).clamp_(min=0.0))
        x2 = _fix(_conv3x3(x1, wt("conv1.w"), wt("conv1.b")).add_(x1))
        pix = torch.round(x2.clamp_(0.0, 1.0).mul_(255.0)).to(torch.uint8)
    return pix.permute(1, 2, 0).contiguous().numpy()


# --- network weights: exp-Golomb style classes with adaptive coding ---------------------------

N_CLASS = 20


def encode_ints(tensors: list[np.ndarray]) -> bytes:
    """Integer tensors -> bytes: per value the bit length of its zigzag code (adaptively range
    coded, one context per tensor) then the bits below the leading one, raw."""
    coder = AdaptiveCoder(N_CLASS, max(1, len(tensors)), block=256, prior=1, increment=8)
    raw: list[np.ndarray] = []
    for t_i, t in enumerate(tensors):
        v = np.asarray(t, np.int64).ravel()
        u = np.where(v >= 0, 2 * v, -2 * v - 1)
        cls = np.zeros(u.size, np.int64)
        nz = u > 0
        cls[nz] = np.floor(np.log2(u[nz])).astype(np.int64) + 1
        if cls.max(initial=0) >= N_CLASS:
            raise ValueError("weight too large to code")
        coder.encode(cls, np.full(u.size, t_i))
        for x, c in zip(u.tolist(), cls.tolist()):
            if c > 1:
                raw.append(np.array([(x >> b) & 1 for b in range(c - 2, -1, -1)], np.uint8))
    head = coder.finish()
    out = bytearray()
    write_varint(out, len(head))
    out += head
    out += np.packbits(np.concatenate(raw) if raw else np.zeros(0, np.uint8)).tobytes()
    return bytes(out)


def decode_ints(data: bytes, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    """Inverse of :func:`encode_ints`."""
    n, pos = read_varint(data, 0, limit=len(data))
    if pos + n > len(data):
        raise FormatError("overfit: truncated weight stream")
    coder = AdaptiveCoder.decoder(bytes(data[pos:pos + n]), N_CLASS, max(1, len(shapes)),
                                  block=256, prior=1, increment=8)
    bits = np.unpackbits(np.frombuffer(bytes(data[pos + n:]), np.uint8))
    bp = 0
    out = []
    for t_i, shp in enumerate(shapes):
        size = int(np.prod(shp))
        cls = coder.decode(np.full(size, t_i))
        u = np.zeros(size, np.int64)
        for i, c in enumerate(cls.tolist()):
            if c == 1:
                u[i] = 1
            elif c > 1:
                if bp + c - 1 > bits.size:
                    raise FormatError("overfit: truncated weight bits")
                x = 1
                for b in bits[bp:bp + c - 1].tolist():
                    x = (x << 1) | b
                bp += c - 1
                u[i] = x
        out.append(np.where(u & 1, -((u + 1) >> 1), u >> 1).reshape(shp))
    coder.check_end()
    if (bits.size - bp) >= 8 or bits[bp:].any():
        raise FormatError("overfit: weight stream has trailing bytes")
    return out
