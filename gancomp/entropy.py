"""Entropy coding through constriction, in forms that decode bit-exactly anywhere.

Every model here is built from integers (frequency counts or integer CDF tables) that both
sides compute identically, then handed to constriction as float64 probabilities: the same
float64 inputs give the same quantized model on every machine, so streams never desync.

Three coders:
- :func:`encode_indexed` / :func:`decode_indexed`: each symbol picks one row of a fixed table
  of integer frequencies (CompressAI-style indexed CDFs, used by learned codecs).
- :func:`encode_categorical` / :func:`decode_categorical`: per-symbol float64 probability rows.
- :class:`AdaptiveCoder`: context-conditioned frequencies that adapt block by block, with no
  table in the file (used by the classical codecs in this package).

Values outside a table's range go through an escape symbol plus a zigzag varint side stream.
"""

from __future__ import annotations

import numpy as np

from .errors import FormatError

_MODEL = None


def _family():
    global _MODEL
    if _MODEL is None:
        import constriction

        _MODEL = constriction.stream.model.Categorical(perfect=False)
    return _MODEL


# ---------------------------------------------------------------------------------------------
# varints: small integers in few bytes (also used by the container)


def write_varint(out: bytearray, value: int) -> None:
    """Append an unsigned LEB128 varint."""
    if value < 0:
        raise ValueError("varint must be non-negative")
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def read_varint(data: bytes | memoryview, pos: int, limit: int = 1 << 63) -> tuple[int, int]:
    """Read an unsigned LEB128 varint at ``pos``; return (value, new_pos)."""
    value = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise FormatError("truncated data (varint runs past the end)")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift > 63:
            raise FormatError("malformed varint (too long)")
    if value > limit:
        raise FormatError(f"declared size {value} exceeds limit {limit}")
    return value, pos


def zigzag(v: int) -> int:
    return (v << 1) if v >= 0 else ((-v << 1) - 1)


def unzigzag(u: int) -> int:
    return (u >> 1) if not u & 1 else -((u + 1) >> 1)


def _pack_escapes(values: np.ndarray) -> bytes:
    out = bytearray()
    for v in values.tolist():
        write_varint(out, zigzag(int(v)))
    return bytes(out)


def _unpack_escapes(data: bytes, count: int) -> np.ndarray:
    vals = np.empty(count, dtype=np.int64)
    pos = 0
    for i in range(count):
        u, pos = read_varint(data, pos)
        vals[i] = unzigzag(u)
    if pos != len(data):
        raise FormatError("escape stream has trailing bytes (stream desync)")
    return vals


# ---------------------------------------------------------------------------------------------
# framing: range-coded words + escape stream in one byte string


def _frame(words: np.ndarray, escapes: bytes) -> bytes:
    out = bytearray()
    write_varint(out, int(words.size))
    out += words.astype("<u4").tobytes()
    out += escapes
    return bytes(out)


