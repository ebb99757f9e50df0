"""The .gcz container, versions 1.0 and 1.1: the only module that knows the byte layout.

Writers emit 1.1 (a compact header for small images, :func:`pack`); readers accept both.
Version 1.1 (formats/gcz.md):

    magic        4   b"\\x8bGCZ"
    major, minor 1+1 (1, 1)
    codec id     1
    codec ver    1
    flags        1   bits 0-1 channels-1, bits 2-3 bit depth (0: 8, 1: 16, 2: 32, 3: 1),
                     bit 4 model ref, bit 5 params, bit 6 sections, bit 7 stream count
    width-1      varint
    height-1     varint
    model ref    [bit 4] varint r: r > 0 a registered model (gancomp.weights.REGISTERED,
                 full SHA-256 known); r = 0: 1+n ASCII id and 4 bytes of the SHA-256
    params       [bit 5] varint count, entries as in 1.0 (codec defaults are left out)
    sections     [bit 6] varint count, entries as in 1.0
    streams      [bit 7] varint count n, n-1 varint lengths; else exactly one stream.
                 The last stream runs to the checksum.
    checksum     files of <= 256 bytes: 2 bytes CRC-16/CCITT (binascii.crc_hqx, init
                 0xFFFF); longer files: 4 bytes CRC-32. Decided by the file length, so no
                 byte of the file can change which checksum is read.

Version 1.0 layout (all multi-byte integers little-endian; ``varint`` = unsigned LEB128), specified in
formats/gcz.md:

    magic        4   b"\\x8bGCZ"
    major, minor 1+1 format version (1, 0); another major is refused
    codec id     1   stable id of the codec (see formats/gcz.md)
    codec ver    1   the codec's bitstream version
    width        varint
    height       varint
    channels     1   1 gray, 2 gray+alpha, 3 RGB, 4 RGBA (alpha is in a section)
    bit depth    1   bit depth of the source image (the decoded image is 8-bit)
    model id     1 + n   length-prefixed ASCII; when n > 0, 8 bytes of the weights' SHA-256 follow
    params       varint count, then per entry: 1+n key, 1 type, value
    streams      varint count, then per stream: varint length, bytes
    sections     varint count, then per section: 1 tag, varint length, bytes
                 (tag & 0x80: critical, a reader that does not know it refuses the file;
                 other unknown tags are skipped)
    crc32        4   zlib.crc32 of every byte before it

The header costs ~20 bytes without a model and ~30 with one, so tiny images at very low
rates stay cheap. Every declared size is checked against the remaining bytes and the limits
below before anything is allocated.
"""

from __future__ import annotations

import binascii
import struct
import zlib
from dataclasses import dataclass, field

from .entropy import read_varint, unzigzag, write_varint, zigzag
from .errors import FormatError

MAGIC = b"\x8bGCZ"
MAJOR, MINOR = 1, 1          # written; readers accept minor 0 and 1

MAX_SIDE = 1 << 16          # 65536 pixels per side
MAX_PIXELS = 1 << 28        # 268 megapixels
MAX_STREAMS = 1 << 12
MAX_PARAMS = 256
MAX_SECTIONS = 64
# A file must carry at least one byte per PIXELS_PER_BYTE declared pixels: a few corrupt or
# hostile bytes cannot make a decoder allocate and fill a huge image.
PIXELS_PER_BYTE = 1 << 17
HASH_BYTES = 8              # v1.0 model hash prefix
SHORT_HASH_BYTES = 4        # v1.1 unregistered model hash prefix
SMALL_FILE = 256            # v1.1 files up to this size carry a CRC-16, longer ones a CRC-32
MAX_MODEL_REF = 1 << 16

# Known section tags.
SEC_ICC = 0x01
SEC_EXIF = 0x02
SEC_ALPHA = 0x81            # critical: the alpha plane, coded losslessly as PNG
KNOWN_SECTIONS = {SEC_ICC: "icc", SEC_EXIF: "exif", SEC_ALPHA: "alpha"}

_T_INT, _T_FLOAT, _T_STR, _T_BYTES = 0, 1, 2, 3


