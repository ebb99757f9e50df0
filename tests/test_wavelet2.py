"""wavelet2: transform, round trips, rate monotonicity, corrupt streams, cross-process decode."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from gancomp import api, dwt97
from gancomp.codecs import get_codec
from gancomp.codecs.wavelet2 import VERSION
from gancomp.errors import FormatError
from gancomp.metrics import psnr

from conftest import ROOT


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (2, 2), (3, 5), (97, 61), (64, 64)])
def test_dwt97_perfect_reconstruction(shape):
    rng = np.random.default_rng(1)
    x = rng.normal(scale=50, size=shape)
    for levels in range(0, 4):
        if min(shape) < 2 ** levels:
            break
        ll, det = dwt97.forward(x, levels)
        assert ll.shape == dwt97.band_shapes(*shape, levels)[0]
        assert [tuple(b.shape for b in lev) for lev in det] == dwt97.band_shapes(*shape, levels)[1]
        np.testing.assert_allclose(dwt97.inverse(ll, det), x, atol=1e-9)


def test_dwt97_is_cdf97():
    # a linear ramp has zero high-pass output away from the borders (4 vanishing moments)
    x = np.tile(np.arange(64, dtype=np.float64), (64, 1)) ** 3
    _, det = dwt97.forward(x, 1)
    hl = det[0][0]
    assert np.abs(hl[4:-4, 4:-4]).max() < 1e-6 * np.abs(x).max()


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (97, 61), (16, 17)])
@pytest.mark.parametrize("channels", [1, 3])
def test_round_trip_sizes(shape, channels):
    rng = np.random.default_rng(sum(shape) + channels)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    base = (128 + 60 * np.sin(xx / 7.0) * np.cos(yy / 5.0))[..., None]
    img = np.clip(base + rng.normal(scale=8, size=shape + (channels,)), 0, 255).astype(np.uint8)
    data = api.encode_array(img, "wavelet2", 90)
    out = api.decode_array(data)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert psnr(img, out) > 35.0


def test_rgb_quality_and_default(rgb):
    data = api.encode_array(rgb, "wavelet2")
    out = api.decode_array(data)
    assert psnr(rgb, out) > 28.0
    assert len(data) * 8 / (rgb.shape[0] * rgb.shape[1]) < 3.0


def test_quality_is_monotone(rgb, gray):
    for img in (rgb, gray):
        sizes = [len(api.encode_array(img, "wavelet2", q)) for q in (0, 15, 30, 45, 60, 75, 90, 100)]
        assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes), sizes
        errs = [psnr(img, api.decode_array(api.encode_array(img, "wavelet2", q)))
                for q in (10, 50, 90)]
        assert errs == sorted(errs)


def test_alpha_and_gray(rgb):
    rgba = np.concatenate([rgb, (np.arange(rgb.shape[1], dtype=np.uint8)[None, :, None]
                                 .repeat(rgb.shape[0], 0))], axis=2)
    out = api.decode_array(api.encode_array(rgba, "wavelet2", 60))
    assert out.shape == rgba.shape
    assert np.array_equal(out[..., 3], rgba[..., 3])


def _enc(img, q=50):
    c = get_codec("wavelet2")
    e = c.encode(img, q)
    return c, e


def test_corrupt_streams_raise_format_error(rgb):
    c, e = _enc(rgb)
    h, w = rgb.shape[:2]
    s = e.streams[0]
    bad_streams = [s[: len(s) // 2], s + b"\x00" * 9, b"", s[:-5]]
    rng = np.random.default_rng(0)
    for _ in range(6):
        b = bytearray(s)
        i = int(rng.integers(8, len(b) - 8))
        b[i] ^= 0x5A
        bad_streams.append(bytes(b))
    caught = 0
    for bs in bad_streams:
        try:
            out = c.decode(e.params, [bs], w, h, 3)
        except FormatError:
            caught += 1
        else:  # a flip the model cannot notice must still give a well-formed image
            assert out.shape == rgb.shape and out.dtype == np.uint8
    assert caught >= len(bad_streams) - 2
    for key, val in [("L", 9), ("s", 10_000), ("c", 999), ("r", b"\x00")]:
        p = dict(e.params, **{key: val})
        with pytest.raises(FormatError):
            c.decode(p, e.streams, w, h, 3)
    p = dict(e.params)
    del p["s"]
    with pytest.raises(FormatError):
        c.decode(p, e.streams, w, h, 3)
    with pytest.raises(FormatError):
        c.decode(e.params, e.streams + [b""], w, h, 3)


def test_no_torch_on_codec_path(tmp_path, rgb):
    from PIL import Image

    src = tmp_path / "a.png"
    Image.fromarray(rgb).save(src)
    code = (
        "import sys, numpy as np\n"
        "from PIL import Image\n"
        "from gancomp import api\n"
        f"d = api.encode_array(np.asarray(Image.open({str(src)!r})), 'wavelet2', 40)\n"
        "api.decode_array(d)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr


def test_cross_process_decode_is_bit_exact(tmp_path, rgb):
    data = api.encode_array(rgb, "wavelet2", 55, postfilter=2)
    assert "f" in api.read_header(data).params
    f = tmp_path / "a.gcz"
    f.write_bytes(data)
    want = hashlib.sha256(api.decode_array(data).tobytes()).hexdigest()
    code = ("import hashlib, sys\nfrom gancomp import api\n"
            f"px = api.decode_array(open({str(f)!r}, 'rb').read())\n"
            "print(hashlib.sha256(px.tobytes()).hexdigest())")
    env = {"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "3",
           "MKL_NUM_THREADS": "3"}
    import os

    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, **env), timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == want


def test_target_bpp_and_psnr_use_the_fast_path(rgb, monkeypatch):
    from gancomp.codecs.wavelet2 import Wavelet2Codec

    calls = []
    orig = Wavelet2Codec.analyse
    monkeypatch.setattr(Wavelet2Codec, "analyse",
                        lambda self, img: calls.append(1) or orig(self, img))
    px = rgb.shape[0] * rgb.shape[1]
    r = api.encode_array_ex(rgb, "wavelet2", target_bpp=1.0)
    assert len(calls) == 1   # one transform for the whole search
    assert len(r.data) * 8 / px <= 1.0
    assert len(api.encode_array(rgb, "wavelet2", r.quality + 2)) * 8 / px > 1.0
    r = api.encode_array_ex(rgb, "wavelet2", target_psnr=33.0)
    assert psnr(rgb, api.decode_array(r.data)) >= 33.0
    assert psnr(rgb, api.decode_array(api.encode_array(rgb, "wavelet2", r.quality - 2))) < 33.0


def test_priors_training_runs_and_table_loads(rgb):
    from gancomp.codecs.wavelet2 import load_priors
    from gancomp.subband import MODELS
    from gancomp.train import w2priors

    stats = w2priors.collect([rgb[:48, :64]], [30.0, 70.0], log=lambda m: None)
    pri = w2priors.to_priors(stats)
    for k, (a, n) in MODELS.items():
        assert pri[k].shape == (n, a) and pri[k].min() >= 1
    assert stats["sig"].sum() > 0 and stats["sign"].sum() > 0
    table = load_priors()
    assert set(table) == set(MODELS)


def test_postfilter_v2(rgb, gray):
    from gancomp import postfilter as pf

    x = np.random.default_rng(3).normal(size=(7, 5))
    ident = bytes([8] + [0] * pf.NTAP)
    assert np.array_equal(pf.apply(x, ident), x)
    assert pf.apply(np.ones((1, 1)), ident).shape == (1, 1)
    # least squares recovers a known filter
    codes = np.zeros(pf.NTAP, dtype=np.int8)
    codes[0], codes[1:5] = -64, 16
    known = bytes([8]) + codes.tobytes()
    y = pf.apply(x, known)
    w, sse = pf.fit(x, y, rows=1)
    assert pf.quantize(w) == known and sse(w) < 1e-9
    with pytest.raises(ValueError):
        pf.weights(bytes([11] + [0] * pf.NTAP))
    c = get_codec("wavelet2")
    for img in (rgb, gray, rgb[:1, :1], gray[:3, :5]):
        e = c.encode(img, 40, postfilter=2)
        assert e.params["V"] == VERSION and e.params["f"] == (1 << img.shape[2]) - 1
        out = c.decode(e.params, e.streams, img.shape[1], img.shape[0], img.shape[2])
        assert out.shape == img.shape
        assert "f" not in c.encode(img, 40, postfilter=0).params
    e = c.encode(rgb, 40, postfilter=2)
    d = psnr(rgb, c.decode(e.params, e.streams, rgb.shape[1], rgb.shape[0], 3))
    e0 = c.encode(rgb, 40, postfilter=0)
    d0 = psnr(rgb, c.decode(e0.params, e0.streams, rgb.shape[1], rgb.shape[0], 3))
    assert d > d0            # the fitted filter lowers the error
    bad = [{"f": 8}, {"f": 0}, {"w": e.params["w"][:-1]}, {"f": "x"}, {"V": 9}, {"V": 1},
           {"w": b"\x0f" + e.params["w"][1:]}]
    for b in bad:
        with pytest.raises(FormatError):
            c.decode(dict(e.params, **b), e.streams, rgb.shape[1], rgb.shape[0], 3)


def test_v1_stream_decodes_with_v1_rules(rgb):
    # a v1 file has no "V": it must decode with v1's adaptation (frozen files: test_conformance)
    import gancomp.codecs.wavelet2 as w2

    c = get_codec("wavelet2")
    e = c.encode(rgb, 50, postfilter=0)
    p1 = {k: v for k, v in e.params.items() if k != "V"}
    with pytest.raises(FormatError):   # v2 stream read with v1 rules desyncs
        c.decode(p1, e.streams, rgb.shape[1], rgb.shape[0], 3)
    co = w2.make_coders(1)
    e1 = c.encode_analysed(rgb.shape, c.analyse(rgb), w2.step_code_for_quality(50),
                           c.chroma_default, coders=co, postfilter=0, version=1)
    out = c.decode({k: v for k, v in e1.params.items() if k != "V"}, e1.streams,
                   rgb.shape[1], rgb.shape[0], 3)
    assert psnr(rgb, out) > 30


def test_decoding_imports_only_its_codec(tmp_path, rgb):
    from gancomp.codecs import MODULE_OF_ID, available, codec_by_id

    for cid, mod in MODULE_OF_ID.items():
        assert codec_by_id(cid).__module__ == f"gancomp.codecs.{mod}"
    assert {c.codec_id for c in available().values()} >= set(MODULE_OF_ID)
    f = tmp_path / "a.gcz"
    f.write_bytes(api.encode_array(rgb, "wavelet2", 40))
    code = ("import sys\nfrom gancomp import api\n"
            f"px = api.decode_array(open({str(f)!r}, 'rb').read())\n"
            "api.encode_array(px, 'wavelet2')\n"
            "print(sorted(m for m in sys.modules if m.startswith('gancomp.codecs.')))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['gancomp.codecs.base', 'gancomp.codecs.wavelet2']"
