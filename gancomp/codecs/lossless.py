"""``lossless``: MLP predictive coding (seed 001) made exact, adaptive and fast.

Seed 001 predicted each pixel from a causal neighbourhood with an MLP and Huffman-coded the
prediction errors. Here the MLP (see :mod:`gancomp.nn.intmlp`) predicts for every subpixel
a mean and a scale of a discretized logistic, channels in the order G, R, B (R and B see the
residuals of the channels before them), and a range coder (constriction) codes each value
with its own distribution. The network is an integer network evaluated exactly, and the
distributions come from an integer table stored with the weights, so any machine decodes.

An online scale calibration (:class:`ScaleAdapter`) corrects the network's scale per
(channel, scale) context from the errors seen so far, identically on both sides.

Decoding follows diagonals t = x + 2y: every pixel of a diagonal depends only on earlier
diagonals, so one network call predicts a whole diagonal (W + 2H steps instead of W*H).

Params: ``e`` Huffman flag, ``f`` fine-tuned flag, ``a`` online calibration flag, ``h``
(files since issue 12) a 32-bit hash of the decoded pixels: a corrupt stream behind a valid
container checksum is refused instead of decoding to other pixels.

Options: ``entropy="huffman"`` codes the rounded-mean residuals with per-image Huffman codes
(the seed's variant, for comparison); ``finetune=True`` fits the heads' output layers to the
image, and stores the quantized updates only when they save more bits than they cost
(``finetune="always"`` stores them regardless: for tests and studies).
"""

from __future__ import annotations

import hashlib
import zlib
from functools import lru_cache
from typing import Any

import numpy as np

from .. import progress
from ..entropy import _frame, _unframe, read_varint, unzigzag, write_varint, zigzag
from ..errors import FormatError, InputError
from ..nn import causal, intmlp
from .base import Codec, Encoded, Option, register

CHUNK = 16384          # symbols per constriction call in the encoder
ENC_BATCH = 4096       # pixels per network call in the encoder (cache-sized)
FT_STEP_BITS = 7       # fine-tune updates are multiples of 2^(fw - FT_STEP_BITS) weight units
FT_SAMPLES = 16384     # pixels the fine-tuning fits on
FT_ITERS = 60
ADAPT_DECAY = 1024     # online scale calibration: counts are halved at this size
ADAPT_PRIOR = 16       # pseudo-counts of the network's own scale


def _family():
    import constriction

    return constriction.stream.model.Categorical(perfect=False)


@lru_cache(maxsize=4)
def _load(model_id: str = "", sha: str = "") -> tuple[intmlp.IntPredictor, str, str]:
    """(integer predictor, model id, sha256) of the named or default lossless model."""
    from .. import weights
    from ..errors import ModelError

    if not model_id:
        card = weights.default_for("lossless")
        if card is None:
            raise ModelError("no model for codec 'lossless' is installed (see `gancomp models`)")
        model_id = card.id
    arrays, card = weights.load(model_id, sha)  # cached: read and verified once per process
    return intmlp.IntPredictor(arrays), card.id, card.sha256


def _to_canvas_order(image: np.ndarray) -> np.ndarray:
    """(H, W, C) -> (H, W, 3) in coding order; gray is replicated (only channel 0 is coded)."""
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[:, :, list(intmlp.ORDER)])


def _from_canvas_order(canvas3: np.ndarray, channels: int) -> np.ndarray:
    if channels == 1:
        return np.ascontiguousarray(canvas3[:, :, :1])
    out = np.empty_like(canvas3)
    out[:, :, list(intmlp.ORDER)] = canvas3
    return out


def _stream_order(diag: np.ndarray, nc: int) -> tuple[np.ndarray, np.ndarray]:
    """For symbols laid out (pixel in wavefront order, channel): their position in the coded
    stream, where each diagonal codes channel 0 of all its pixels, then channel 1, ..."""
    n = int(diag[-1])
    lens = np.diff(diag)
    t = np.repeat(np.arange(lens.size), lens)
    within = np.arange(n) - diag[t]
    pos = nc * diag[t][:, None] + np.arange(nc)[None, :] * lens[t][:, None] + within[:, None]
    return pos.ravel(), t


