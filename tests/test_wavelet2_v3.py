"""wavelet2 format v3: band groups on one canvas, joint symbols, quiet coefficients, strips;
v2 files keep decoding; corrupt v3 files give the one-line error."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from gancomp import api, subband3
from gancomp.codecs import get_codec
from gancomp.codecs import wavelet2 as w2
from gancomp.errors import FormatError
from gancomp.metrics import psnr
from gancomp.subband import BandInfo

from conftest import ROOT


def _bands(rng, shapes, density):
    out = []
    for h, w in shapes:
        b = np.zeros((h, w), dtype=np.int64)
        m = rng.random((h, w)) < density
        b[m] = rng.integers(-40, 41, int(m.sum()))
        b[0, 0] = 3000                     # an escape with raw bits
        out.append(b)
    return out


@pytest.mark.parametrize("strip", [7, 64, 1 << 30])
def test_code_group_round_trip(monkeypatch, strip):
    # odd shapes, a parent and a luma band, strips down to a few coefficients
    monkeypatch.setattr(subband3, "STRIP", strip)
    rng = np.random.default_rng(strip)
    shapes = [(13, 9), (12, 10), (12, 9)]
    parents = _bands(rng, [(7, 5), (6, 5), (6, 5)], 0.3)
    luma = _bands(rng, shapes, 0.2)
    for density in (0.0, 0.05, 0.6):
        qs = _bands(rng, shapes + shapes, density)

        def infos():
            return [BandInfo(1, 1, o % 3, shapes[o % 3], parents[o % 3], [], luma[o % 3])
                    for o in range(6)]

        enc = w2.make_coders(3)
        subband3.code_group(enc, infos(), [q.copy() for q in qs])
        data = enc.finish()
        dec = w2.make_coders(3, data)
        got = subband3.code_group(dec, infos())
        dec.check_end()
        for a, b in zip(got, qs):
            assert np.array_equal(a, b)


def test_v3_encodes_and_decodes(monkeypatch, rgb):
    monkeypatch.setattr(w2, "VERSION", 3)       # v4 is the default; v3 stays writable
    c = get_codec("wavelet2")
    assert c.version >= 3
    e = c.encode(rgb, 45)
    assert e.params["V"] == 3
    out = c.decode(e.params, e.streams, rgb.shape[1], rgb.shape[0], 3)
    assert psnr(rgb, out) > 30


def test_v2_files_still_decode_and_versions_do_not_mix(rgb):
    c = get_codec("wavelet2")
    an = c.analyse(rgb)
    code = w2.step_code_for_quality(50)
    e2 = c.encode_analysed(rgb.shape, an, code, c.chroma_default, coders=w2.make_coders(2),
                           version=2)
    assert e2.params["V"] == 2
    out2 = c.decode(e2.params, e2.streams, rgb.shape[1], rgb.shape[0], 3)
    assert psnr(rgb, out2) > 30
    e3 = c.encode_analysed(rgb.shape, an, code, c.chroma_default, version=3)
    out3 = c.decode(e3.params, e3.streams, rgb.shape[1], rgb.shape[0], 3)
    assert abs(psnr(rgb, out3) - psnr(rgb, out2)) < 0.5
    for params, streams in ((dict(e3.params, V=2), e3.streams), (dict(e2.params, V=3), e2.streams)):
        with pytest.raises(FormatError):   # read with the other version's rules: desync
            c.decode(params, streams, rgb.shape[1], rgb.shape[0], 3)


@pytest.mark.parametrize("version", [3, 4])
def test_v3_cross_process_decode_is_bit_exact(monkeypatch, tmp_path, rgb, gray, version):
    monkeypatch.setattr(w2, "VERSION", version)
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default", OMP_NUM_THREADS="3",
               OPENBLAS_NUM_THREADS="3", MKL_NUM_THREADS="3")
    for img, q in ((rgb, 30), (gray, 70), (rgb[:37, :53], 60)):
        data = api.encode_array(img, "wavelet2", q)
        h = api.read_header(data)
        assert h.params["V"] == version and h.codec_version == version
        f = tmp_path / "a.gcz"
        f.write_bytes(data)
        want = hashlib.sha256(api.decode_array(data).tobytes()).hexdigest()
        code = ("import hashlib\nfrom gancomp import api\n"
                f"px = api.decode_array(open({str(f)!r}, 'rb').read())\n"
                "print(hashlib.sha256(px.tobytes()).hexdigest())")
        r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                           text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == want


@pytest.mark.parametrize("version", [3, 4])
def test_truncated_or_corrupt_v3_file_gives_one_line_error(monkeypatch, tmp_path, rgb, version):
    monkeypatch.setattr(w2, "VERSION", version)
    data = api.encode_array(rgb, "wavelet2", 40)
    assert api.read_header(data).params["V"] == version
    bad = {"truncated": data[: len(data) * 2 // 3], "short": data[:-3]}
    b = bytearray(data)
    b[len(b) // 2] ^= 0xFF
    bad["flipped"] = bytes(b)
    for name, blob in bad.items():
        src = tmp_path / f"{name}.gcz"
        src.write_bytes(blob)
        out = tmp_path / f"{name}.png"
        r = subprocess.run([sys.executable, "-m", "gancomp", "decode", str(src), str(out)],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert r.returncode == 3, (name, r.returncode, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not out.exists()


def test_keep_freed_memory_keeps_the_pixels(rgb):
    # the CLI's malloc setting (glibc only; a no-op elsewhere) must not change any result
    from gancomp.cli.common import keep_freed_memory

    c = get_codec("wavelet2")
    e = c.encode(rgb, 40)
    before = c.decode(e.params, e.streams, rgb.shape[1], rgb.shape[0], 3)
    keep_freed_memory()
    e2 = c.encode(rgb, 40)
    assert e2.streams == e.streams and e2.params == e.params
    assert np.array_equal(c.decode(e.params, e.streams, rgb.shape[1], rgb.shape[0], 3), before)
