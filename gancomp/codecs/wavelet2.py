"""``wavelet2``: CDF 9/7 wavelet + context-modelled coding; the fast default codec.

JPEG 2000's transform (CDF 9/7 lifting, symmetric extension, any size), YCbCr for colour,
one dead-zone quantizer step per subband scaled by the band's synthesis energy gain and the
colour transform's, so equal steps mean equal error in RGB (MSE-optimal). The encoder picks
each coefficient's value by rate-distortion optimization against the live context model
(:class:`gancomp.subband.RD`); reconstruction offsets measured per band group by the encoder
are sent (18 bytes). Coefficients are coded by :mod:`gancomp.subband`: polyphase passes with
contexts from two-sided in-band neighbours, parent, sibling orientations and co-located
luma, signs with context. Version 2 adapts faster (counts halved sooner) and may add a
per-plane Wiener post-filter (:mod:`gancomp.postfilter`). Version 3 (:mod:`gancomp.subband3`,
what the encoder writes) codes the LL bands, then per level the luma group (3 bands) and the
chroma group (6 bands) each on one canvas, a pass of the whole group at a time, each
coefficient as one joint symbol (zero, +-1, +-2, +-3 or more, then the rest), with its own
trained starting counts; no sibling-orientation context. Version 4 is version 3 with each
joint symbol's probabilities from a trained integer mixer (:mod:`gancomp.w2mix`) of the
adaptive models' log-probabilities and context features: same values, fewer bytes. numpy +
constriction only: no torch on the encode or decode path.

Params: ``L`` levels, ``s`` step code, ``c`` chroma step code, ``r`` reconstruction offsets
(int8 x 6 per channel); versions 2 to 4 add ``V`` (absent in version 1 files), and where the
post-filter is on, ``f`` (bit mask of the filtered planes) and ``w`` (14 bytes per filtered
plane, :func:`gancomp.postfilter.quantize`). One stream: the range-coded symbols + raw bits.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .. import accel, dwt97
from .. import postfilter as pfilt
from ..errors import FormatError
from .. import subband3
from ..subband import MODELS, RD, BandInfo, Coders, _resample, code_band, code_ll
from .base import Codec, Encoded, Option, clamp_quality, register

MAX_LEVELS = 6
MIN_LL = 8                 # stop splitting when the low band would get smaller than this
ROUND = 0.40               # quantizer rounding: floor(|c| / step + ROUND) ...
ZTHR = 0.66                # ... and zero below ZTHR steps (the dead zone)
ISO = 0.15                 # isolated coefficients (no significant neighbour or parent) need
                           # ZTHR + ISO steps: their significance costs many bits
CHROMA_CODE = 6            # default chroma step factor 2 ** (code / 16)
POSTFILTER = True          # v2: fit and send a per-plane Wiener post-filter where it pays
PF_ROWS = 1                # fit the post-filter on every PF_ROWS-th row (2: -0.1 s, +0.2 % bits)
RDO_LAM = 0.10             # rate-distortion optimized quantization: bits cost RDO_LAM step^2
RDO_O1 = 0.0               # reconstruction offsets the RDO decisions assume (|q| = 1, > 1)
RDO_O2 = 0.0
RDO_NZ = 0.0               # extra bits charged to a non-zero value (its cost to later contexts)
STEP_DIV = 16.0            # step = 2 ** (step_code / STEP_DIV) / 64 (q 0: ~99, q 100: ~1.3)

# Per bitstream version: the context models' trained starting counts (gancomp/train/w2priors.py,
# file + SHA-256) and the total at which a context's counts are halved. Part of the format.
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
# v2 keeps v1's table (a table retrained on v2's choices measured no better; notes, session 2)
# but halves a context's counts sooner (faster adaptation) and adds the post-filter.
_V1_SHA = "2fef475d5a6cd4e21f56dba6ff4e81e53bc8d19149e100a2eaa763b5e25ba570"
FORMATS: dict[int, tuple[str, str, int]] = {
    1: ("wavelet2_priors.safetensors", _V1_SHA, 1 << 22),
    2: ("wavelet2_priors.safetensors", _V1_SHA, 4096),
    3: ("wavelet2_priors_v3.safetensors",
        "7dd083c31e0a0d68e32e10eb849aabbdb3df5d3251361a7b587e8bb09c8a286b", 4096),
    4: ("wavelet2_priors_v3.safetensors",
        "7dd083c31e0a0d68e32e10eb849aabbdb3df5d3251361a7b587e8bb09c8a286b", 4096),
}
# v4 = v3 + the trained integer mixer of the joint-symbol rows (gancomp.w2mix; file + SHA-256,
# trained by gancomp.train.w2mix). Part of the format.
MIXERS: dict[int, tuple[str, str]] = {
    4: ("wavelet2_mixer_v4.safetensors", "754d336ed799f3d91dff47812bea9de5e1432e86d15fdffb3d4857e86bd0f868"),
}
# v3's LL bands: fixed blocks of this many symbols, each coded with the counts at its start
# (0: v1/v2's block-adaptive coder with early cuts); its detail bands: gancomp.subband3
BLOCKS = {1: 0, 2: 0, 3: 4096, 4: 4096}
VERSION = 4                # what the encoder writes
_PRIORS: dict[int, dict[str, np.ndarray]] = {}


def load_priors(version: int = VERSION) -> dict[str, np.ndarray] | None:
    """The starting counts of wavelet2 ``version`` (checked against their SHA-256)."""
    name, sha, _ = FORMATS[version]
    if not sha:
        return None
    if version not in _PRIORS:
        import hashlib

        from safetensors.numpy import load

        try:
            raw = (DATA_DIR / name).read_bytes()
        except OSError:
            raise FormatError(f"wavelet2 context table {name} missing from this install") from None
        if hashlib.sha256(raw).hexdigest() != sha:
            raise FormatError(f"wavelet2 context table {name} was modified")
        t = load(raw)
        if set(t) != set(MODELS) or any(t[k].shape != (n, a) for k, (a, n) in MODELS.items()):
            raise FormatError("wavelet2 context table has the wrong shape")
        _PRIORS[version] = t
    return _PRIORS[version]


def make_coders(version: int | None = None, data: bytes | None = None,
                step_code: int | None = None, **kw: Any) -> Coders:
    """The context models of wavelet2 ``version`` (default: what the encoder writes; an
    encoder, or a decoder of ``data``); from v4 on with the trained mixer, which needs the
    ``step_code`` (its quality bucket; may be attached later by :func:`attach_mixer`)."""
    version = VERSION if version is None else version
    co = Coders(data, priors=load_priors(version), halve_at=FORMATS[version][2],
                block=BLOCKS[version], **kw)
    if step_code is not None:
        attach_mixer(co, version, step_code)
    return co


def attach_mixer(co: Coders, version: int, step_code: int) -> None:
    """Give ``co`` the trained mixer of format ``version`` (v4 on; no-op before) for
    ``step_code``, unless it has one."""
    if version in MIXERS and getattr(co, "mixer", None) is None:
        from .. import w2mix

        name, sha = MIXERS[version]
        co.mixer = (w2mix.load(DATA_DIR / name, sha), w2mix.quality_bucket(step_code))


# BT.601 full-range YCbCr, as in JPEG; written out so no BLAS call can reorder sums.
_R2Y = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))
_Y2R = ((1.0, 0.0, 1.402), (1.0, -0.344136, -0.714136), (1.0, 1.772, 0.0))
# Squared-error weight of each YCbCr channel in RGB (column energies of _Y2R).
_YCC_GAIN = tuple(sum(_Y2R[r][c] ** 2 for r in range(3)) / 3.0 for c in range(3))


def levels_for(h: int, w: int) -> int:
    """Decomposition depth: up to MAX_LEVELS while the low band keeps >= MIN_LL samples."""
    n, side = 0, min(h, w)
    while n < MAX_LEVELS and side >= 2 * MIN_LL:
        side = (side + 1) // 2
        n += 1
    return n


def step_code_for_quality(q: float) -> int:
    """Quality 0..100 -> integer step code (monotone: higher quality, smaller step)."""
    return int(round(202.0 - q * (STEP_DIV / 16.0)))


def _mix(x: np.ndarray, m) -> list[np.ndarray]:
    return [m[i][0] * x[..., 0] + m[i][1] * x[..., 1] + m[i][2] * x[..., 2] for i in range(3)]


def _level_cls(k: int, levels: int) -> int:
    """0 for the finest level, 1 for the next, 2 for the coarser ones (k = 0 is coarsest)."""
    return min(levels - 1 - k, 2)


class _Steps:
    """Every band's quantizer step, from the two integers stored in the file."""

    def __init__(self, step_code: int, chroma_code: int, levels: int, channels: int) -> None:
        base = self.base = 2.0 ** (step_code / STEP_DIV) / 64.0
        cf = self.cf = 2.0 ** (chroma_code / 16.0)
        g_ll, g_det = dwt97.synthesis_gains(levels)
        self.ll: list[float] = []
        self.det: list[list[tuple[float, float, float]]] = []
        for ch in range(channels):
            wc = _YCC_GAIN[ch] if channels == 3 else 1.0
            f = base * (cf if ch > 0 else 1.0) / math.sqrt(wc)
            self.ll.append(f / math.sqrt(g_ll))
            self.det.append([tuple(f / math.sqrt(g) for g in gs) for gs in g_det])


