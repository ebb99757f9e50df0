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
from gancomp.weights import REGISTERED


@pytest.fixture(scope="module")
def face_file() -> bytes:
    """A .gcz 1.1 file laid out like a default face file (registered model, one stream of
    a face's size), written by the same writer as every codec."""
    sha = bytes.fromhex(REGISTERED[1][1])
    rng = np.random.default_rng(0)
    payload = rng.integers(0, 256, 100, dtype=np.uint8).tobytes()
    return ct.pack(ct.Container(5, 2, 64, 64, 3, 8, REGISTERED[1][0], sha, {}, [payload], {}))


def sample() -> ct.Container:
    return ct.Container(1, 1, 64, 48, 3, 8, "m1", b"\x01" * 8,
                        {"a": 5, "b": -3, "f": 0.25, "s": "x", "z": b"\x00\x01"},
                        [b"abc", b"", b"\xff" * 300], {ct.SEC_ICC: b"icc"})


def refix_crc(data: bytes) -> bytes:
    """Recompute the checksum of a (possibly edited) file, 1.0 or 1.1 rules."""
    if data[5] == 0:
        body = data[:-4]
        return body + struct.pack("<I", zlib.crc32(body))
    n = 2 if len(data) <= ct.SMALL_FILE else 4
    return data[:-n] + ct._checksum(data[:-n], len(data))


def with_checksum(body: bytes) -> bytes:
    """``body`` plus the checksum its version and resulting length call for."""
    if body[5] == 0:
        return body + struct.pack("<I", zlib.crc32(body))
    n = 2 if len(body) + 2 <= ct.SMALL_FILE else 4
    return body + ct._checksum(body, len(body) + n)


@pytest.mark.parametrize("writer", [ct.pack, ct.pack_v10])
def test_roundtrip(writer):
    c = sample()
    d = ct.unpack(writer(c))
    assert (d.codec_id, d.width, d.height, d.channels) == (1, 64, 48, 3)
    assert d.params == c.params and d.streams == c.streams and d.sections == c.sections
    n = 8 if writer is ct.pack_v10 else 4
    assert d.model_id == "m1" and d.model_hash == b"\x01" * n
    assert d.version == ((1, 0) if writer is ct.pack_v10 else (1, 1))


@pytest.mark.parametrize("streams", [[], [b""], [b"a", b""], [b"", b"xy", b"z" * 300]])
@pytest.mark.parametrize("size", [(1, 1), (64, 64), (129, 7), (65536, 1)])
def test_v11_layout_variants(streams, size):
    for depth in (1, 8, 16, 32):
        for ch in (1, 2, 3, 4):
            c = ct.Container(9, 3, *size, ch, depth, "", b"", {}, streams, {})
            data = ct.pack(c)
            if size[0] * size[1] > 1 << 16 and len(data) * ct.PIXELS_PER_BYTE < size[0] * size[1]:
                continue
            d = ct.unpack(data)
            assert (d.width, d.height, d.channels, d.bit_depth) == (*size, ch, depth)
            assert d.streams == streams and d.params == {} and d.sections == {}


def test_header_is_small():
    # a default gan-inversion face: registered model, no params, one stream, no sections
    sha = bytes.fromhex(REGISTERED[1][1])
    c = ct.Container(5, 2, 64, 64, 3, 8, REGISTERED[1][0], sha, {}, [b"\x55" * 90], {})
    data = ct.pack(c)
    assert len(data) - 90 == 14  # magic 4, version 2, codec 2, flags 1, size 2, model 1, crc 2
    d = ct.unpack(data)
    assert d.model_id == REGISTERED[1][0] and d.model_hash == sha
    # an unregistered model: id + 4 bytes of its hash
    c = ct.Container(5, 2, 64, 64, 3, 8, "gf1", b"\x07" * 32, {"b": 6}, [b""], {})
    assert len(ct.pack(c)) == 27  # 11 + ref 1 + id 1+3 + hash 4 + param 5 + crc 2
    assert ct.unpack(ct.pack(c)).model_hash == b"\x07" * 4
    # the 1.0 layout of the same container
    assert len(ct.pack_v10(c)) <= 40