def _unframe(data: bytes) -> tuple[np.ndarray, bytes]:
    n, pos = read_varint(data, 0, limit=len(data) // 4 + 1)
    end = pos + 4 * n
    if end > len(data):
        raise FormatError("truncated entropy-coded stream")
    words = np.frombuffer(bytes(data[pos:end]), dtype="<u4").astype(np.uint32)
    return words, bytes(data[end:])


def _freqs_to_probs(freqs: np.ndarray) -> np.ndarray:
    f = np.asarray(freqs, dtype=np.float64)
    if f.ndim == 1:
        return f / f.sum()
    return f / f.sum(axis=-1, keepdims=True)


def _decoder(words: np.ndarray):
    import constriction

    return constriction.stream.queue.RangeDecoder(words)


def _finish(decoder) -> None:
    # A decoder that has not consumed its words exactly is out of sync with the encoder.
    if not decoder.maybe_exhausted():
        raise FormatError("entropy-coded stream not consumed exactly (stream desync)")


# ---------------------------------------------------------------------------------------------
# indexed tables


def encode_indexed(values: np.ndarray, indexes: np.ndarray, freqs: np.ndarray,
                   offsets: np.ndarray) -> bytes:
    """Code integer ``values``; value i uses table row ``indexes[i]``.

    ``freqs``: (T, K) non-negative integer frequencies; the last column is the escape bin
    (positive). Values outside a row's range or on a zero-frequency column are escaped.
    ``offsets``: (T,) integer value of column 0 of each row. Symbols grouped by row so each
    group is coded with one model (fast and order-deterministic on both sides).
    """
    import constriction

    values = np.asarray(values, dtype=np.int64).ravel()
    indexes = np.asarray(indexes, dtype=np.int64).ravel()
    freqs = np.asarray(freqs)
    T, K = freqs.shape
    probs = _freqs_to_probs(freqs)
    sym = values - np.asarray(offsets, dtype=np.int64)[indexes]
    esc_mask = (sym < 0) | (sym >= K - 1)
    # Zero-frequency columns inside a row (rows narrower than the table) are escaped too:
    # the coder would give them only its minimum probability (~24 bits each). The decoder
    # needs no change (it reads whatever symbol comes), so older streams decode as before.
    esc_mask |= np.asarray(freqs)[indexes, np.where(esc_mask, 0, sym)] <= 0
    escapes = values[_group_order(indexes)][esc_mask[_group_order(indexes)]]
    sym = np.where(esc_mask, K - 1, sym).astype(np.int32)
    enc = constriction.stream.queue.RangeEncoder()
    fam = _family()
    order = _group_order(indexes)
    sym_sorted = sym[order]
    idx_sorted = indexes[order]
    bounds = np.searchsorted(idx_sorted, np.arange(T + 1))
    for t in range(T):
        a, b = bounds[t], bounds[t + 1]
        if a == b:
            continue
        model = constriction.stream.model.Categorical(probs[t], perfect=False)
        enc.encode(sym_sorted[a:b], model)
    del fam
    return _frame(enc.get_compressed(), _pack_escapes(escapes))


def decode_indexed(data: bytes, indexes: np.ndarray, freqs: np.ndarray,
                   offsets: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_indexed`; returns int64 values in the order of ``indexes``."""
    import constriction

    indexes = np.asarray(indexes, dtype=np.int64).ravel()
    freqs = np.asarray(freqs)
    T, K = freqs.shape
    if indexes.size and (indexes.min() < 0 or indexes.max() >= T):
        raise FormatError("table index out of range (stream desync)")
    probs = _freqs_to_probs(freqs)
    words, esc_bytes = _unframe(data)
    dec = _decoder(words)
    order = _group_order(indexes)
    idx_sorted = indexes[order]
    bounds = np.searchsorted(idx_sorted, np.arange(T + 1))
    sym_sorted = np.empty(indexes.size, dtype=np.int64)
    try:
        for t in range(T):
            a, b = bounds[t], bounds[t + 1]
            if a == b:
                continue
            model = constriction.stream.model.Categorical(probs[t], perfect=False)
            sym_sorted[a:b] = dec.decode(model, int(b - a))
    except (ValueError, RuntimeError, AssertionError) as exc:
        raise FormatError(f"entropy decoding failed: {exc}") from None
    _finish(dec)
    esc_mask = sym_sorted == K - 1
    vals_sorted = sym_sorted + np.asarray(offsets, dtype=np.int64)[idx_sorted]
    vals_sorted[esc_mask] = _unpack_escapes(esc_bytes, int(esc_mask.sum()))
    out = np.empty_like(vals_sorted)
    out[order] = vals_sorted
    return out


def _group_order(indexes: np.ndarray) -> np.ndarray:
    return np.argsort(indexes, kind="stable")


# ---------------------------------------------------------------------------------------------
# per-symbol probability rows


def encode_categorical(symbols: np.ndarray, probs: np.ndarray) -> bytes:
    """Code symbols in [0, K) where symbol i has float64 probability row ``probs[i]``.
    The decoder must pass a bit-identical ``probs``."""
    import constriction

    symbols = np.asarray(symbols, dtype=np.int32).ravel()
    enc = constriction.stream.queue.RangeEncoder()
    if symbols.size:
        enc.encode(symbols, _family(), np.ascontiguousarray(probs, dtype=np.float64))
    return _frame(enc.get_compressed(), b"")


def decode_categorical(data: bytes, probs: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_categorical`."""
    words, rest = _unframe(data)
    if rest:
        raise FormatError("categorical stream has trailing bytes")
    dec = _decoder(words)
    probs = np.ascontiguousarray(probs, dtype=np.float64)
    try:
        out = dec.decode(_family(), probs) if len(probs) else np.zeros(0, np.int32)
    except (ValueError, RuntimeError, AssertionError) as exc:
        raise FormatError(f"entropy decoding failed: {exc}") from None
    _finish(dec)
    return np.asarray(out, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# block-adaptive context model


class AdaptiveCoder:
    """Categorical coding with per-context counts that adapt between blocks.

    Symbols are coded in blocks; every symbol of block k uses the counts accumulated over
    blocks < k of its context (plus a prior of ``prior`` per symbol). A block is cut short
    where a context would occur in it more often than it has been seen so far (at least 8),
    so a new context adapts within a few symbols instead of a whole block. Counts
    are integers, so encoder and decoder build identical models without any table in the file,
    and each block is one vectorized constriction call.
    """

    def __init__(self, alphabet: int, contexts: int, block: int = 2048, prior: int = 1,
                 increment: int = 16) -> None:
        if alphabet < 2 or contexts < 1:
            raise ValueError("alphabet must be >= 2 and contexts >= 1")
        self.alphabet = alphabet
        self.contexts = contexts
        self.block = block
        self.counts = np.full((contexts, alphabet), prior, dtype=np.int64)
        self.increment = increment
        import constriction

        self._enc = constriction.stream.queue.RangeEncoder()
        self._dec = None
        self._seen = np.zeros(contexts, dtype=np.int64)

    def _chunks(self, contexts: np.ndarray):
        n, a = contexts.size, 0
        while a < n:
            size = self.block
            while True:
                c = contexts[a:a + size]
                occ = np.bincount(c, minlength=self.contexts)
                if size <= 8 or not (occ > np.maximum(self._seen, 8)).any():
                    break
                size //= 2
            b = min(n, a + size)
            yield a, b
            self._seen += np.bincount(contexts[a:b], minlength=self.contexts)
            a = b

    def _probs(self, ctx: np.ndarray) -> np.ndarray:
        c = self.counts[ctx].astype(np.float64)
        return c / c.sum(axis=1, keepdims=True)

    def _update(self, symbols: np.ndarray, ctx: np.ndarray) -> None:
        np.add.at(self.counts, (ctx, symbols), self.increment)
        big = self.counts.sum(axis=1) > (1 << 22)
        if big.any():  # halve to stay adaptive and far from constriction's precision limits
            self.counts[big] = (self.counts[big] + 1) // 2

    def encode(self, symbols: np.ndarray, contexts: np.ndarray) -> None:
        """Append symbols (int, in [0, alphabet)) with their context ids."""
        symbols = np.asarray(symbols, dtype=np.int32).ravel()
        contexts = np.asarray(contexts, dtype=np.int64).ravel()
        if symbols.size and (symbols.min() < 0 or symbols.max() >= self.alphabet):
            raise ValueError("symbol outside the alphabet")
        if contexts.size and (contexts.min() < 0 or contexts.max() >= self.contexts):
            raise ValueError("context outside range")
        for a, b in self._chunks(contexts):
            s, c = symbols[a:b], contexts[a:b]
            self._enc.encode(s, _family(), self._probs(c))
            self._update(s, c)

    def finish(self) -> bytes:
        """Return the coded bytes."""
        return _frame(self._enc.get_compressed(), b"")

    @classmethod
    def decoder(cls, data: bytes, alphabet: int, contexts: int, **kw) -> "AdaptiveCoder":
        """A coder that decodes ``data`` (same constructor arguments as the encoder's)."""
        self = cls(alphabet, contexts, **kw)
        words, rest = _unframe(data)
        if rest:
            raise FormatError("adaptive stream has trailing bytes")
        self._dec = _decoder(words)
        return self

    def decode(self, contexts: np.ndarray) -> np.ndarray:
        """Decode as many symbols as ``contexts`` has entries."""
        contexts = np.asarray(contexts, dtype=np.int64).ravel()
        out = np.empty(contexts.size, dtype=np.int64)
        try:
            if contexts.size and (contexts.min() < 0 or contexts.max() >= self.contexts):
                raise FormatError("context outside range (stream desync)")
            for a, b in self._chunks(contexts):
                c = contexts[a:b]
                s = np.asarray(self._dec.decode(_family(), self._probs(c)), dtype=np.int64)
                out[a:b] = s
                self._update(s, c)
        except (ValueError, RuntimeError, AssertionError) as exc:
            raise FormatError(f"entropy decoding failed: {exc}") from None
        return out

    def check_end(self) -> None:
        """Raise FormatError unless every coded word was consumed."""
        _finish(self._dec)
