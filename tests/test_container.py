import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gancomp import api
from gancomp import container as ct
from gancomp.errors import FormatError, GanCompError


def sample() -> ct.Container:
    return ct.Container(1, 1, 64, 48, 3, 8, "m1", b"\x01" * 8,
                        {"a": 5, "b": -3, "f": 0.25, "s": "x", "z": b"\x00\x01"},
                        [b"abc", b"", b"\xff" * 300], {ct.SEC_ICC: b"icc"})


def refix_crc(data: bytes) -> bytes:
    body = data[:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def test_roundtrip():
    c = sample()
    d = ct.unpack(ct.pack(c))
    assert (d.codec_id, d.width, d.height, d.channels) == (1, 64, 48, 3)
    assert d.params == c.params and d.streams == c.streams and d.sections == c.sections
    assert d.model_id == "m1" and d.model_hash == b"\x01" * 8


def test_header_is_small():
    c = ct.Container(5, 1, 64, 64, 3, 8, "gf1", b"\x00" * 8, {"b": 6}, [b""], {})
    assert len(ct.pack(c)) <= 40  # 36 today: magic, version, codec, model ref, crc


def test_every_flipped_bit_is_detected():
    data = ct.pack(sample())
    for i in range(len(data)):
        for bit in (0, 7):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            with pytest.raises(FormatError):
                ct.unpack(bytes(bad))


def test_truncation_is_detected():
    data = ct.pack(sample())
    for n in range(len(data)):
        with pytest.raises(FormatError):
            ct.unpack(data[:n])


def test_unknown_major_version_refused():
    data = bytearray(ct.pack(sample()))
    data[4] = 2
    with pytest.raises(FormatError, match="version 2"):
        ct.unpack(refix_crc(bytes(data)))


def test_unknown_optional_section_skipped_critical_refused():
    c = sample()
    c.sections = {0x33: b"future"}
    assert ct.unpack(ct.pack(c)).sections == {}
    c.sections = {0xB3: b"future"}
    with pytest.raises(FormatError, match="section"):
        ct.unpack(ct.pack(c))


def test_huge_declared_sizes_refused_before_allocation():
    # width 2**40 encoded by hand, correct checksum
    out = bytearray(ct.MAGIC + bytes([1, 0, 1, 1]))
    from gancomp.entropy import write_varint
    write_varint(out, 2**40)
    write_varint(out, 10)
    out += bytes([3, 8, 0, 0, 0, 0])
    t = time.perf_counter()
    with pytest.raises(FormatError):
        ct.unpack(refix_crc(bytes(out) + b"\0\0\0\0"))
    # a stream that declares more bytes than the file has
    c = ct.pack(ct.Container(1, 1, 8, 8, 3, 8, "", b"", {}, [b"x" * 10], {}))
    raw = bytearray(c[:-4])
    i = raw.index(b"x" * 10) - 1
    raw[i:i + 1] = b"\xff\xff\xff\x7f"
    with pytest.raises(FormatError):
        ct.unpack(refix_crc(bytes(raw) + b"\0\0\0\0"))
    assert time.perf_counter() - t < 5


def test_geometry_limits():
    with pytest.raises(FormatError):
        ct.pack(ct.Container(1, 1, 0, 10, 3))
    with pytest.raises(FormatError):
        ct.pack(ct.Container(1, 1, 10, 10, 5))


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data):
    with pytest.raises(GanCompError):
        api.decode(data)
    with pytest.raises(GanCompError):
        api.decode(ct.MAGIC + bytes([1, 0]) + data)


@pytest.fixture(scope="module")
def valid_files(rgb_small):
    return [api.encode_array(rgb_small[:24, :32], "wavelet", 40),
            api.encode_array(rgb_small[:24, :32], "kmeans")]


@settings(max_examples=300, deadline=5000, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzz_mutated_valid_files(valid_files, data):
    """Mutations with a recomputed checksum reach the parser and the codec decoders:
    each ends in gancomp's own error or a valid image, never another exception."""
    base = bytearray(data.draw(st.sampled_from(valid_files)))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(base) - 5))
        base[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, 8))
    mutated = refix_crc(bytes(base[:len(base) - 4 - cut]) + b"\0\0\0\0")
    t = time.perf_counter()
    try:
        out = api.decode(mutated)
        assert out.pixels.dtype == np.uint8
        assert out.pixels.shape[:2] == (out.header.height, out.header.width)
    except GanCompError:
        pass
    assert time.perf_counter() - t < 20