class ScaleAdapter:
    """Online scale calibration, identical in encoder and decoder (no side information).

    Context: (channel, the network's scale index). Each context keeps integer running sums of
    |value - mean| (1/8 pixel) and a count, halved when the count reaches ADAPT_DECAY. A
    prediction uses the scale index whose expected |error| (from the stored integer table) is
    closest to the context's running mean, shrunk towards the network's own by ADAPT_PRIOR
    pseudo-counts. Updated after every diagonal, so the decoder sees exactly what the encoder saw.
    """

    def __init__(self, net: intmlp.IntPredictor, nc: int) -> None:
        self.expect = net.expected_abs_error()          # (S,) int64, 1/8 px * 1024
        s = self.expect.size
        self.sum = np.zeros((nc, s), dtype=np.int64)
        self.count = np.zeros((nc, s), dtype=np.int64)

    def adjust(self, k: int, idx: np.ndarray) -> np.ndarray:
        n = self.count[k, idx]
        target = (self.sum[k, idx] * 1024 + self.expect[idx] * ADAPT_PRIOR) // (n + ADAPT_PRIOR)
        j = np.clip(np.searchsorted(self.expect, target), 1, self.expect.size - 1)
        return np.where(np.abs(self.expect[j - 1] - target) <= np.abs(self.expect[j] - target),
                        j - 1, j)

    def update(self, k: int, idx: np.ndarray, err8: np.ndarray) -> None:
        s = self.expect.size
        self.sum[k] += np.bincount(idx, weights=np.abs(err8), minlength=s).astype(np.int64)
        self.count[k] += np.bincount(idx, minlength=s)
        full = self.count[k] >= ADAPT_DECAY
        if full.any():
            self.sum[k, full] //= 2
            self.count[k, full] //= 2


def _adapt(net, mean8: np.ndarray, idx: np.ndarray, values: np.ndarray, diag: np.ndarray
           ) -> np.ndarray:
    """The scale indices the decoder will use, replaying :class:`ScaleAdapter` diagonal by
    diagonal over known values (encoder side)."""
    nc = idx.shape[1]
    ad = ScaleAdapter(net, nc)
    out = np.empty_like(idx)
    for t in range(diag.size - 1):
        a, b = diag[t], diag[t + 1]
        for k in range(nc):
            c = idx[a:b, k].astype(np.int64)
            out[a:b, k] = ad.adjust(k, c)
            ad.update(k, c, values[a:b, k] * intmlp.MEAN_FRAC - mean8[a:b, k])
    return out


def _heads(net, hid, m, vals, nc, deltas):
    """Run the heads in coding order on known values: (features, mean8, idx) per pixel."""
    res = vals - m
    errs = np.zeros_like(res)
    feats, mean8, idx = [], np.empty((m.shape[0], nc), np.int32), np.empty((m.shape[0], nc), np.int32)
    for k in range(nc):
        g = net.head_features(k, hid, res, errs)
        out, shift = net.output(k, g, None if deltas is None else deltas[k] * _step(net, k))
        mean8[:, k], idx[:, k] = net.params(m[:, k], out, shift)
        errs[:, k] = vals[:, k] * intmlp.MEAN_FRAC - mean8[:, k]
        feats.append(g)
    return feats, mean8, idx


def _features(net, canvas, ys, xs, values, nc, deltas=None):
    """(start, MEDs, head features, mean8, idx) of the given pixels, in ENC_BATCH pieces."""
    ctx = net.context
    for a in range(0, ys.size, ENC_BATCH):
        inputs, m = ctx.gather(canvas, ys[a:a + ENC_BATCH], xs[a:a + ENC_BATCH])
        hid = net.trunk(inputs)
        feats, mean8, idx = _heads(net, hid, m, values[a:a + ENC_BATCH], nc, deltas)
        yield a, m, feats, mean8, idx