@dataclass
class Container:
    """Everything a .gcz file holds, in decoded form."""

    codec_id: int
    codec_version: int
    width: int
    height: int
    channels: int
    bit_depth: int = 8
    model_id: str = ""
    model_hash: bytes = b""           # SHA-256 of the weights, or a prefix of it (8 or 4 bytes)
    params: dict = field(default_factory=dict)
    streams: list[bytes] = field(default_factory=list)
    sections: dict[int, bytes] = field(default_factory=dict)
    version: tuple[int, int] = (MAJOR, MINOR)

    @property
    def model_sha256_prefix(self) -> str:
        return self.model_hash.hex()


def _check_geometry(width: int, height: int, channels: int, bit_depth: int) -> None:
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise FormatError(f"image size {width}x{height} outside 1..{MAX_SIDE}")
    if width * height > MAX_PIXELS:
        raise FormatError(f"image of {width * height} pixels exceeds the {MAX_PIXELS} limit")
    if channels not in (1, 2, 3, 4):
        raise FormatError(f"channel count {channels} not in 1..4")
    if bit_depth not in (1, 8, 16, 32):
        raise FormatError(f"bit depth {bit_depth} not supported")


def _write_params(out: bytearray, params: dict) -> None:
    write_varint(out, len(params))
    for key, value in params.items():
        k = key.encode("ascii")
        if not 0 < len(k) < 256:
            raise ValueError(f"bad param key {key!r}")
        out.append(len(k))
        out += k
        if isinstance(value, bool) or isinstance(value, int):
            out.append(_T_INT)
            write_varint(out, zigzag(int(value)))
        elif isinstance(value, float):
            out.append(_T_FLOAT)
            out += struct.pack("<d", value)
        elif isinstance(value, str):
            b = value.encode("utf-8")
            out.append(_T_STR)
            write_varint(out, len(b))
            out += b
        elif isinstance(value, (bytes, bytearray)):
            out.append(_T_BYTES)
            write_varint(out, len(value))
            out += value
        else:
            raise TypeError(f"param {key!r} has unsupported type {type(value).__name__}")


def _write_sections(out: bytearray, sections: dict[int, bytes]) -> None:
    write_varint(out, len(sections))
    for tag, body in sorted(sections.items()):
        out.append(tag)
        write_varint(out, len(body))
        out += body


_DEPTH_CODE = {8: 0, 16: 1, 32: 2, 1: 3}
_CODE_DEPTH = {v: k for k, v in _DEPTH_CODE.items()}
F_MODEL, F_PARAMS, F_SECTIONS, F_STREAMS = 0x10, 0x20, 0x40, 0x80


def _checksum(body: bytes, total: int) -> bytes:
    """The 1.1 checksum of ``body`` for a file of ``total`` bytes."""
    if total <= SMALL_FILE:
        return struct.pack("<H", binascii.crc_hqx(body, 0xFFFF))
    return struct.pack("<I", zlib.crc32(body))


def refix_checksum(data: bytes) -> bytes:
    """``data`` with its checksum recomputed for its version and length (fuzzing tools: an
    edited file then reaches the parser instead of failing the checksum)."""
    if len(data) < 6 or data[5] == 0:
        return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))
    n = 2 if len(data) <= SMALL_FILE else 4
    return data[:-n] + _checksum(data[:-n], len(data))


def pack(c: Container) -> bytes:
    """Serialize a container to bytes in the 1.1 layout (what every writer emits).

    A model is referenced by its registered small id when (id, SHA-256) is in
    gancomp.weights.REGISTERED, else by its id and 4 bytes of its SHA-256."""
    _check_geometry(c.width, c.height, c.channels, c.bit_depth)
    if len(c.params) > MAX_PARAMS or len(c.streams) > MAX_STREAMS or len(c.sections) > MAX_SECTIONS:
        raise ValueError("too many params, streams or sections")
    flags = (c.channels - 1) | _DEPTH_CODE[c.bit_depth] << 2
    flags |= (F_MODEL if c.model_id else 0) | (F_PARAMS if c.params else 0)
    flags |= (F_SECTIONS if c.sections else 0) | (F_STREAMS if len(c.streams) != 1 else 0)
    out = bytearray(MAGIC)
    out += bytes([MAJOR, MINOR, c.codec_id & 0xFF, c.codec_version & 0xFF, flags])
    write_varint(out, c.width - 1)
    write_varint(out, c.height - 1)
    if c.model_id:
        mid = c.model_id.encode("ascii")
        if not 0 < len(mid) < 256:
            raise ValueError("model id too long")
        from .weights import registered_ref   # only files that name a model need it

        ref = registered_ref(c.model_id, c.model_hash.hex())
        write_varint(out, ref)
        if ref == 0:
            if len(c.model_hash) < SHORT_HASH_BYTES:
                raise ValueError("a model id needs at least a 4-byte hash prefix")
            out.append(len(mid))
            out += mid + c.model_hash[:SHORT_HASH_BYTES]
    if c.params:
        _write_params(out, c.params)
    if c.sections:
        _write_sections(out, c.sections)
    if len(c.streams) != 1:
        write_varint(out, len(c.streams))
        for s in c.streams[:-1]:
            write_varint(out, len(s))
    for s in c.streams:
        out += s
    total = len(out) + (2 if len(out) + 2 <= SMALL_FILE else 4)
    return bytes(out + _checksum(bytes(out), total))


