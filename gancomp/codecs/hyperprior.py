"""``hyperprior``: the learned transform codec (Ballé et al. 2018 hyperprior with the
mean-scale Gaussian conditional of Minnen et al. 2018, gain units of Cui et al. 2021 for a
continuous ``--quality``).

Per tile (independent tiles of at most ``tile`` pixels a side, padded to a multiple of 64):
y = g_a(x) * gain(q); z = round(h_a(y)), coded with the factorized prior's integer tables
(one row per channel). The decoder side runs h_s as an integer network (exact in float64, see
:mod:`gancomp.nn.intnet`) giving means at 1/256 and log-scales, quantized to an index into
a fixed table of 64 scales by integer thresholds; y symbols round(y - mean) are coded with
the integer Gaussian tables stored in the weights. Pixels come from the float g_s.

Params: ``q`` quality * 100 (int), ``t`` tile size, ``h`` a 32-bit hash of the decoded
latent state (symbols, means, scale indexes) that catches any desync.
Streams: per tile, the z stream then the y stream (gancomp.entropy indexed framing).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

import numpy as np

from .. import progress
from ..entropy import decode_indexed, encode_indexed
from ..errors import FormatError, InputError, ModelError
from .base import Codec, Encoded, Option, clamp_quality, register

PAD = 64
DEFAULT_TILE = 1024
DEFAULT_QUALITY = 50.0


class _Runtime:
    """A loaded model: float transforms in torch, integer h_s and tables in numpy."""

    def __init__(self, arrays: dict[str, np.ndarray], device: str = "cpu") -> None:
        import torch

        from ..nn.hyperprior import HyperpriorModel
        from ..nn.intnet import IntLayer

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
        n = len([k for k in arrays if k.startswith("hs_int.") and k.endswith(".meta")])
        self.hs = [IntLayer.from_arrays(arrays[f"hs_int.{i}.weight"], arrays[f"hs_int.{i}.bias"],
                                        arrays[f"hs_int.{i}.meta"]) for i in range(n)]
        for layer in self.hs:
            layer.check()
        self.y_freqs = arrays["y_freqs"].astype(np.int64)
        self.y_offsets = arrays["y_offsets"].astype(np.int64)
        self.bounds = arrays["scale_bounds"].astype(np.int64)
        self.z_freqs = arrays["z_freqs"].astype(np.int64)
        self.z_offsets = arrays["z_offsets"].astype(np.int64)

    def t_of(self, quality: float):
        import torch

        return torch.tensor([quality / 100.0 * (self.model.levels - 1)], device=self.device)

    def entropy_params(self, z_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integer means (at 2^8) and scale indexes from integer z: exact on any machine."""
        from ..nn.intnet import run

        out = run(self.hs, z_hat)
        mean_int = out[:self.M].astype(np.int64)
        idx = np.searchsorted(self.bounds, out[self.M:].astype(np.int64), side="right")
        return mean_int, idx

    def z_index(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.broadcast_to(np.arange(shape[0])[:, None, None], shape)


def _runtime(model_id: str, sha: str, device: str) -> _Runtime:
    """The loaded model ``model_id``; ModelError unless its SHA-256 starts with ``sha``."""
    from ..weights import find

    card = find(model_id)
    if not card.sha256.startswith(sha.lower()):
        raise ModelError(f"this file needs model {model_id!r} with SHA-256 {sha}…, "
                         f"but the installed {model_id!r} has {card.sha256[:16]}…")
    return _cached_runtime(model_id, card.sha256, str(card.path), card.path.stat().st_mtime, device)


@lru_cache(maxsize=2)
def _cached_runtime(model_id: str, sha: str, path: str, mtime: float, device: str) -> _Runtime:
    from ..weights import load

    arrays, _ = load(model_id, sha)
    return _Runtime(arrays, device)


def _model_ref(model: str | None) -> tuple[str, str]:
    from ..weights import default_for, find

    card = find(model) if model else default_for("hyperprior")
    if card is None:
        raise ModelError("no hyperprior model is installed (see `gancomp models`)")
    if card.codec != "hyperprior":
        raise ModelError(f"model {card.id!r} is for codec {card.codec!r}, not hyperprior")
    return card.id, card.sha256


def _device(name: str | None) -> str:
    import torch

    if name in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda requested but no CUDA device is available")
    return name


def _tiles(h: int, w: int, tile: int) -> list[tuple[int, int, int, int]]:
    return [(y, x, min(tile, h - y), min(tile, w - x))
            for y in range(0, h, tile) for x in range(0, w, tile)]


def _padded(n: int) -> int:
    return -(-n // PAD) * PAD


def _state_hash(h: "hashlib._Hash", *arrays: np.ndarray) -> None:
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype="<i8").tobytes())