def _quantize(c: np.ndarray, step: float, rnd: float) -> np.ndarray:
    m = np.floor(np.abs(c) * (1.0 / step) + rnd).astype(np.int64)
    return np.where(c < 0, -m, m)


def _quantize_band(c: np.ndarray, step: float, parent: np.ndarray | None) -> np.ndarray:
    """Dead-zone quantizer with a wider zero bin for isolated coefficients (a cheap
    rate-distortion choice: lone significant coefficients are the most expensive to code)."""
    a = np.abs(c) * (1.0 / step)
    m = np.floor(a + ROUND).astype(np.int64)
    m[a < ZTHR] = 0
    if ISO > 0 and m.size:
        s = np.pad(m > 0, 1)
        h, w = m.shape
        near = np.zeros((h, w), dtype=bool)
        for dr in (0, 1, 2):
            for dc in (0, 1, 2):
                if dr != 1 or dc != 1:
                    near |= s[dr:dr + h, dc:dc + w]
        if parent is not None:
            near |= _resample(parent, m.shape, 2) != 0
        m[~near & (a < ZTHR + ISO)] = 0
    return np.where(c < 0, -m, m)


def _offsets_index(ch: int, lc: int, big: bool) -> int:
    return (ch * 3 + lc) * 2 + int(big)


