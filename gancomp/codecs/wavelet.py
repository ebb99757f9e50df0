"""``wavelet``: the db4 wavelet baseline of seed 003 made into a real codec.

Seed 003 compared GANZ against a db4 wavelet transform that keeps the largest coefficients
per channel. Here: YCbCr (for RGB), an orthonormal 2-D db4 transform (periodized), a dead-zone
quantizer whose threshold keeps exactly the largest coefficients (``--ratio R`` keeps N/R of
them per channel; ``--quality`` sets the step instead), and context-adaptive entropy coding of
positions (zero / non-zero) and values: magnitudes are coded with contexts taken from the
parent coefficient one level coarser and the sibling orientation at the same place, signs as
raw bits, the low-pass band by DPCM.

Params: ``L`` levels, ``y`` YCbCr flag, ``s`` the float32 steps, ``h`` (files since issue 12)
a 32-bit hash of the geometry, the steps and every decoded integer coefficient, so that a
corrupt step or sign bit behind a valid container checksum is refused instead of decoding to
another image (files without ``h`` decode as before). Streams: magnitudes, low-pass
residuals, sign bits (zero-padded to a byte), escapes.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import numpy as np

from ..entropy import AdaptiveCoder, _pack_escapes, _unpack_escapes
from ..errors import FormatError, InputError
from .base import Codec, Encoded, Option, clamp_quality, register

WAVELET = "db4"
MAG_T = 15           # magnitudes >= MAG_T are escaped
LL_T = 31            # low-pass DPCM residuals beyond +-LL_T are escaped
DEADZONE = 0.2       # rounding offset: |c| / step + 0.5 - DEADZONE
RECON = 0.1          # reconstruct |q| > 0 at (|q| - RECON) * step (Laplacian bias)

# BT.601 full-range YCbCr, as in JPEG.
_RGB2YCC = np.array([[0.299, 0.587, 0.114],
                     [-0.168736, -0.331264, 0.5],
                     [0.5, -0.418688, -0.081312]])
_YCC2RGB = np.linalg.inv(_RGB2YCC)


def _digest(h: int, w: int, c: int, levels: int, ycc: int, step_bytes: bytes):
    """The consistency hash, started with what the params and the header say."""
    d = hashlib.blake2b(digest_size=4)
    d.update(struct.pack("<5I", h, w, c, levels, ycc) + step_bytes)
    return d


def _hash_ints(d, a: np.ndarray) -> None:
    d.update(np.ascontiguousarray(a, dtype="<i8").tobytes())


def _levels(h: int, w: int) -> int:
    import pywt

    return max(1, min(5, pywt.dwt_max_level(min(h, w), pywt.Wavelet(WAVELET).dec_len)))


def _step_for_quality(q: float) -> float:
    return 20.0 * 2.0 ** ((50.0 - q) / 14.3)


def _quantize(c: np.ndarray, step: float) -> np.ndarray:
    mag = np.floor(np.abs(c) / step + 0.5 - DEADZONE)
    return (np.sign(c) * np.maximum(mag, 0)).astype(np.int64)


def _dequantize(q: np.ndarray, step: float) -> np.ndarray:
    return np.sign(q) * np.maximum(np.abs(q) - RECON, 0) * step


def _ll_residual(q: np.ndarray) -> np.ndarray:
    """Residual of a left/up average predictor (computable in one shot by the encoder)."""
    pred = np.zeros_like(q)
    pred[1:, 0] = q[:-1, 0]
    pred[0, 1:] = q[0, :-1]
    pred[1:, 1:] = (q[1:, :-1] + q[:-1, 1:]) // 2
    return q - pred


def _ll_reconstruct(r: np.ndarray) -> np.ndarray:
    q = np.zeros_like(r)
    h, w = r.shape
    q[0] = np.cumsum(r[0])
    q[1:, 0] = q[0, 0] + np.cumsum(r[1:, 0])
    for i in range(1, h):  # a row depends on the one above and on its own left neighbour
        row = q[i]
        up = q[i - 1]
        for j in range(1, w):
            row[j] = r[i, j] + (row[j - 1] + up[j]) // 2
    return q


class _Plan:
    """Shapes of the subbands of one channel, coarsest first."""

    def __init__(self, h: int, w: int, levels: int) -> None:
        self.levels = levels
        self.ll = (-(-h // 2 ** levels), -(-w // 2 ** levels))
        # detail level k = 0 is the coarsest
        self.detail = [(-(-h // 2 ** (levels - k)), -(-w // 2 ** (levels - k)))
                       for k in range(levels)]


def _contexts(level: int, orient: int, parent: np.ndarray | None, siblings: list[np.ndarray],
              shape: tuple[int, int], chroma: int) -> np.ndarray:
    """Context id of every coefficient of a detail band, from already-coded bands only."""
    if parent is not None:
        p = np.minimum(np.abs(parent), 2)
        p = np.repeat(np.repeat(p, 2, axis=0), 2, axis=1)[: shape[0], : shape[1]]
    else:
        p = np.zeros(shape, dtype=np.int64)
    if siblings:
        s = np.minimum(sum(np.abs(x) for x in siblings), 2)
    else:
        s = np.zeros(shape, dtype=np.int64)
    band = min(level, 4) * 3 + orient                       # 15 band classes
    return ((chroma * 15 + band) * 9 + p * 3 + s).ravel()


N_CTX = 2 * 15 * 9


@register
class WaveletCodec(Codec):
    name = "wavelet"
    codec_id = 1
    version = 1
    channels = (1, 3)
    description = "db4 wavelet, largest coefficients kept, context-adaptive coding (seed 003 baseline)"
    encode_options = (Option("ratio", float, None, "keep N/R of the N wavelet coefficients per "
                             "channel (instead of --quality)", lo=1.0, hi=1e6),)

    def quality_range(self) -> tuple[float, float]:
        return (5.0, 95.0)

    def sweep_qualities(self) -> list[float]:
        return [20.0, 35.0, 50.0, 62.0, 75.0, 88.0]

    def encode(self, image: np.ndarray, quality: float | None = None,
               **options: Any) -> Encoded:
        ratio = self.encode_opts(options).get("ratio")  # device: no transforms to place
        if ratio is not None and quality is not None:
            raise InputError("give either --quality or --ratio for the wavelet codec, not both")
        h, w, c = image.shape
        x = image.astype(np.float64) - 128.0
        ycc = c == 3
        if ycc:
            x = x @ _RGB2YCC.T
        levels = _levels(h, w)
        coeffs = [self._forward(x[:, :, ch], levels) for ch in range(c)]
        if ratio is not None:
            steps = [self._step_for_ratio(cs, h * w / ratio) for cs in coeffs]
        else:
            q = clamp_quality(quality, 50.0)
            base = _step_for_quality(q)
            steps = [base * (1.0 if ch == 0 or not ycc else 1.25) for ch in range(c)]
        mags = AdaptiveCoder(MAG_T + 1, N_CTX)
        lls = AdaptiveCoder(2 * LL_T + 1, 2)
        signs: list[np.ndarray] = []
        escapes: list[np.ndarray] = []
        step_bytes = struct.pack(f"<{c}f", *steps)
        digest = _digest(h, w, c, levels, int(ycc), step_bytes)
        for ch, (ll, details) in enumerate(coeffs):
            chroma = int(ycc and ch > 0)
            step = steps[ch]
            llq = _quantize(ll, step)
            _hash_ints(digest, llq)
            r = _ll_residual(llq).ravel()
            lls.encode(np.clip(r, -LL_T, LL_T) + LL_T, np.full(r.size, chroma))
            escapes.append(r[np.abs(r) >= LL_T])
            parent_q = None
            for k, bands in enumerate(details):
                qs = [_quantize(b, step) for b in bands]
                for o, qb in enumerate(qs):
                    _hash_ints(digest, qb)
                    ctx = _contexts(k, o, parent_q[o] if parent_q else None, qs[:o], qb.shape, chroma)
                    m = np.abs(qb).ravel()
                    mags.encode(np.minimum(m, MAG_T), ctx)
                    escapes.append(m[m >= MAG_T] - MAG_T)
                    signs.append(qb.ravel()[m > 0] < 0)
                parent_q = qs
        params = {"L": levels, "y": int(ycc), "s": step_bytes,
                  "h": int.from_bytes(digest.digest(), "little")}
        sign_bits = np.packbits(np.concatenate(signs)) if signs else np.zeros(0, np.uint8)
        streams = [mags.finish(), lls.finish(), sign_bits.tobytes(),
                   _pack_escapes(np.concatenate(escapes))]
        return Encoded(params, streams)

    @staticmethod
    def _forward(x: np.ndarray, levels: int):
        import warnings

        import pywt

        with warnings.catch_warnings():  # tiny images: boundary effects are expected
            warnings.simplefilter("ignore", UserWarning)
            co = pywt.wavedec2(x, WAVELET, mode="periodization", level=levels)
        return co[0], [tuple(d) for d in co[1:]]

    @staticmethod
    def _step_for_ratio(coeffs, keep: float) -> float:
        ll, details = coeffs
        allc = np.concatenate([np.abs(b).ravel() for lvl in details for b in lvl])
        keep_detail = int(max(0, min(allc.size, round(keep - ll.size))))
        if keep_detail <= 0:
            thr = float(allc.max()) + 1.0
        else:
            thr = float(np.partition(allc, allc.size - keep_detail)[allc.size - keep_detail])
        # the dead-zone quantizer zeroes |c| < (0.5 + DEADZONE) * step
        return max(thr / (0.5 + DEADZONE) * 0.999, 1e-3)

    def decode(self, params, streams, width, height, channels, model_id="", model_sha256="",
               **options) -> np.ndarray:
        import pywt

        self.decode_opts(options)
        try:
            levels, ycc, step_bytes = int(params["L"]), int(params["y"]), params["s"]
            want = params.get("h")  # absent in files written before the hash
            want = None if want is None else int(want)
        except KeyError as exc:
            raise FormatError(f"wavelet parameter {exc} missing") from None
        if want is not None and not 0 <= want < 2 ** 32:
            raise FormatError("wavelet hash out of range")
        if len(streams) != 4 or not isinstance(step_bytes, bytes) or len(step_bytes) != 4 * channels:
            raise FormatError("wavelet streams or parameters malformed")
        if levels != _levels(height, width) or ycc not in (0, 1) or (ycc and channels != 3):
            raise FormatError("wavelet parameters do not fit the image")
        steps = struct.unpack(f"<{channels}f", step_bytes)
        if not all(np.isfinite(s) and 0 < s < 1e6 for s in steps):
            raise FormatError("wavelet step out of range")
        plan = _Plan(height, width, levels)
        mags = AdaptiveCoder.decoder(streams[0], MAG_T + 1, N_CTX)
        lls = AdaptiveCoder.decoder(streams[1], 2 * LL_T + 1, 2)
        sign_bits = np.unpackbits(np.frombuffer(streams[2], dtype=np.uint8)).astype(bool)
        decoded_mags: list[np.ndarray] = []
        ll_syms: list[np.ndarray] = []
        # pass 1: symbols (escapes are resolved after, since they share one side stream)
        for ch in range(channels):
            chroma = int(ycc and ch > 0)
            n_ll = plan.ll[0] * plan.ll[1]
            ll_syms.append(lls.decode(np.full(n_ll, chroma)) - LL_T)
            parent = None
            for k, shape in enumerate(plan.detail):
                qs = []
                for o in range(3):
                    ctx = _contexts(k, o, parent[o] if parent else None, qs[:o], shape, chroma)
                    m = mags.decode(ctx).reshape(shape)
                    qs.append(m)
                    decoded_mags.append(m)
                parent = qs
        mags.check_end()
        lls.check_end()
        n_esc = sum(int((np.abs(s) >= LL_T).sum()) for s in ll_syms) + \
            sum(int((m >= MAG_T).sum()) for m in decoded_mags)
        esc_iter = iter(_unpack_escapes(streams[3], n_esc).tolist())
        n_signs = sum(int((m > 0).sum()) for m in decoded_mags)
        if n_signs > sign_bits.size or sign_bits.size - n_signs >= 8:
            raise FormatError("wavelet sign stream has the wrong length")
        if sign_bits[n_signs:].any():
            raise FormatError("wavelet sign stream padding is not zero")
        digest = _digest(height, width, channels, levels, ycc, step_bytes)
        out = np.empty((height, width, channels))
        mi, si = 0, 0
        for ch in range(channels):
            step = steps[ch]
            r = ll_syms[ch].copy()
            for idx in np.flatnonzero(np.abs(r) >= LL_T):
                r[idx] = next(esc_iter)
            llq = _ll_reconstruct(r.reshape(plan.ll))
            _hash_ints(digest, llq)
            ll = _dequantize(llq, step)
            details = []
            for _k in range(levels):
                bands = []
                for _o in range(3):
                    m = decoded_mags[mi].ravel().copy()
                    mi += 1
                    for idx in np.flatnonzero(m >= MAG_T):
                        m[idx] = MAG_T + next(esc_iter)
                    nz = m > 0
                    s = np.where(sign_bits[si:si + int(nz.sum())], -1, 1)
                    si += int(nz.sum())
                    q = np.zeros(m.size, dtype=np.int64)
                    q[nz] = m[nz] * s
                    _hash_ints(digest, q)
                    bands.append(_dequantize(q.reshape(decoded_mags[mi - 1].shape), step))
                details.append(tuple(bands))
            if ch == channels - 1 and want is not None \
                    and int.from_bytes(digest.digest(), "little") != want:
                raise FormatError("wavelet coefficient hash mismatch (corrupt step, sign or "
                                  "coefficient data)")
            rec = pywt.waverec2([ll] + details, WAVELET, mode="periodization")
            out[:, :, ch] = rec[:height, :width]
        if ycc:
            out = out @ _YCC2RGB.T
        return np.clip(np.round(out + 128.0), 0, 255).astype(np.uint8)