@register
class HyperpriorCodec(Codec):
    name = "hyperprior"
    codec_id = 3
    version = 1
    channels = (3,)
    description = "learned mean-scale hyperprior (Ballé 2018 / Minnen 2018), deterministic decoding"
    encode_options = (Option("tile", int, DEFAULT_TILE, f"tile size in pixels, a multiple of {PAD}",
                             lo=64, hi=4096),
                      Option("model", str, None, "weights id (default: the installed default)"))

    def quality_range(self) -> tuple[float, float]:
        return (0.0, 100.0)

    def sweep_qualities(self) -> list[float]:
        return [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]

    def encode(self, image: np.ndarray, quality: float | None = None, **options: Any) -> Encoded:
        import torch

        options = self.encode_opts(options)
        q100 = int(round(clamp_quality(quality, DEFAULT_QUALITY) * 100))
        tile = options["tile"]
        if tile % PAD:
            raise InputError(f"tile must be a multiple of {PAD} in 64..4096, got {tile}")
        model_id, sha = _model_ref(options.get("model"))
        rt = _runtime(model_id, sha, _device(options.get("device")))
        t = rt.t_of(q100 / 100.0)
        h, w, _ = image.shape
        streams: list[bytes] = []
        digest = hashlib.blake2b(digest_size=4)
        with torch.no_grad():
            g, _ = rt.model.gains(t)
            tiles = _tiles(h, w, tile)
            for k, (y0, x0, th, tw) in enumerate(tiles):
                part = image[y0:y0 + th, x0:x0 + tw]
                part = np.pad(part, ((0, _padded(th) - th), (0, _padded(tw) - tw), (0, 0)), mode="edge")
                x = torch.from_numpy(part.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
                y = rt.model.g_a(x.to(rt.device)) * g
                z_hat = torch.round(rt.model.h_a(y))[0].cpu().numpy().astype(np.int64)
                mean_int, idx = rt.entropy_params(z_hat)
                sym = np.rint(y[0].double().cpu().numpy() - mean_int / 256.0).astype(np.int64)
                streams.append(encode_indexed(z_hat, rt.z_index(z_hat.shape), rt.z_freqs, rt.z_offsets))
                streams.append(encode_indexed(sym, idx, rt.y_freqs, rt.y_offsets))
                _state_hash(digest, z_hat, sym, mean_int, idx)
                progress.update(k + 1, len(tiles), "tiles")
        params = {"q": q100, "t": tile, "h": int.from_bytes(digest.digest(), "little")}
        return Encoded(params, streams, model_id=model_id, model_sha256=sha)

    def decode(self, params, streams, width, height, channels, model_id="", model_sha256="",
               **options) -> np.ndarray:
        import torch

        options = self.decode_opts(options)
        try:
            q100, tile, want = int(params["q"]), int(params["t"]), int(params["h"])
        except (KeyError, TypeError, ValueError):
            raise FormatError("hyperprior params missing or malformed") from None
        if not 0 <= q100 <= 10000 or not 64 <= tile <= 4096 or tile % PAD or channels != 3:
            raise FormatError("hyperprior params out of range")
        tiles = _tiles(height, width, tile)
        if len(streams) != 2 * len(tiles):
            raise FormatError(f"hyperprior expects {2 * len(tiles)} streams, file has {len(streams)}")
        if not model_id:
            raise FormatError("hyperprior file names no model")
        rt = _runtime(model_id, model_sha256, _device(options.get("device")))
        t = rt.t_of(q100 / 100.0)
        out = np.empty((height, width, 3), dtype=np.uint8)
        digest = hashlib.blake2b(digest_size=4)
        with torch.no_grad():
            _, ig = rt.model.gains(t)
            for k, (y0, x0, th, tw) in enumerate(tiles):
                ph, pw = _padded(th), _padded(tw)
                zs = (rt.z_freqs.shape[0], ph // PAD, pw // PAD)
                z_hat = decode_indexed(streams[2 * k], rt.z_index(zs), rt.z_freqs,
                                       rt.z_offsets).reshape(zs)
                mean_int, idx = rt.entropy_params(z_hat)
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
