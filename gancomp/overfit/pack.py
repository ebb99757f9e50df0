"""From a fitted float model to coded bytes and back (one tile).

After fitting, the latents are rounded and the networks quantized: the ARM's weight step
2^-kA is the one that minimizes latent bits + ARM weight bits; the synthesis step 2^-kS the
one that minimizes MSE + lambda * weight bits, with MSE measured on the exact decoder output.

Tile streams: stream 0 = varint(len(head)) + head + weights, head = Arch bytes + kS + kA + a 4-byte hash of the decoded integer state;
stream 1 = the latents (:func:`gancomp.overfit.arm.encode_latents`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..entropy import read_varint, write_varint
from ..errors import FormatError
from . import arm as A
from .model import (MAX_WBITS, Arch, decode_ints, encode_ints, int_arm, param_shapes, quantize,
                    synthesize_exact)

K_ARM = range(3, MAX_WBITS + 1)
K_SYN = range(5, MAX_WBITS + 1)


@dataclass
class Packed:
    streams: list[bytes]
    pixels: np.ndarray
    latent_bits: float
    weight_bytes: int
    k_syn: int
    k_arm: int


def _digest(grids: list[np.ndarray], tensors: list[np.ndarray]) -> bytes:
    """4-byte hash of the decoded integer state: catches corruption the coders cannot see."""
    d = hashlib.blake2b(digest_size=4)
    for a in (*grids, *tensors):
        d.update(np.ascontiguousarray(a, dtype="<i8").tobytes())
    return d.digest()


def _names(arch: Arch, prefix: tuple[str, ...]) -> list[str]:
    return [n for n, _ in param_shapes(arch) if n.startswith(prefix)]


def _coded(ints: dict[str, np.ndarray], names: list[str], init: dict[str, np.ndarray] | None,
           k: int) -> list[np.ndarray]:
    """The integers stored for ``names``: the weights, or (with ``init``, codec version 2)
    their differences from the starting networks quantized with the same step."""
    if init is None:
        return [ints[n] for n in names]
    base = quantize(init, names, k)
    return [ints[n] - base[n] for n in names]


def pack(arch: Arch, latents: list[np.ndarray], params: dict[str, np.ndarray], lam: float,
         target: np.ndarray, init: dict[str, np.ndarray] | None = None) -> Packed:
    """Quantize and code a fitted tile; ``target`` (h, w, 3) uint8 scores the synthesis step.
    With ``init`` (the pre-fitted networks the fit started from) the weights are stored as
    differences from them."""
    h, w = target.shape[:2]
    grids = [np.clip(np.rint(y), -A.LATENT_MAX, A.LATENT_MAX).astype(np.int64) for y in latents]
    arm_names, syn_names = _names(arch, ("arm",)), _names(arch, ("syn", "conv"))
    best_a = None
    for k in K_ARM:
        ints = quantize(params, arm_names, k)
        try:
            arm = int_arm(arch, ints, k)
        except FormatError:
            continue
        cost = A.estimate_bits(arm, grids) + 8 * len(encode_ints(_coded(ints, arm_names, init, k)))
        if best_a is None or cost < best_a[0]:
            best_a = (cost, k, ints, arm)
        elif k >= best_a[1] + 2:  # the cost is U-shaped in k: stop two steps past the best
            break
    assert best_a is not None
    best_s = None
    ref = target.astype(np.float64)
    for k in K_SYN:
        ints = quantize(params, syn_names, k)
        pix = synthesize_exact(arch, grids, ints, k, h, w)
        mse = float(np.mean((pix - ref) ** 2)) / 255.0 ** 2
        cost = mse + lam * 8 * len(encode_ints(_coded(ints, syn_names, init, k))) / (h * w)
        if best_s is None or cost < best_s[0]:
            best_s = (cost, k, ints, pix)
        elif k >= best_s[1] + 2:
            break
    _, ka, arm_ints, arm = best_a
    _, ks, syn_ints, pix = best_s
    ints = {**syn_ints, **arm_ints}
    head = arch.encode() + bytes([ks, ka]) + _digest(grids, [ints[n] for n, _ in param_shapes(arch)])
    s0 = bytearray()
    write_varint(s0, len(head))
    s0 += head
    wbytes = encode_ints(_coded(syn_ints, syn_names, init, ks) + _coded(arm_ints, arm_names, init, ka))
    s0 += wbytes
    s1 = A.encode_latents(arm, grids)
    return Packed([bytes(s0), s1], pix, A.estimate_bits(arm, grids), len(wbytes), ks, ka)


def unpack(streams: list[bytes], h: int, w: int, init: dict[str, np.ndarray] | None = None
           ) -> np.ndarray:
    """Decode one tile's two streams to (h, w, 3) uint8 (``init``: the starting networks the
    weights are differences from, codec version 2)."""
    s0, s1 = streams
    n, pos = read_varint(s0, 0, limit=64)
    if pos + n > len(s0) or n < 9:
        raise FormatError("overfit: truncated tile header")
    head = s0[pos:pos + n]
    arch = Arch.decode(head[:-6])
    ks, ka, want = head[-6], head[-5], head[-4:]
    if not (min(K_SYN) <= ks <= MAX_WBITS and min(K_ARM) <= ka <= MAX_WBITS):
        raise FormatError("overfit: bad weight quantization step")
    shapes = param_shapes(arch)
    try:
        tensors = decode_ints(s0[pos + n:], [s for _, s in shapes])
    except ValueError as exc:
        raise FormatError(f"overfit: weight stream corrupt ({exc})") from None
    ints = {name: t for (name, _), t in zip(shapes, tensors)}
    if init is not None:
        if any(n not in init for n, _ in shapes):
            raise FormatError("overfit: the starting networks do not fit this tile's architecture")
        syn_names, arm_names = _names(arch, ("syn", "conv")), _names(arch, ("arm",))
        base = {**quantize(init, syn_names, ks), **quantize(init, arm_names, ka)}
        ints = {n: ints[n] + base[n] for n in ints}
        tensors = [ints[n] for n, _ in shapes]
    if any(np.abs(t).max(initial=0) >= 1 << 15 for n_, t in ints.items() if n_.endswith(".w")):
        raise FormatError("overfit: weight out of range")
    if any(np.abs(t).max(initial=0) >= 1 << 30 for t in ints.values()):
        raise FormatError("overfit: bias out of range")
    arm = int_arm(arch, ints, ka)
    grids = A.decode_latents(arm, s1, arch.grid_shapes(h, w))
    if _digest(grids, tensors) != want:
        raise FormatError("overfit: decoded state hash mismatch (corrupt stream)")
    return synthesize_exact(arch, grids, ints, ks, h, w)
