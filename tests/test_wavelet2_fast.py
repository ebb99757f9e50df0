"""The compiled wavelet2 v3 loops (gancomp._w2c via gancomp.subband3_fast) and the numpy
fallback give the same streams and pixels; the fallback can be forced (CI runs both)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from gancomp import accel, api, subband3, subband3_fast
from gancomp.codecs import wavelet2 as w2
from gancomp.errors import FormatError
from gancomp.subband import RD, BandInfo

from conftest import ROOT

needs_c = pytest.mark.skipif(subband3_fast._w2c is None,
                             reason="compiled extension not built (no C compiler)")
CONF = ROOT / "formats" / "conformance"


def _both(monkeypatch, fn):
    """fn() with the compiled loops, then with the numpy fallback."""
    monkeypatch.setattr(accel, "ENABLED", True)
    a = fn()
    monkeypatch.setattr(accel, "ENABLED", False)
    b = fn()
    return a, b


def test_compiler_present_means_extension_built():
    # a silently failed build would leave only the slow path: fail where a compiler is there
    inc = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not (shutil.which("cc") or shutil.which("gcc")) or not inc.exists():
        pytest.skip("no C compiler or Python headers here")
    assert subband3_fast._w2c is not None


def test_env_var_forces_the_numpy_path():
    code = "from gancomp import subband3_fast as f; print(f.accel.ENABLED)"
    for val, want in (("1", "False"), ("0", str(subband3_fast._w2c is not None))):
        r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                           text=True, env=dict(os.environ, GANCOMP_W2_NUMPY=val), timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == want


def _img_cases(rgb, gray, rgb_small):
    rgba = np.dstack([rgb, (np.arange(rgb.shape[1])[None, :] * 2 % 256 +
                            np.zeros(rgb.shape[:2], int)).astype(np.uint8)])
    return [(rgb, 5), (rgb, 35), (rgb, 90), (rgb[:37, :53], 60), (rgb_small[1:, :79], 50),
            (gray, 40), (gray[:61, :1], 70), (rgba[:79, :61], 30)]


@needs_c
def test_c_and_numpy_give_the_same_files_and_pixels(monkeypatch, rgb, gray, rgb_small):
    monkeypatch.setattr(w2, "VERSION", 3)      # v4: tests/test_wavelet2_v4.py
    for img, q in _img_cases(rgb, gray, rgb_small):
        def run():
            data = api.encode_array(np.ascontiguousarray(img), "wavelet2", q)
            return data, api.decode_array(data)

        (d1, p1), (d2, p2) = _both(monkeypatch, run)
        assert api.read_header(d1).params["V"] == 3
        assert d1 == d2, (img.shape, q)
        assert np.array_equal(p1, p2), (img.shape, q)
        # and each path decodes the other's file (the same file: checked above) identically
        monkeypatch.setattr(accel, "ENABLED", True)
        assert np.array_equal(api.decode_array(d2), p2)


def _conformance_files():
    out = []
    for d in ("wavelet2_v3", "generative"):
        man = json.loads((CONF / d / "manifest.json").read_text())
        out += [(d, n, w["sha256_pixels"]) for n, w in sorted(man.items())]
    return out


@needs_c
@pytest.mark.parametrize("folder,name,want", _conformance_files(),
                         ids=[f"{f}/{n}" for f, n, _ in _conformance_files()])
def test_conformance_files_decode_identically_both_ways(monkeypatch, folder, name, want):
    data = (CONF / folder / name).read_bytes()
    p1, p2 = _both(monkeypatch, lambda: api.decode_array(data))
    assert hashlib.sha256(p1.tobytes()).hexdigest() == want
    assert hashlib.sha256(p2.tobytes()).hexdigest() == want


def _bands(rng, shapes, density):
    out = []
    for h, w in shapes:
        b = np.zeros((h, w), dtype=np.int64)
        m = rng.random((h, w)) < density
        b[m] = rng.integers(-40, 41, int(m.sum()))
        b[0, 0] = 3000                     # an escape with raw bits
        out.append(b)
    return out


@needs_c
@pytest.mark.parametrize("strip,halve_at", [(7, 150), (64, 1 << 12), (1 << 30, 1 << 22)])
def test_code_group_same_stream_with_tiny_limits(monkeypatch, strip, halve_at):
    # small strips and a low halving limit (below the trained priors' totals, so rows start
    # over it) exercise every adapt/halve branch; RDO and plain quantized bands both ways
    monkeypatch.setattr(subband3, "STRIP", strip)
    rng = np.random.default_rng(strip)
    shapes = [(13, 9), (12, 10), (12, 9)]
    parents = _bands(rng, [(7, 5), (6, 5), (6, 5)], 0.3)
    luma = _bands(rng, shapes, 0.2)

    def infos():
        return [BandInfo(1, 1, o % 3, shapes[o % 3], parents[o % 3], [], luma[o % 3])
                for o in range(6)]

    def coders(data=None):
        co = w2.make_coders(3, data)
        for c in co.all:
            c.halve_at = halve_at
        return co

    for density in (0.0, 0.05, 0.6):
        qs = _bands(rng, shapes + shapes, density)
        a = [q * 1.3 + rng.normal(0, 0.4, q.shape) for q in qs]

        def run():
            enc = coders()
            sent = subband3.code_group(enc, infos(), [q.copy() for q in qs])
            enc_rd = coders()
            chosen = subband3.code_group(enc_rd, infos(), [], a, RD(None, 1.0, 3.0, 0.1, 0.05, 0.5))
            data, data_rd = enc.finish(), enc_rd.finish()
            dec = coders(data)
            got = subband3.code_group(dec, infos())
            dec.check_end()
            dec_rd = coders(data_rd)
            got_rd = subband3.code_group(dec_rd, infos())
            dec_rd.check_end()
            return data, data_rd, sent, chosen, got, got_rd, [c.counts.copy() for c in dec.all]

        r1, r2 = _both(monkeypatch, run)
        assert r1[0] == r2[0] and r1[1] == r2[1]
        for x, y in zip(r1[2:], r2[2:]):
            assert all(np.array_equal(u, v) for u, v in zip(x, y))
        assert all(np.array_equal(u, v) for u, v in zip(r1[4], qs))     # lossless round trip
        assert all(np.array_equal(u, v) for u, v in zip(r1[5], r1[3]))


@needs_c
def test_corrupt_stream_is_a_format_error_in_the_c_path(monkeypatch, rgb):
    monkeypatch.setattr(accel, "ENABLED", True)
    c = w2.Wavelet2Codec()
    e = c.encode(rgb, 40)
    s = bytearray(e.streams[0])
    s[len(s) // 3] ^= 0x55
    with pytest.raises(FormatError):
        c.decode(e.params, [bytes(s[: len(s) * 2 // 3])], rgb.shape[1], rgb.shape[0], 3)


def test_recording_stats_uses_the_numpy_path():
    co = w2.make_coders(3, record=True)
    assert not subband3_fast.usable(co)


@needs_c
def test_dwt_c_and_numpy_give_the_same_floats(monkeypatch):
    from gancomp import dwt97

    rng = np.random.default_rng(7)
    shapes = [(1, 1), (1, 9), (9, 1), (2, 2), (3, 5), (17, 32), (64, 33), (37, 53), (96, 128)]
    for h, w in shapes:
        x = rng.normal(0, 50, (h, w))
        for levels in (1, 2, 3, 6):
            (l1, d1), (l2, d2) = _both(monkeypatch, lambda: dwt97.forward(x, levels))
            assert np.array_equal(l1, l2) and l1.shape == l2.shape
            for a, b in zip(d1, d2):
                assert all(u.shape == v.shape and np.array_equal(u, v) for u, v in zip(a, b))
            # the inverse of slightly perturbed bands (as a decoder sees them)
            dd = [tuple(np.round(u * 4) / 4 for u in t) for t in d1]
            r1, r2 = _both(monkeypatch, lambda: dwt97.inverse(np.round(l1), dd))
            assert r1.shape == (h, w) and np.array_equal(r1, r2), (h, w, levels)


@needs_c
def test_pixel_loops_c_and_numpy_agree(monkeypatch):
    # post-filter on planes down to 1 x 1 (symmetric padding wider than the plane), colour
    # transforms with rounding ties, dequantization of strided views
    from gancomp import postfilter as pf

    rng = np.random.default_rng(3)
    for h, w in ((1, 1), (2, 5), (7, 3), (40, 33)):
        x = rng.normal(0, 30, (h, w))
        stored = pf.quantize(np.concatenate([[0.9], rng.normal(0, 0.05, pf.NTAP - 1)]))
        a, b = _both(monkeypatch, lambda: pf.apply(x, stored))
        assert np.array_equal(a, b)
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        c = w2.Wavelet2Codec()
        (_, _, p1), (_, _, p2) = _both(monkeypatch, lambda: c.analyse(img))
        assert all(np.array_equal(u, v) for u, v in zip(p1, p2))
    planes = [np.round(rng.normal(0, 90, (9, 11)) * 2) / 2 for _ in range(3)]  # .5 ties
    c = w2.Wavelet2Codec()
    stub = {"L": w2.levels_for(9, 11), "s": 100, "c": 0, "r": bytes(18), "V": 3}

    def colour():
        monkeypatch.setattr(w2, "_planes", lambda *a: [p.copy() for p in planes])
        monkeypatch.setattr(w2.Wavelet2Codec, "_code_v3", staticmethod(lambda *a, **k: ([], [])))
        monkeypatch.setattr(w2, "make_coders", lambda *a, **k: type(
            "C", (), {"check_end": lambda self: None})())
        return c.decode(stub, [b""], 11, 9, 3)

    a, b = _both(monkeypatch, colour)
    assert np.array_equal(a, b) and a.min() == 0 and a.max() == 255


def test_cost_tables_from_one_log2_call_equal_subband_ones():
    from gancomp.subband import _cost_table

    co = w2.make_coders(3)
    co.rest.counts[3, 5] += 12345
    co.rest.totals[3] += 12345
    got = subband3_fast._cost_tables(co)
    for t, m in zip(got, (co.sig, co.gt1, co.sign, co.rest)):
        assert t.shape == m.counts.shape and np.array_equal(t, _cost_table(m))