def _predict(net, canvas, ys, xs, values, nc, deltas):
    """Integer (mean8, scale index) arrays (N, nc) of every pixel, as the decoder gets them."""
    mean8 = np.empty((ys.size, nc), dtype=np.int32)
    idx = np.empty((ys.size, nc), dtype=np.int32)
    for a, m, _f, m8, ix in _features(net, canvas, ys, xs, values, nc, deltas):
        mean8[a:a + m.shape[0]], idx[a:a + m.shape[0]] = m8, ix
        progress.update(a + m.shape[0], ys.size, "pixels")
    return mean8, idx


# ---------------------------------------------------------------------------------------------
# fine-tuning of the heads' output layers


def _pack_delta(deltas: list[np.ndarray]) -> bytes:
    out = bytearray()
    for d in deltas:
        for v in d.ravel().tolist():
            write_varint(out, zigzag(int(v)))
    return zlib.compress(bytes(out), 9)


def _unpack_delta(data: bytes, net: intmlp.IntPredictor, nc: int) -> list[np.ndarray]:
    try:
        raw = zlib.decompress(data)
    except zlib.error:
        raise FormatError("fine-tuning stream is corrupt") from None
    pos, out = 0, []
    for k in range(nc):
        w, _b, _s = net.layers[f"head{k}.1"]
        vals = np.empty((w.shape[0] + 1) * w.shape[1], dtype=np.float64)
        for i in range(vals.size):
            u, pos = read_varint(raw, pos, limit=1 << 20)
            vals[i] = unzigzag(u)
        out.append(vals.reshape(w.shape[0] + 1, w.shape[1]))
    if pos != len(raw):
        raise FormatError("fine-tuning stream has trailing bytes")
    return out


def _step(net: intmlp.IntPredictor, k: int) -> float:
    fw = net.layers[f"head{k}.1"][2] - intmlp.ACT_BITS
    return float(2 ** max(0, fw - FT_STEP_BITS))


