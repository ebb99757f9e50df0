"""``overfit``: an overfitted neural codec (Cool-chic / C3 style): for each image the encoder
fits latent grids, a small synthesis and an auto-regressive entropy model, and stores them all.

No trained weights: the networks live in the file (quantized and counted in the rate). Decoding
is bit-exact on any machine (integer entropy model, exact float64 synthesis; see
:mod:`gancomp.overfit`). Encoding is slow (gradient descent, ``--effort`` sets how long);
``--device cuda`` fits on a GPU, the coding itself always runs on the CPU.

Params: ``q`` quality * 100, ``e`` effort, ``t`` tile size, ``s`` seed; version 2 adds
``w`` = 1 when the weights are stored as differences from the starting networks the file's
model reference names (``overfit-init-*``, :mod:`gancomp.overfit.prefit`); files without
``w`` (all version-1 files) store the weights themselves.
Streams: per tile (row-major tiles of at most ``t`` x ``t`` pixels) the weight stream and the
latent stream of :mod:`gancomp.overfit.pack`.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ..errors import FormatError
from .base import Codec, Encoded, Option, clamp_quality, register
from .base import torch_device as _device

DEFAULT_QUALITY = 50.0
DEFAULT_EFFORT = 3
DEFAULT_TILE = 1024
# effort -> (iterations, warm-up candidates, warm-up iterations per candidate)
EFFORTS = {1: (300, 1, 0), 2: (600, 1, 0), 3: (1000, 2, 40), 4: (1600, 3, 50),
           5: (2500, 3, 80), 6: (4000, 4, 120), 7: (6000, 5, 150), 8: (9000, 5, 200),
           9: (14000, 6, 300)}


def lambda_of(quality: float) -> float:
    """Quality 0..100 -> rate-distortion trade-off (MSE on 0..1 RGB + lambda * bpp)."""
    return 0.02 * 0.005 ** (quality / 100.0)


def arch_for(pixels: int):
    """Network sizes for a tile: smaller networks where their weights would dominate."""
    from ..overfit.model import Arch

    if pixels < 160_000:
        return Arch(syn=(16,), arm=8)
    return Arch(syn=(24, 24), arm=16)


def tiles(h: int, w: int, t: int) -> list[tuple[int, int, int, int]]:
    return [(y, x, min(t, h - y), min(t, w - x)) for y in range(0, h, t) for x in range(0, w, t)]


class _Bar:
    """A rich progress bar with ETA on stderr (only when enabled and on a terminal)."""

    def __init__(self, enabled: bool, what: str) -> None:
        self.p = None
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (BarColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self.p = Progress(TextColumn(what), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                              TimeElapsedColumn(), TimeRemainingColumn(),
                              TextColumn("loss {task.fields[loss]:.5f}"),
                              console=Console(stderr=True), transient=True)
            self.p.start()
            self.task = self.p.add_task(what, total=1, loss=0.0)

    def __call__(self, done: int, total: int, loss: float) -> None:
        if self.p is not None and (done % 5 == 0 or done == total):
            self.p.update(self.task, completed=done, total=total, loss=loss)

    def close(self) -> None:
        if self.p is not None:
            self.p.stop()


@register
class OverfitCodec(Codec):
    name = "overfit"
    codec_id = 7
    version = 2
    channels = (3,)
    description = "overfitted neural codec (Cool-chic/C3 style): slow encode, exact decode"
    encode_options = (
        Option("effort", int, DEFAULT_EFFORT, "fitting effort: 1 fast .. 9 best (iterations, "
               "warm-up)", lo=1, hi=9),
        Option("seed", int, 0, "random seed of the fit (same seed, same bytes)", lo=0, hi=2 ** 31 - 1),
        Option("tile", int, DEFAULT_TILE, "largest tile side; tiles are fitted separately",
               lo=64, hi=4096),
        Option("iters", int, None, "override the effort's iteration count", lo=10, hi=1_000_000),
        Option("progress", bool, False, "progress bar with ETA on stderr"),
        Option("prefit", bool, True, "start from the installed pre-fitted networks and store "
               "the weights as differences from them (version 2); 0 = random start, "
               "self-contained version-1 file"),
    )

    def quality_range(self) -> tuple[float, float]:
        return (0.0, 100.0)

    def sweep_qualities(self) -> list[float]:
        return [15.0, 40.0, 65.0, 90.0]

    def encode(self, image: np.ndarray, quality: float | None = None, **options: Any) -> Encoded:
        import torch

        from ..overfit import fit as F
        from ..overfit.pack import pack
        from ..overfit.prefit import for_arch, starting_point

        o = self.encode_opts(options)
        q = clamp_quality(quality, DEFAULT_QUALITY)
        q100 = int(round(q * 100))
        lam = lambda_of(q100 / 100)
        effort, seed, tile = o["effort"], o["seed"], o["tile"]
        iters, cands, warm = EFFORTS[effort]
        if o.get("iters"):
            iters = o["iters"]
        device = _device(o.get("device"))
        h, w = image.shape[:2]
        parts = tiles(h, w, tile)
        start = starting_point() if o["prefit"] else None
        inits = [for_arch(*start, arch_for(th * tw)) if start else None for _, _, th, tw in parts]
        if any(i is None for i in inits):  # version-1 file: random starts, warm-up
            start, inits = None, [None] * len(parts)
        elif not o.get("iters"):  # no warm-up from a pre-fitted start: its iterations go
            iters += cands * warm   # to the main phase
        streams: list[bytes] = []
        notes = []
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        bar = _Bar(o["progress"], "overfit")
        try:
            for k, (y0, x0, th, tw) in enumerate(parts):
                part = np.ascontiguousarray(image[y0:y0 + th, x0:x0 + tw])
                arch = arch_for(th * tw)
                r = F.fit(part, lam, arch, F.Schedule(iters=iters, candidates=cands, warm=warm),
                          seed=seed + k, device=device, progress=bar, init=inits[k])
                p = pack(arch, r.latents, r.params, lam, part, init=inits[k])
                streams += p.streams
                notes.append(f"tile {k}: {r.iters_done} iterations, {r.s_per_iter:.3f} s/it, "
                             f"weights {p.weight_bytes} B, steps 2^-{p.k_syn}/2^-{p.k_arm}")
        finally:
            bar.close()
            torch.set_num_threads(threads)
        params = {"q": q100, "e": effort, "t": tile, "s": seed}
        if start is None:
            return Encoded(params, streams, notes=notes)
        card = start[1]
        return Encoded({**params, "w": 1}, streams, model_id=card.id, model_sha256=card.sha256,
                       notes=notes)

    def decode(self, params, streams, width, height, channels, model_id="", model_sha256="",
               **options) -> np.ndarray:
        import torch

        from ..overfit.model import Arch
        from ..overfit.pack import unpack
        from ..overfit.prefit import for_arch, starting_point

        self.decode_opts(options)
        try:
            tile = int(params["t"])
        except (KeyError, TypeError, ValueError):
            raise FormatError("overfit params missing or malformed") from None
        if not 64 <= tile <= 4096 or channels != 3:
            raise FormatError("overfit params out of range")
        parts = tiles(height, width, tile)
        if len(streams) != 2 * len(parts):
            raise FormatError(f"overfit expects {2 * len(parts)} streams, file has {len(streams)}")
        start = None
        if params.get("w") is not None:  # version 2: weights are differences from a model
            if params["w"] != 1 or not model_id:
                raise FormatError("overfit: bad starting-network reference")
            start = starting_point(model_id, model_sha256)
        out = np.empty((height, width, 3), np.uint8)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for k, (y0, x0, th, tw) in enumerate(parts):
                init = None
                if start is not None:
                    init = for_arch(*start, Arch.decode(_arch_bytes(streams[2 * k])))
                    if init is None:
                        raise FormatError("overfit: the starting networks lack this tile's size")
                out[y0:y0 + th, x0:x0 + tw] = unpack(streams[2 * k:2 * k + 2], th, tw, init)
        finally:
            torch.set_num_threads(threads)
        return out


def _arch_bytes(s0: bytes) -> bytes:
    """The architecture bytes at the start of a tile's weight-stream header."""
    from ..entropy import read_varint

    n, pos = read_varint(s0, 0, limit=64)
    if pos + n > len(s0) or n < 9:
        raise FormatError("overfit: truncated tile header")
    return bytes(s0[pos:pos + n - 6])