def pack_v10(c: Container) -> bytes:
    """Serialize a container in the 1.0 layout (kept for tests and old tools)."""
    _check_geometry(c.width, c.height, c.channels, c.bit_depth)
    out = bytearray(MAGIC)
    out += bytes([1, 0, c.codec_id & 0xFF, c.codec_version & 0xFF])
    write_varint(out, c.width)
    write_varint(out, c.height)
    out += bytes([c.channels, c.bit_depth])
    mid = c.model_id.encode("ascii")
    if len(mid) > 255:
        raise ValueError("model id too long")
    out.append(len(mid))
    if mid:
        if len(c.model_hash) < HASH_BYTES:
            raise ValueError("a model id needs an 8-byte hash prefix")
        out += mid + c.model_hash[:HASH_BYTES]
    if len(c.params) > MAX_PARAMS:
        raise ValueError("too many params")
    _write_params(out, c.params)
    write_varint(out, len(c.streams))
    for s in c.streams:
        write_varint(out, len(s))
        out += s
    _write_sections(out, c.sections)
    out += struct.pack("<I", zlib.crc32(out))
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes, end: int) -> None:
        self.data, self.pos, self.end = data, 0, end

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise FormatError(f"truncated file ({what} runs past the end)")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def varint(self, what: str, limit: int) -> int:
        v, pos = read_varint(self.data, self.pos)
        if pos > self.end:
            raise FormatError(f"truncated file ({what})")
        if v > limit:
            raise FormatError(f"{what} {v} exceeds the limit {limit}")
        self.pos = pos
        return v


def _read_params(r: _Reader) -> dict:
    params: dict = {}
    for _ in range(r.varint("param count", MAX_PARAMS)):
        klen = r.byte("param key length")
        try:
            key = r.take(klen, "param key").decode("ascii")
        except UnicodeDecodeError:
            raise FormatError("param key is not ASCII") from None
        typ = r.byte("param type")
        if typ == _T_INT:
            params[key] = unzigzag(r.varint("param value", 1 << 64))
        elif typ == _T_FLOAT:
            params[key] = struct.unpack("<d", r.take(8, "param value"))[0]
        elif typ in (_T_STR, _T_BYTES):
            raw = r.take(r.varint("param length", r.end - r.pos), "param value")
            if typ == _T_STR:
                try:
                    params[key] = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise FormatError("param string is not UTF-8") from None
            else:
                params[key] = raw
        else:
            raise FormatError(f"unknown param type {typ}")
    return params


def _read_sections(r: _Reader) -> dict[int, bytes]:
    sections: dict[int, bytes] = {}
    for _ in range(r.varint("section count", MAX_SECTIONS)):
        tag = r.byte("section tag")
        body = r.take(r.varint("section length", r.end - r.pos), "section")
        if tag in KNOWN_SECTIONS:
            sections[tag] = body
        elif tag & 0x80:
            raise FormatError(f"file needs section 0x{tag:02x}, unknown to this gancomp; upgrade")
    return sections


def _check_plausible(width: int, height: int, size: int) -> None:
    if width * height > max(1 << 16, PIXELS_PER_BYTE * size):
        raise FormatError(f"declared size {width}x{height} is implausible for a "
                          f"{size}-byte file")


def unpack(data: bytes) -> Container:
    """Parse and verify a .gcz file (1.0 or 1.1); every problem raises FormatError."""
    data = bytes(data)
    if len(data) < 4 or data[:4] != MAGIC:
        raise FormatError("not a .gcz file (bad magic bytes)")
    if len(data) < 12:
        raise FormatError("truncated .gcz file")
    major, minor = data[4], data[5]
    if major != MAJOR:
        raise FormatError(f".gcz format version {major}.{minor} is not supported by this "
                          f"gancomp (reads {MAJOR}.x); upgrade gancomp")
    if minor == 0:
        return _unpack_v10(data)
    return _unpack_v11(data, minor)