def _planes(lls: list[np.ndarray], qbands, offs: np.ndarray, steps: "_Steps", levels: int,
            channels: int) -> list[np.ndarray]:
    """Dequantize (with the stored reconstruction offsets) and inverse-transform each plane."""
    planes = []
    for ch in range(channels):
        details = []
        for k in range(levels):
            lc = _level_cls(k, levels)
            o1, o2 = offs[_offsets_index(ch, lc, False)], offs[_offsets_index(ch, lc, True)]
            lev = []
            for o in range(3):   # only the non-zero values (the same floats as dense)
                qb = qbands[ch][k][o]
                if accel.ENABLED and qb.dtype == np.int64:
                    band = np.empty(qb.shape)
                    accel._w2c.dequant(qb, (float(o1), float(o2), float(steps.det[ch][k][o])),
                                       band)
                    lev.append(band)
                    continue
                band = np.zeros(qb.shape)
                qf = qb.ravel()          # one copy of a strided canvas view
                nz = np.flatnonzero(qf)
                v = qf[nz]
                m = np.abs(v).astype(np.float64)
                r = np.where(m == 1, m + o1, m + o2)
                band.ravel()[nz] = np.where(v < 0, -r, r) * steps.det[ch][k][o]
                lev.append(band)
            details.append(tuple(lev))
        planes.append(dwt97.inverse(lls[ch].astype(np.float64) * steps.ll[ch], details))
    return planes