def _finetune(net: intmlp.IntPredictor, canvas: np.ndarray, ys: np.ndarray, xs: np.ndarray,
              values: np.ndarray, nc: int, seed: int = 0) -> list[np.ndarray]:
    """Fit integer updates (in units of _step) of each head's output layer to this image."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead
    try:
        return _fit(net, canvas, ys, xs, values, nc, seed)
    finally:
        torch.set_num_threads(threads)


def _fit(net, canvas, ys, xs, values, nc, seed):
    import torch

    from ..nn.adam import Adam

    rng = np.random.default_rng(seed)
    n = ys.size
    sel = np.sort(rng.choice(n, FT_SAMPLES, replace=False)) if n > FT_SAMPLES else np.arange(n)
    pieces = list(_features(net, canvas, ys[sel], xs[sel], values[sel], nc))
    meds = np.concatenate([p[1] for p in pieces])
    feats = [np.concatenate([p[2][k] for p in pieces]) for k in range(nc)]
    values = values[sel]
    deltas = []
    for k, g in enumerate(feats):
        w, b, shift = net.layers[f"head{k}.1"]
        step = _step(net, k)
        # float32 is enough here: the fit only proposes updates; the integer model decides
        gt = torch.from_numpy((g / 2.0 ** intmlp.ACT_BITS).astype(np.float32))
        base = torch.from_numpy(((g @ w + b) / 2.0 ** shift).astype(np.float32))
        md = torch.from_numpy(meds[:, k].astype(np.float32))
        x = torch.from_numpy(values[:, k].astype(np.float32))
        scale = step / 2.0 ** (shift - intmlp.ACT_BITS)  # real value of one update unit
        dw = torch.zeros(w.shape[0] + 1, w.shape[1], dtype=torch.float32, requires_grad=True)
        opt = Adam([dw], lr=0.5)
        for _ in range(FT_ITERS):
            out = base + (gt @ dw[:-1] + dw[-1]) * scale
            loss = intmlp.nll_bits(md + out[:, 0], out[:, 1], x).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        deltas.append(np.round(dw.detach().numpy()))
    return deltas


# ---------------------------------------------------------------------------------------------


@register
class LosslessCodec(Codec):
    name = "lossless"
    codec_id = 4
    version = 1
    channels = (1, 3)
    lossless = True
    description = "lossless: integer-MLP predictive coding, per-pixel adaptive logistic (seed 001)"
    encode_options = (
        Option("entropy", str, "adaptive", "entropy coder (huffman: the seed's variant)",
               choices=("adaptive", "huffman")),
        Option("finetune", str, "false", "fit the output layers to the image when it pays "
               "(always: keep them regardless)", choices=("false", "true", "always")),
        Option("model", str, None, "weights id (default: the installed default)"))

    def quality_range(self) -> tuple[float, float]:
        return (100.0, 100.0)

    def sweep_qualities(self) -> list[float]:
        return [100.0]

    # -- encoder ---------------------------------------------------------------------------

    def encode(self, image: np.ndarray, quality: float | None = None, **options: Any) -> Encoded:
        o = self.encode_opts(options)
        entropy, model = o["entropy"], o.get("model") or ""
        finetune = {"false": False, "true": True}.get(o["finetune"], o["finetune"])
        if quality is not None and float(quality) != 100.0:
            raise InputError("the lossless codec has no quality setting (it is always exact)")
        if entropy == "huffman" and finetune:
            raise InputError("--finetune applies to the adaptive entropy coder only")
        net, model_id, sha = _load(str(model) if model else "")
        h, w, c = image.shape
        nc = 1 if c == 1 else 3
        img3 = _to_canvas_order(image)
        ctx = net.context
        ys, xs = causal.all_pixels(h, w)
        diag = causal.diagonals(h, w)
        values = img3[ys, xs].astype(np.int64)                  # (N, 3) coding order
        canvas = ctx.pad(img3)
        adapt = entropy == "adaptive"
        mean8, idx = _predict(net, canvas, ys, xs, values, nc, None)
        if adapt:
            idx = _adapt(net, mean8, idx, values, diag)
        deltas = None
        notes: list[str] = []
        if finetune:
            cand = _finetune(net, canvas, ys, xs, values, nc)
            m2, i2 = _predict(net, canvas, ys, xs, values, nc, cand)
            i2 = _adapt(net, m2, i2, values, diag)
            packed = _pack_delta(cand)
            bits0 = _ideal_bits(net, mean8, idx, values[:, :nc])
            bits1 = _ideal_bits(net, m2, i2, values[:, :nc]) + 8 * len(packed)
            notes.append(f"fine-tuning: {bits0 / 8:.0f} -> {bits1 / 8:.0f} bytes "
                         f"({'kept' if bits1 < bits0 else 'dropped'})")
            if bits1 < bits0 or finetune == "always":
                deltas, mean8, idx = cand, m2, i2
        pos, _t = _stream_order(diag, nc)
        sym = np.empty(ys.size * nc, dtype=np.int32)
        mm = np.empty_like(sym)
        ii = np.empty_like(sym)
        sym[pos] = values[:, :nc].ravel()
        mm[pos] = mean8.ravel()
        ii[pos] = idx.ravel()
        kk = np.empty_like(sym)
        kk[pos] = np.tile(np.arange(nc), ys.size)
        if entropy == "huffman":
            coded, table = _huffman_encode(sym, mm, kk, nc)
        else:
            coded, table = _range_encode(net, sym, mm, ii), b""
        params = {"e": int(entropy == "huffman"), "f": int(deltas is not None), "a": int(adapt),
                  "h": _pixel_hash(image)}
        streams = [coded, _pack_delta(deltas) if deltas is not None else b"", table]
        return Encoded(params, streams, model_id=model_id, model_sha256=sha, notes=notes)

    # -- decoder ---------------------------------------------------------------------------

    def decode(self, params, streams, width, height, channels, model_id="", model_sha256="",
               **options) -> np.ndarray:
        self.decode_opts(options)
        try:
            huff, ft = int(params["e"]), int(params["f"])
            adapt = int(params.get("a", 0))  # files before online calibration have no "a"
            want = None if params.get("h") is None else int(params["h"])  # since issue 12
        except KeyError as exc:
            raise FormatError(f"lossless parameter {exc} missing") from None
        if len(streams) != 3 or huff not in (0, 1) or ft not in (0, 1) or adapt not in (0, 1) \
                or (adapt and huff) or channels not in (1, 3):
            raise FormatError("lossless streams or parameters malformed")
        if not model_id:
            raise FormatError("lossless file names no model")
        net, _mid, _sha = _load(model_id, model_sha256)
        nc = 1 if channels == 1 else 3
        deltas = None
        if ft:
            deltas = [d * _step(net, k) for k, d in enumerate(_unpack_delta(streams[1], net, nc))]
        elif streams[1]:
            raise FormatError("unexpected fine-tuning stream")
        if huff:
            source = _HuffmanSource(streams[0], streams[2], nc)
        else:
            if streams[2]:
                raise FormatError("unexpected Huffman table")
            source = _RangeSource(streams[0], net)
        ys, xs = causal.all_pixels(height, width)
        diag = causal.diagonals(height, width)
        ctx = net.context
        canvas = ctx.canvas(height, width)
        adapter = ScaleAdapter(net, nc) if adapt else None
        n_diag = diag.size - 1
        for t in range(n_diag):
            progress.update(t + 1, n_diag, "rows")
            a, b = diag[t], diag[t + 1]
            yy, xx = ys[a:b], xs[a:b]
            inputs, m = ctx.gather(canvas, yy, xx)
            hid = net.trunk(inputs)
            res = np.zeros((b - a, 3), dtype=np.int64)
            errs = np.zeros((b - a, 3), dtype=np.int64)
            py, px = yy + ctx.top, xx + ctx.left
            for k in range(nc):
                out, shift = net.head(k, hid, res, None if deltas is None else deltas[k], errs)
                mean8, idx = net.params(m[:, k], out, shift)
                if adapter is not None:
                    v = source.decode(k, mean8, adapter.adjust(k, idx))
                    adapter.update(k, idx, v * intmlp.MEAN_FRAC - mean8)
                else:
                    v = source.decode(k, mean8, idx)
                if nc == 1:
                    canvas[py, px] = v[:, None]
                else:
                    canvas[py, px, k] = v
                res[:, k] = v - m[:, k]
                errs[:, k] = v * intmlp.MEAN_FRAC - mean8
        source.finish()
        out = _from_canvas_order(ctx.interior(canvas, height, width).astype(np.uint8), nc)
        if want is not None and _pixel_hash(out) != want:
            raise FormatError("lossless pixel hash mismatch (corrupt entropy-coded stream)")
        return out


def _pixel_hash(image: np.ndarray) -> int:
    """32-bit hash of the exact pixels: a range decoder fed a corrupt stream can end in sync
    and still produce other pixels; this refuses them (files since issue 12, param ``h``)."""
    d = hashlib.blake2b(digest_size=4)
    d.update(np.array(image.shape, dtype="<u4").tobytes())
    d.update(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
    return int.from_bytes(d.digest(), "little")


# ---------------------------------------------------------------------------------------------
# entropy coding back ends


def _ideal_bits(net, mean8: np.ndarray, idx: np.ndarray, values: np.ndarray) -> float:
    return float(net.bits(mean8.ravel(), idx.ravel(), values.ravel()).sum())


def _range_encode(net, sym: np.ndarray, mean8: np.ndarray, idx: np.ndarray) -> bytes:
    import constriction

    enc = constriction.stream.queue.RangeEncoder()
    fam = _family()
    for a in range(0, sym.size, CHUNK):
        enc.encode(sym[a:a + CHUNK].astype(np.int32), fam,
                   net.probs(mean8[a:a + CHUNK], idx[a:a + CHUNK]))
    return _frame(enc.get_compressed(), b"")


class _RangeSource:
    def __init__(self, data: bytes, net) -> None:
        import constriction

        words, rest = _unframe(data)
        if rest:
            raise FormatError("range-coded stream has trailing bytes")
        self.dec = constriction.stream.queue.RangeDecoder(words)
        self.fam = _family()
        self.net = net

    def decode(self, k: int, mean8: np.ndarray, idx: np.ndarray) -> np.ndarray:
        try:
            return np.asarray(self.dec.decode(self.fam, self.net.probs(mean8, idx)), dtype=np.int64)
        except (ValueError, RuntimeError, AssertionError) as exc:
            raise FormatError(f"entropy decoding failed: {exc}") from None

    def finish(self) -> None:
        if not self.dec.maybe_exhausted():
            raise FormatError("entropy-coded stream not consumed exactly (stream desync)")


def _round_mean(mean8: np.ndarray) -> np.ndarray:
    return (mean8 + intmlp.MEAN_FRAC // 2) // intmlp.MEAN_FRAC


def _huffman_encode(sym, mean8, kk, nc) -> tuple[bytes, bytes]:
    """The seed's variant: residuals to the rounded mean, one Huffman code per channel."""
    import constriction

    res = sym - _round_mean(mean8) + 255
    counts = np.zeros((nc, 511), dtype=np.int64)
    np.add.at(counts, (kk, res), 1)
    trees = [constriction.symbol.huffman.EncoderHuffmanTree(_huff_probs(counts[k])) for k in range(nc)]
    enc = constriction.symbol.QueueEncoder()
    for r, k in zip(res.tolist(), kk.tolist()):
        enc.encode_symbol(r, trees[k])
    words, _bits = enc.get_compressed_and_bitrate()
    table = bytearray()
    for v in counts.ravel().tolist():
        write_varint(table, v)
    return _frame(np.asarray(words, dtype=np.uint32), b""), zlib.compress(bytes(table), 9)


