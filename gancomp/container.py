"""The .gcz container, version 1.0: the only module that knows the byte layout.

Layout (all multi-byte integers little-endian; ``varint`` = unsigned LEB128), specified in
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

import struct
import zlib
from dataclasses import dataclass, field

from .entropy import read_varint, unzigzag, write_varint, zigzag
from .errors import FormatError

MAGIC = b"\x8bGCZ"
MAJOR, MINOR = 1, 0

MAX_SIDE = 1 << 16          # 65536 pixels per side
MAX_PIXELS = 1 << 28        # 268 megapixels
MAX_STREAMS = 1 << 12
MAX_PARAMS = 256
MAX_SECTIONS = 64
# A file must carry at least one byte per PIXELS_PER_BYTE declared pixels: a few corrupt or
# hostile bytes cannot make a decoder allocate and fill a huge image.
PIXELS_PER_BYTE = 1 << 17
HASH_BYTES = 8

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
    model_hash: bytes = b""           # first HASH_BYTES of the weights' SHA-256
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


def pack(c: Container) -> bytes:
    """Serialize a container to bytes."""
    _check_geometry(c.width, c.height, c.channels, c.bit_depth)
    out = bytearray(MAGIC)
    out += bytes([MAJOR, MINOR, c.codec_id & 0xFF, c.codec_version & 0xFF])
    write_varint(out, c.width)
    write_varint(out, c.height)
    out += bytes([c.channels, c.bit_depth])
    mid = c.model_id.encode("ascii")
    if len(mid) > 255:
        raise ValueError("model id too long")
    out.append(len(mid))
    if mid:
        if len(c.model_hash) != HASH_BYTES:
            raise ValueError("a model id needs an 8-byte hash prefix")
        out += mid + c.model_hash
    if len(c.params) > MAX_PARAMS:
        raise ValueError("too many params")
    write_varint(out, len(c.params))
    for key, value in c.params.items():
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
    write_varint(out, len(c.streams))
    for s in c.streams:
        write_varint(out, len(s))
        out += s
    write_varint(out, len(c.sections))
    for tag, body in sorted(c.sections.items()):
        out.append(tag)
        write_varint(out, len(body))
        out += body
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


def unpack(data: bytes) -> Container:
    """Parse and verify a .gcz file; every problem raises FormatError."""
    data = bytes(data)
    if len(data) < 4 or data[:4] != MAGIC:
        raise FormatError("not a .gcz file (bad magic bytes)")
    if len(data) < 12:
        raise FormatError("truncated .gcz file")
    major, minor = data[4], data[5]
    if major != MAJOR:
        raise FormatError(f".gcz format version {major}.{minor} is not supported by this "
                          f"gancomp (reads {MAJOR}.x); upgrade gancomp")
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
    if width * height > max(1 << 16, PIXELS_PER_BYTE * len(data)):
        raise FormatError(f"declared size {width}x{height} is implausible for a "
                          f"{len(data)}-byte file")
    n = r.byte("model id length")
    model_id, model_hash = "", b""
    if n:
        try:
            model_id = r.take(n, "model id").decode("ascii")
        except UnicodeDecodeError:
            raise FormatError("model id is not ASCII") from None
        model_hash = r.take(HASH_BYTES, "model hash")
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
    streams = []
    for _ in range(r.varint("stream count", MAX_STREAMS)):
        streams.append(r.take(r.varint("stream length", r.end - r.pos), "stream"))
    sections: dict[int, bytes] = {}
    for _ in range(r.varint("section count", MAX_SECTIONS)):
        tag = r.byte("section tag")
        body = r.take(r.varint("section length", r.end - r.pos), "section")
        if tag in KNOWN_SECTIONS:
            sections[tag] = body
        elif tag & 0x80:
            raise FormatError(f"file needs section 0x{tag:02x}, unknown to this gancomp; upgrade")
    if r.pos != r.end:
        raise FormatError(f"{r.end - r.pos} unexpected bytes before the checksum")
    return Container(codec_id, codec_version, width, height, channels, bit_depth, model_id,
                     model_hash, params, streams, sections, (major, minor))


def peek_is_gcz(data: bytes) -> bool:
    """True when ``data`` starts with the .gcz magic bytes."""
    return data[:4] == MAGIC