@register
class Wavelet2Codec(Codec):
    name = "wavelet2"
    codec_id = 6
    version = max(FORMATS)     # the newest version this build decodes; files carry their own
    channels = (1, 3)
    description = ("CDF 9/7 wavelet, energy-weighted dead-zone quantizer, context-modelled "
                   "range coding (numpy only)")
    encode_options = (
        Option("chroma", int, CHROMA_CODE, "chroma step factor 2^(chroma/16) over luma",
               lo=-32, hi=64),
        Option("postfilter", int, 1, "post-filter: 0 off, 1 on the planes where it pays, "
               "2 on every plane", lo=0, hi=2),
    )

    chroma_default = CHROMA_CODE
    quality_resolution = 16.0 / STEP_DIV   # one step code per this much quality

    def quality_range(self) -> tuple[float, float]:
        return (0.0, 100.0)

    def sweep_qualities(self) -> list[float]:
        return [15.0, 25.0, 35.0, 45.0, 55.0, 65.0]

    # --- encode --------------------------------------------------------------------------

    def analyse(self, image: np.ndarray):
        """The transform of an image: (levels, per-channel (ll, details)); reusable across
        quality trials (rate control)."""
        h, w, c = image.shape
        if c == 3 and accel.ENABLED and image.dtype == np.uint8:   # same floats as _mix
            planes = [np.empty((h, w)) for _ in range(3)]
            accel._w2c.rgb_to_ycc(np.ascontiguousarray(image), np.array(_R2Y).ravel(), *planes)
        else:
            x = image.astype(np.float64) - 128.0
            planes = _mix(x, _R2Y) if c == 3 else [x[..., 0]]
        levels = levels_for(h, w)
        return levels, [dwt97.forward(p, levels) for p in planes], planes

    def encode(self, image: np.ndarray, quality: float | None = None, **options: Any) -> Encoded:
        opts = self.encode_opts(options)
        q = clamp_quality(quality, 50.0)
        return self.encode_analysed(image.shape, self.analyse(image), step_code_for_quality(q),
                                    opts["chroma"], postfilter=opts["postfilter"])

    def trial_encoder(self, image: np.ndarray, **options: Any):
        """``quality -> Encoded`` for rate control: the transform is computed once, and each
        distinct step (qualities map to 1/16-octave steps) is coded once."""
        opts = self.encode_opts(options)
        analysed = self.analyse(image)
        memo: dict[int, Encoded] = {}

        def trial(quality: float | None) -> Encoded:
            code = step_code_for_quality(clamp_quality(quality, 50.0))
            if code not in memo:
                memo[code] = self.encode_analysed(image.shape, analysed, code, opts["chroma"],
                                                  postfilter=opts["postfilter"])
            return memo[code]

        return trial

    def encode_analysed(self, shape, analysed, step_code: int, chroma_code: int,
                        coders: Coders | None = None, postfilter: int = 1,
                        version: int | None = None) -> Encoded:
        """Quantize and code a transform from :meth:`analyse` at one step as format
        ``version`` (default: VERSION; ``coders`` must be that version's); ``postfilter``:
        0 none, 1 fitted filters on the planes where they pay, 2 on every plane."""
        h, w, c = shape
        version = VERSION if version is None else version
        levels, coeffs, orig = analysed
        steps = _Steps(step_code, chroma_code, levels, c)
        co = coders if coders is not None else make_coders(version)
        attach_mixer(co, version, step_code)
        offs_num = np.zeros(c * 6)
        offs_den = np.zeros(c * 6)
        if version >= 3:
            lls, qbands = self._code_v3(co, coeffs, steps, levels, c)
        else:
            lls, qbands = self._code_v2(co, coeffs, steps, levels)
        for ch, (ll, details) in enumerate(coeffs):
            for k, bands in enumerate(details):
                lc = _level_cls(k, levels)
                for o, b in enumerate(bands):
                    m = np.abs(qbands[ch][k][o])
                    err = np.abs(b) / steps.det[ch][k][o] - m
                    for big in (False, True):
                        sel = (m > 1) if big else (m == 1)
                        i = _offsets_index(ch, lc, big)
                        offs_num[i] += err[sel].sum()
                        offs_den[i] += sel.sum()
        offs = np.clip(np.round(128.0 * offs_num / np.maximum(offs_den, 1)), -64, 63)
        params = {"L": levels, "s": step_code, "c": chroma_code,
                  "r": offs.astype(np.int8).tobytes()}
        if version > 1:
            params["V"] = version
            if POSTFILTER and postfilter:
                planes = _planes(lls, qbands, offs.astype(np.float64) / 128.0, steps, levels, c)
                mask, codes = 0, b""
                for ch in range(c):
                    wf, sse = pfilt.fit(planes[ch], orig[ch], PF_ROWS if h * w >= 1 << 17 else 1)
                    wq = pfilt.quantize(wf)
                    ident = np.zeros(pfilt.NTAP)
                    ident[0] = 1.0
                    gain = sse(ident) - sse(pfilt.weights(wq))
                    wc = _YCC_GAIN[ch] if c == 3 else 1.0
                    if postfilter == 2 or \
                            gain * wc / steps.base ** 2 > RDO_LAM * 8 * pfilt.NBYTES:
                        mask |= 1 << ch
                        codes += wq
                if mask:
                    params["f"] = mask
                    params["w"] = codes
        return Encoded(params, [co.finish()], version=version)

    @staticmethod
    def _code_v2(co: Coders, coeffs, steps: "_Steps", levels: int):
        """v1/v2: plane by plane, band by band (contexts include the sibling bands)."""
        cband = code_band
        qbands: list[list[tuple[np.ndarray, ...]]] = []
        lls: list[np.ndarray] = []
        for ch, (ll, details) in enumerate(coeffs):
            chroma = int(ch > 0)
            lls.append(code_ll(co, chroma, ll.shape, _quantize(ll, steps.ll[ch], 0.5)))
            qlev: list[tuple[np.ndarray, ...]] = []
            for k, bands in enumerate(details):
                lc = _level_cls(k, levels)
                qs: list[np.ndarray] = []
                for o, b in enumerate(bands):
                    st = steps.det[ch][k][o]
                    info = BandInfo(chroma, lc, o, b.shape,
                                    qlev[k - 1][o] if k else None, qs,
                                    qbands[0][k][o] if ch > 0 else None)
                    if RDO_LAM > 0:
                        kappa = steps.cf ** 2 if ch > 0 else 1.0
                        rd = RD(b * (1.0 / st), kappa, RDO_LAM, RDO_O1, RDO_O2, RDO_NZ)
                        qb = cband(co, info, np.zeros(b.shape, dtype=np.int64), rd)
                    else:
                        qb = _quantize_band(b, st, qlev[k - 1][o] if k else None)
                        cband(co, info, qb)
                    qs.append(qb)
                qlev.append(tuple(qs))
            qbands.append(qlev)
        return lls, qbands

    @staticmethod
    def _code_v3(co: Coders, coeffs, steps: "_Steps", levels: int, channels: int,
                 decode_shapes=None):
        """v3: the LL bands, then level by level the luma group (its three bands on one
        canvas) and the chroma group (six bands): one pass covers a whole group. Contexts: in-band
        neighbours, parent and its neighbours, co-located luma for chroma (no siblings).
        Decodes when ``decode_shapes`` = (ll shape, detail shapes) is given."""
        dec = decode_shapes is not None
        lls: list[np.ndarray] = []
        for ch in range(channels):
            if dec:
                lls.append(code_ll(co, int(ch > 0), decode_shapes[0]))
            else:
                ll = coeffs[ch][0]
                lls.append(code_ll(co, int(ch > 0), ll.shape, _quantize(ll, steps.ll[ch], 0.5)))
        qbands: list[list[tuple[np.ndarray, ...]]] = [[] for _ in range(channels)]
        groups = [[0]] + ([[1, 2]] if channels == 3 else [])
        for k in range(levels):
            lc = _level_cls(k, levels)
            for chans in groups:
                infos, a, qs = [], [], []
                for ch in chans:
                    for o in range(3):
                        shp = decode_shapes[1][k][o] if dec else coeffs[ch][1][k][o].shape
                        infos.append(BandInfo(int(ch > 0), lc, o, shp,
                                              qbands[ch][k - 1][o] if k else None, [],
                                              qbands[0][k][o] if ch > 0 else None))
                        if not dec:
                            b, st = coeffs[ch][1][k][o], steps.det[ch][k][o]
                            if RDO_LAM > 0:
                                a.append(b * (1.0 / st))
                            else:
                                qs.append(_quantize_band(b, st, qbands[ch][k - 1][o]
                                                         if k else None))
                if dec:
                    res = subband3.code_group(co, infos)
                elif RDO_LAM > 0:
                    kappa = steps.cf ** 2 if chans[0] > 0 else 1.0
                    rd = RD(None, kappa, RDO_LAM, RDO_O1, RDO_O2, RDO_NZ)
                    res = subband3.code_group(co, infos, [], a, rd)
                else:
                    res = subband3.code_group(co, infos, qs)
                for i, ch in enumerate(chans):
                    qbands[ch].append(tuple(res[3 * i:3 * i + 3]))
        return lls, qbands

    # --- decode --------------------------------------------------------------------------

    def decode(self, params, streams, width, height, channels, model_id="", model_sha256="",
               **options) -> np.ndarray:
        self.decode_opts(options)
        try:
            levels, step_code, chroma_code, offs_b = (params["L"], params["s"], params["c"],
                                                      params["r"])
        except KeyError as exc:
            raise FormatError(f"wavelet2 parameter {exc} missing") from None
        if not all(isinstance(v, int) for v in (levels, step_code, chroma_code)) or \
                not isinstance(offs_b, bytes):
            raise FormatError("wavelet2 parameters have the wrong types")
        version = params.get("V", 1)
        if type(version) is not int or version not in FORMATS or version == 1 and "V" in params:
            raise FormatError("wavelet2 format version unknown to this gancomp")
        if len(streams) != 1 or channels not in (1, 3) or len(offs_b) != 6 * channels:
            raise FormatError("wavelet2 streams or parameters malformed")
        if levels != levels_for(height, width) or not (-512 <= step_code <= 512) or \
                not (-32 <= chroma_code <= 64):
            raise FormatError("wavelet2 parameters out of range for this image")
        offs = np.frombuffer(offs_b, dtype=np.int8).astype(np.float64) / 128.0
        steps = _Steps(step_code, chroma_code, levels, channels)
        ll_shape, det_shapes = dwt97.band_shapes(height, width, levels)
        co = make_coders(version, streams[0], step_code)
        if version >= 3:
            lls, qbands = self._code_v3(co, None, steps, levels, channels,
                                        decode_shapes=(ll_shape, det_shapes))
        else:
            cband = code_band
            qbands = []
            lls = []
            for ch in range(channels):
                chroma = int(ch > 0)
                lls.append(code_ll(co, chroma, ll_shape))
                qlev: list[tuple[np.ndarray, ...]] = []
                for k, shapes in enumerate(det_shapes):
                    lc = _level_cls(k, levels)
                    qs: list[np.ndarray] = []
                    for o, shp in enumerate(shapes):
                        info = BandInfo(chroma, lc, o, shp, qlev[k - 1][o] if k else None, qs,
                                        qbands[0][k][o] if ch > 0 else None)
                        qs.append(cband(co, info))
                    qlev.append(tuple(qs))
                qbands.append(qlev)
        co.check_end()
        planes = _planes(lls, qbands, offs, steps, levels, channels)
        if version > 1 and "f" in params:
            mask, codes = params["f"], params.get("w")
            if type(mask) is not int or not 0 < mask < 1 << channels or \
                    not isinstance(codes, bytes) or \
                    len(codes) != bin(mask).count("1") * pfilt.NBYTES:
                raise FormatError("wavelet2 post-filter parameters malformed")
            k = 0
            for ch in range(channels):
                if mask >> ch & 1:
                    try:
                        planes[ch] = pfilt.apply(planes[ch], codes[k:k + pfilt.NBYTES])
                    except ValueError:
                        raise FormatError("wavelet2 post-filter weights malformed") from None
                    k += pfilt.NBYTES
        out = np.empty((height, width, channels), dtype=np.uint8)
        if accel.ENABLED:   # the same floats, rounding and clipping as the loop below
            pl = [np.ascontiguousarray(p, dtype=np.float64) for p in planes]
            if channels == 3:
                accel._w2c.ycc_to_rgb(*pl, tuple(x for m in _Y2R for x in m[1:]), out)
            else:
                accel._w2c.ycc_to_rgb(pl[0], None, None, None, out)
            return out
        for i in range(channels):   # _Y2R without its exact 1.0 and 0.0 terms: same floats
            if channels == 3:
                y, cb, cr = planes
                m = _Y2R[i]
                v = y + m[1] * cb if m[1] else y.copy()
                if m[2]:
                    v += m[2] * cr
            else:
                v = planes[0]
            v += 128.0
            np.round(v, out=v)
            np.clip(v, 0, 255, out=v)
            out[..., i] = v
        return out