def _huff_probs(counts: np.ndarray) -> np.ndarray:
    p = counts.astype(np.float64)
    if (p > 0).sum() < 2:  # a tree needs two leaves
        p = p + np.where(np.arange(p.size) < 2, 1.0, 0.0)
    return p


class _HuffmanSource:
    def __init__(self, data: bytes, table: bytes, nc: int) -> None:
        import constriction

        words, rest = _unframe(data)
        if rest:
            raise FormatError("Huffman stream has trailing bytes")
        try:
            raw = zlib.decompress(table)
        except zlib.error:
            raise FormatError("Huffman table is corrupt") from None
        pos, vals = 0, []
        for _ in range(nc * 511):
            v, pos = read_varint(raw, pos, limit=1 << 40)
            vals.append(v)
        if pos != len(raw):
            raise FormatError("Huffman table has trailing bytes")
        counts = np.asarray(vals, dtype=np.int64).reshape(nc, 511)
        self.trees = [constriction.symbol.huffman.DecoderHuffmanTree(_huff_probs(counts[k]))
                      for k in range(nc)]
        self.dec = constriction.symbol.QueueDecoder(words)
        self.left = int(counts.sum())

    def decode(self, k: int, mean8: np.ndarray, idx: np.ndarray) -> np.ndarray:
        n = mean8.size
        self.left -= n
        if self.left < 0:
            raise FormatError("Huffman table counts fewer symbols than the image has")
        tree = self.trees[k]
        try:
            r = np.fromiter((self.dec.decode_symbol(tree) for _ in range(n)), dtype=np.int64, count=n)
        except (ValueError, RuntimeError, AssertionError, StopIteration) as exc:
            raise FormatError(f"Huffman decoding failed: {exc}") from None
        v = _round_mean(mean8) + r - 255
        if n and (v.min() < 0 or v.max() > 255):
            raise FormatError("Huffman residual out of range (stream desync)")
        return v

    def finish(self) -> None:
        if self.left != 0:
            raise FormatError("Huffman table and image size disagree")
