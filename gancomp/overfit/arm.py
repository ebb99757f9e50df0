"""The auto-regressive entropy model (ARM) of the latents and their range coding.

Each latent is predicted from 12 causal neighbours of its own grid (zero outside the grid):

    row -2:  x-2 x-1 x   x+1 x+2
    row -1:  x-2 x-1 x   x+1
    row  0:  x-3 x-2 x-1  [*]

by a small MLP (12 -> h -> h -> 2, ReLU) shared by all grids, giving a Laplace location and
log-scale (:mod:`gancomp.overfit.laplace`). No neighbour lies more than one column to the right
per row up, so all latents on the line ``j + 2 i = t`` are independent: the decoder walks
t = 0, 1, ... and decodes each line as one vectorized batch (wavefront), and the encoder codes
in the same order.

For coding, the MLP runs in integer fixed point (:class:`IntArm`): integer weights, integer
activations, float64 sums that stay below 2^53, so the predicted table rows are the same on
every machine, thread count and CPU kernel set.
"""

from __future__ import annotations

import numpy as np

from ..entropy import read_varint, unzigzag, write_varint, zigzag
from ..errors import FormatError
from . import laplace as lp

OFFSETS = ((-2, -2), (-2, -1), (-2, 0), (-2, 1), (-2, 2),
           (-1, -2), (-1, -1), (-1, 0), (-1, 1),
           (0, -3), (0, -2), (0, -1))
N_CTX = len(OFFSETS)
PAD_T, PAD_L, PAD_R = 2, 3, 2
IN_BITS = 4        # network input = latent * 2^IN_BITS (integers)
ACT_BITS = 8       # hidden activations in 1/256
ACT_MAX = float(1 << 20)
LATENT_MAX = 1 << 12   # latents beyond this are refused (keeps every sum exact)


def context_index(shapes: list[tuple[int, int]]) -> tuple[np.ndarray, list[int]]:
    """Gather indexes (M, 12) into the concatenation of the zero-padded grids, flattened,
    for all latents of all grids in raster order; and each padded grid's start offset."""
    idx, starts, base = [], [], 0
    for h, w in shapes:
        pw = w + PAD_L + PAD_R
        starts.append(base)
        ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        centre = base + (ii + PAD_T) * pw + (jj + PAD_L)
        idx.append(np.stack([centre + dy * pw + dx for dy, dx in OFFSETS], -1).reshape(-1, N_CTX))
        base += (h + PAD_T) * pw
    return np.concatenate(idx), starts


def contexts_of(grid: np.ndarray) -> np.ndarray:
    """(h*w, 12) neighbour values of an integer grid, raster order."""
    h, w = grid.shape
    p = np.zeros((h + PAD_T, w + PAD_L + PAD_R), dtype=np.int64)
    p[PAD_T:, PAD_L:PAD_L + w] = grid
    idx, _ = context_index([(h, w)])
    return p.ravel()[idx]