def test_checksum_size_follows_file_length():
    for n in (0, 100, 240, 241, 242, 243, 244, 245, 300):
        data = ct.pack(ct.Container(1, 1, 8, 8, 3, 8, "", b"", {}, [b"\x11" * n], {}))
        tail = 2 if len(data) <= ct.SMALL_FILE else 4
        assert len(data) == 13 + n + (tail - 2)
        assert ct.unpack(data).streams == [b"\x11" * n]


@pytest.mark.parametrize("writer", [ct.pack, ct.pack_v10])
def test_every_flipped_bit_is_detected(writer):
    data = writer(sample())
    for i in range(len(data)):
        for bit in (0, 7):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            with pytest.raises(FormatError):
                ct.unpack(bytes(bad))


def test_every_single_byte_change_of_a_face_file_is_detected(face_file):
    """Exhaustive: each byte of a real default face file (CRC-16) replaced by each of the 255
    other values is refused."""
    data = face_file
    assert len(data) <= ct.SMALL_FILE
    missed = []
    for i in range(len(data)):
        for v in range(256):
            if v == data[i]:
                continue
            bad = bytearray(data)
            bad[i] = v
            try:
                ct.unpack(bytes(bad))
                missed.append((i, v))
            except FormatError:
                pass
    assert not missed


@pytest.mark.parametrize("writer", [ct.pack, ct.pack_v10])
def test_truncation_is_detected(writer):
    data = writer(sample())
    for n in range(len(data)):
        with pytest.raises(FormatError):
            ct.unpack(data[:n])


def test_newer_minor_version_refused():
    data = bytearray(ct.pack(sample()))
    data[5] = 2
    with pytest.raises(FormatError, match="1.2 is newer"):
        ct.unpack(refix_crc(bytes(data)))


def test_unregistered_model_number_refused():
    sha = bytes.fromhex(REGISTERED[1][1])
    data = bytearray(ct.pack(ct.Container(5, 2, 64, 64, 3, 8, REGISTERED[1][0], sha, {},
                                          [b"x"], {})))
    assert data[11] == 1
    data[11] = 100
    with pytest.raises(FormatError, match="registered model #100"):
        ct.unpack(refix_crc(bytes(data)))


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
    # 1.1: width 2**40
    out = bytearray(ct.MAGIC + bytes([1, 1, 1, 1, 2]))
    write_varint(out, 2**40)
    write_varint(out, 10)
    with pytest.raises(FormatError):
        ct.unpack(with_checksum(bytes(out)))
    # a stream that declares more bytes than the file has (1.0, and 1.1 with two streams)
    c = ct.pack_v10(ct.Container(1, 1, 8, 8, 3, 8, "", b"", {}, [b"x" * 10], {}))
    raw = bytearray(c[:-4])
    i = raw.index(b"x" * 10) - 1
    raw[i:i + 1] = b"\xff\xff\xff\x7f"
    with pytest.raises(FormatError):
        ct.unpack(refix_crc(bytes(raw) + b"\0\0\0\0"))
    c = ct.pack(ct.Container(1, 1, 8, 8, 3, 8, "", b"", {}, [b"x" * 10, b"y"], {}))
    raw = bytearray(c[:-2])
    assert raw[11:13] == bytes([2, 10])
    raw[12:13] = b"\xff\xff\xff\x7f"
    with pytest.raises(FormatError):
        ct.unpack(with_checksum(bytes(raw)))
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
    n = 2 if base[5] and len(base) <= ct.SMALL_FILE else 4
    mutated = with_checksum(bytes(base[:len(base) - n - cut]))
    t = time.perf_counter()
    try:
        out = api.decode(mutated)
        assert out.pixels.dtype == np.uint8
        assert out.pixels.shape[:2] == (out.header.height, out.header.width)
    except GanCompError:
        pass
    assert time.perf_counter() - t < 20


def test_registered_numbers_match_the_shipped_weights():
    """Each registered number pins the SHA-256 of the model shipped under that id, and a file
    of a registered model names it by number (a one-byte ref in the header)."""
    from gancomp import weights

    for ref, (mid, sha) in REGISTERED.items():
        card = weights.find(mid)
        assert card is not None and card.sha256 == sha, mid
        assert weights.registered_ref(mid, sha) == ref
    c = ct.Container(3, 2, 8, 8, 3, 8, "hp-a2", bytes.fromhex(REGISTERED[6][1]), {}, [b"x"], {})
    d = ct.unpack(ct.pack(c))
    assert d.model_id == "hp-a2" and len(ct.pack(c)) < 40