def _unpack_v11(data: bytes, minor: int) -> Container:
    if minor > MINOR:
        raise FormatError(f".gcz format version 1.{minor} is newer than this gancomp "
                          f"(reads up to 1.{MINOR}); upgrade gancomp")
    nck = 2 if len(data) <= SMALL_FILE else 4
    if _checksum(data[:-nck], len(data)) != data[-nck:]:
        raise FormatError("checksum mismatch: the file is corrupted or truncated")
    r = _Reader(data, len(data) - nck)
    r.pos = 6
    codec_id, codec_version, flags = r.byte("codec id"), r.byte("codec version"), r.byte("flags")
    width = r.varint("width", MAX_SIDE - 1) + 1
    height = r.varint("height", MAX_SIDE - 1) + 1
    channels, bit_depth = (flags & 3) + 1, _CODE_DEPTH[(flags >> 2) & 3]
    _check_geometry(width, height, channels, bit_depth)
    _check_plausible(width, height, len(data))
    model_id, model_hash = "", b""
    if flags & F_MODEL:
        ref = r.varint("model reference", MAX_MODEL_REF)
        if ref:
            from .weights import resolve_ref

            known = resolve_ref(ref)
            if known is None:
                raise FormatError(f"file names registered model #{ref}, unknown to this "
                                  f"gancomp; upgrade")
            model_id, model_hash = known[0], bytes.fromhex(known[1])
        else:
            n = r.byte("model id length")
            try:
                model_id = r.take(n, "model id").decode("ascii")
            except UnicodeDecodeError:
                raise FormatError("model id is not ASCII") from None
            if not model_id:
                raise FormatError("empty model id")
            model_hash = r.take(SHORT_HASH_BYTES, "model hash")
    params = _read_params(r) if flags & F_PARAMS else {}
    sections = _read_sections(r) if flags & F_SECTIONS else {}
    n_streams = r.varint("stream count", MAX_STREAMS) if flags & F_STREAMS else 1
    lengths = [r.varint("stream length", r.end - r.pos) for _ in range(max(n_streams - 1, 0))]
    streams = [r.take(n, "stream") for n in lengths]
    if n_streams:
        streams.append(r.take(r.end - r.pos, "stream"))
    if r.pos != r.end:
        raise FormatError(f"{r.end - r.pos} unexpected bytes before the checksum")
    return Container(codec_id, codec_version, width, height, channels, bit_depth, model_id,
                     model_hash, params, streams, sections, (MAJOR, minor))


def _unpack_v10(data: bytes) -> Container:
    (crc,) = struct.unpack("<I", data[-4:])
    if zlib.crc32(data[:-4]) != crc:
        raise FormatError("checksum mismatch: the file is corrupted or truncated")
    r = _Reader(data, len(data) - 4)
    r.pos = 6
    codec_id, codec_version = r.byte("codec id"), r.byte("codec version")
    width = r.varint("width", MAX_SIDE)
    height = r.varint("height", MAX_SIDE)
    channels, bit_depth = r.byte("channels"), r.byte("bit depth")
    _check_geometry(width, height, channels, bit_depth)
    _check_plausible(width, height, len(data))
    n = r.byte("model id length")
    model_id, model_hash = "", b""
    if n:
        try:
            model_id = r.take(n, "model id").decode("ascii")
        except UnicodeDecodeError:
            raise FormatError("model id is not ASCII") from None
        model_hash = r.take(HASH_BYTES, "model hash")
    params = _read_params(r)
    streams = []
    for _ in range(r.varint("stream count", MAX_STREAMS)):
        streams.append(r.take(r.varint("stream length", r.end - r.pos), "stream"))
    sections = _read_sections(r)
    if r.pos != r.end:
        raise FormatError(f"{r.end - r.pos} unexpected bytes before the checksum")
    return Container(codec_id, codec_version, width, height, channels, bit_depth, model_id,
                     model_hash, params, streams, sections, (1, 0))


def peek_is_gcz(data: bytes) -> bool:
    """True when ``data`` starts with the .gcz magic bytes."""
    return data[:4] == MAGIC