def wavefront(h: int, w: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (rows, cols) of each line j + 2 i = t, t = 0 .. w + 2 (h - 1) - 1."""
    out = []
    for t in range(w + 2 * (h - 1)):
        i = np.arange(max(0, -(-(t - w + 1) // 2)), min(h - 1, t // 2) + 1)
        out.append((i, t - 2 * i))
    return out


def wavefront_order(h: int, w: int) -> np.ndarray:
    """Raster indexes of a grid in coding order."""
    return np.concatenate([i * w + j for i, j in wavefront(h, w)])


class IntArm:
    """The ARM in fixed point. ``layers``: [(W int (in, out), b int (out,))], weights at
    2^-wbits, biases at 2^-(wbits + 4); evaluated exactly in float64."""

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]], wbits: int) -> None:
        self.wbits = wbits
        self.layers = []
        a_in = IN_BITS
        for k, (w, b) in enumerate(layers):
            w = np.asarray(w, np.float64)
            b = np.asarray(b, np.float64) * 2.0 ** (a_in - 4)
            if np.abs(w).max(initial=0) >= 2 ** 16 or np.abs(b).max(initial=0) >= 2 ** 44:
                raise FormatError("entropy-model weights out of range")
            self.layers.append((w, b, a_in))
            a_in = ACT_BITS
        if self.layers[0][0].shape[0] != N_CTX or self.layers[-1][0].shape[1] != 2:
            raise FormatError("entropy-model shape mismatch")

    def rows(self, ctx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Table rows and window bases (floor(mu) - R) for integer contexts (n, 12)."""
        x = ctx.astype(np.float64, copy=False)  # a fresh gather: safe to change in place
        np.minimum(np.maximum(x, -LATENT_MAX, out=x), LATENT_MAX, out=x)
        x *= 2.0 ** IN_BITS
        last = len(self.layers) - 1
        for k, (w, b, a_in) in enumerate(self.layers):
            z = x @ w
            z += b
            if k < last:
                np.maximum(z, 0.0, out=z)
                z *= 2.0 ** (ACT_BITS - self.wbits - a_in)
                np.floor(z, out=z)
                x = np.minimum(z, ACT_MAX, out=z)
        s = self.wbits + ACT_BITS   # scale of z: 2^-s
        mu_f = np.floor(z[:, 0] * 2.0 ** (MEAN_FRAC_SHIFT - s) + 0.5)
        lim = float(LATENT_MAX << lp.MEAN_FRAC_BITS)
        mu_f = np.minimum(np.maximum(mu_f, -lim), lim).astype(np.int64)
        sidx = np.floor(z[:, 1] * 2.0 ** (lp.LOG_STEP_BITS - s) - lp.LOG_B0 * 8 + 0.5)
        sidx = np.minimum(np.maximum(sidx, 0), lp.N_SCALES - 1).astype(np.int64)
        rows = sidx * lp.MEAN_FRAC + (mu_f & (lp.MEAN_FRAC - 1))
        return rows, (mu_f >> lp.MEAN_FRAC_BITS) - lp.R


MEAN_FRAC_SHIFT = lp.MEAN_FRAC_BITS


def estimate_bits(arm: IntArm, grids: list[np.ndarray]) -> float:
    """Ideal code length of the latents under the integer ARM (escapes counted at 16 bits)."""
    total = 0.0
    rb = lp.row_bits()
    for g in grids:
        if g.size == 0:
            continue
        rows, base = arm.rows(contexts_of(g))
        sym = g.ravel() - base
        esc = (sym < 0) | (sym > 2 * lp.R)
        total += rb[rows[~esc], sym[~esc]].sum() + (rb[rows[esc], -1] + 16).sum()
    return float(total)


def _schedule(shapes: list[tuple[int, int]]):
    """Coding order of all latents of all grids: by wavefront line t = j + 2 i, then grid,
    then row. Returns the flat padded-buffer size, per latent (in coding order) its buffer
    position, raster index over the grids and grid number, each grid's 12 context offsets
    relative to the latent's position (G, 12), and the bounds of each line t in that order.
    (Contexts are gathered per line from these, never as one (M, 12) index: less memory.)"""
    t_all, pos, rel = [], [], []
    base = 0
    for g, (h, w) in enumerate(shapes):
        pw = w + PAD_L + PAD_R
        ii = np.repeat(np.arange(h, dtype=np.int64), w)
        jj = np.tile(np.arange(w, dtype=np.int64), h)
        t_all.append(jj + 2 * ii)
        pos.append(base + (ii + PAD_T) * pw + jj + PAD_L)
        rel.append([dy * pw + dx for dy, dx in OFFSETS])
        base += (h + PAD_T) * pw
    t_all = np.concatenate(t_all)
    # grids are concatenated in order and each is in raster order (row ascending along a
    # line), so a stable sort by t alone gives the order (t, grid, row)
    order = np.argsort(t_all.astype(np.int32), kind="stable")
    gid = np.repeat(np.arange(len(shapes), dtype=np.int64), [h * w for h, w in shapes])[order]
    t_sorted = t_all[order]
    bounds = np.searchsorted(t_sorted, np.arange(int(t_sorted[-1]) + 2 if t_sorted.size else 1))
    return base, np.concatenate(pos)[order], order, gid, np.array(rel, np.int64).reshape(-1, N_CTX), bounds


def _ctx(buf: np.ndarray, pos: np.ndarray, gid: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """(n, 12) context values of the latents at buffer positions ``pos`` of grids ``gid``."""
    return buf[pos[:, None] + rel[gid]]


def encode_latents(arm: IntArm, grids: list[np.ndarray]) -> bytes:
    """Range-code integer grids (finest first in the list) in wavefront order (:func:`_schedule`)."""
    import constriction

    size, pos, order, gid, rel, _ = _schedule([g.shape for g in grids])
    buf = np.zeros(size, np.int64)
    buf[pos] = np.concatenate([g.ravel() for g in grids])[order]
    vals = buf[pos]
    rows = np.empty(pos.size, np.int64)
    base = np.empty(pos.size, np.int64)
    for a in range(0, pos.size, 1 << 15):
        rows[a:a + (1 << 15)], base[a:a + (1 << 15)] = arm.rows(
            _ctx(buf, pos[a:a + (1 << 15)], gid[a:a + (1 << 15)], rel))
    sym = vals - base
    esc = (sym < 0) | (sym > 2 * lp.R)
    escapes = bytearray()
    for v in vals[esc].tolist():
        write_varint(escapes, zigzag(int(v)))
    sym = np.where(esc, lp.K - 1, sym).astype(np.int32)
    enc = constriction.stream.queue.RangeEncoder()
    fam = constriction.stream.model.Categorical(perfect=False)
    probs = lp.probs()
    for a in range(0, sym.size, 1 << 15):
        enc.encode(sym[a:a + (1 << 15)], fam, probs[rows[a:a + (1 << 15)]])
    words = enc.get_compressed()
    out = bytearray()
    write_varint(out, int(words.size))
    out += words.astype("<u4").tobytes()
    write_varint(out, int(esc.sum()))
    out += escapes
    return bytes(out)


def decode_latents(arm: IntArm, data: bytes, shapes: list[tuple[int, int]]) -> list[np.ndarray]:
    """Inverse of :func:`encode_latents`: one batch per wavefront line over all grids."""
    import constriction

    n, pos0 = read_varint(data, 0, limit=len(data) // 4 + 1)
    end = pos0 + 4 * n
    if end > len(data):
        raise FormatError("overfit: truncated latent stream")
    words = np.frombuffer(bytes(data[pos0:end]), dtype="<u4").astype(np.uint32)
    n_esc, p = read_varint(data, end, limit=len(data))
    esc_vals = np.empty(n_esc, np.int64)
    for k in range(n_esc):
        u, p = read_varint(data, p)
        esc_vals[k] = unzigzag(u)
    if p != len(data):
        raise FormatError("overfit: latent stream has trailing bytes")
    if n_esc and np.abs(esc_vals).max() > LATENT_MAX:
        raise FormatError("overfit: latent out of range")
    size, pos, order, gid, rel, bounds = _schedule(shapes)
    buf = np.zeros(size, np.float64)  # integers, kept as float64 so contexts need no cast
    dec = constriction.stream.queue.RangeDecoder(words)
    fam = constriction.stream.model.Categorical(perfect=False)
    probs = lp.probs()
    e_at = 0
    try:
        for t in range(len(bounds) - 1):
            a, b = bounds[t], bounds[t + 1]
            rows, base = arm.rows(_ctx(buf, pos[a:b], gid[a:b], rel))
            sym = np.asarray(dec.decode(fam, probs[rows]), dtype=np.int64)
            val = sym + base
            e = sym == lp.K - 1
            if e.any():
                k = int(e.sum())
                if e_at + k > n_esc:
                    raise FormatError("overfit: escape stream too short (corrupt latents)")
                val[e] = esc_vals[e_at:e_at + k]
                e_at += k
            buf[pos[a:b]] = val
    except (ValueError, RuntimeError, AssertionError) as exc:
        raise FormatError(f"overfit: latent decoding failed: {exc}") from None
    if e_at != n_esc or not dec.maybe_exhausted():
        raise FormatError("overfit: latent stream not consumed exactly (corrupt or desync)")
    flat = np.empty(pos.size, np.int64)
    flat[order] = buf[pos].astype(np.int64)
    out, k = [], 0
    for h, w in shapes:
        out.append(flat[k:k + h * w].reshape(h, w))
        k += h * w
    return out
