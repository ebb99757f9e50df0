import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from gancomp import api
from gancomp.errors import InputError
from conftest import ROOT


def psnr(a, b):
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255 ** 2 / mse)


@pytest.mark.parametrize("codec", ["wavelet", "kmeans"])
@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 13, 3), (33, 17, 1), (64, 80, 3)])
def test_roundtrip_shapes(codec, shape, rgb_small):
    img = rgb_small[: shape[0], : shape[1], : shape[2]].copy()
    data = api.encode_array(img, codec)
    out = api.decode_array(data)
    assert out.shape == img.shape and out.dtype == np.uint8


def test_wavelet_rate_and_quality_rise_with_quality(rgb):
    sizes, quals = [], []
    for q in (10, 30, 50, 70, 90):
        data = api.encode_array(rgb, "wavelet", q)
        sizes.append(len(data))
        quals.append(psnr(rgb, api.decode_array(data)))
    assert sizes == sorted(sizes) and quals == sorted(quals)
    assert quals[-1] > 40 and quals[0] < 30


def test_wavelet_ratio_keeps_that_many_coefficients(rgb):
    lo = api.encode_array(rgb, "wavelet", ratio=200)
    hi = api.encode_array(rgb, "wavelet", ratio=10)
    assert len(lo) < len(hi)
    assert psnr(rgb, api.decode_array(lo)) < psnr(rgb, api.decode_array(hi))


def test_kmeans_colors(rgb):
    out = api.decode_array(api.encode_array(rgb, "kmeans", colors=4))
    assert len(np.unique(out.reshape(-1, 3), axis=0)) <= 4
    out16 = api.decode_array(api.encode_array(rgb, "kmeans", colors=16))
    assert psnr(rgb, out16) > psnr(rgb, out)


def test_alpha_and_gray_policies(rgb_small, gray):
    rgba = np.dstack([rgb_small, (np.arange(rgb_small.shape[1]) * 3 % 256).astype(np.uint8)
                      [None, :].repeat(rgb_small.shape[0], 0)])
    out = api.decode_array(api.encode_array(rgba, "wavelet", 60))
    assert out.shape == rgba.shape and np.array_equal(out[:, :, 3], rgba[:, :, 3])
    la = np.dstack([gray, gray])
    out = api.decode_array(api.encode_array(la, "kmeans"))
    assert out.shape == la.shape and np.array_equal(out[:, :, 1], la[:, :, 1])


@pytest.mark.parametrize("bad", [dict(quality=-1), dict(quality=101), dict(quality=float("nan")),
                                 dict(ratio=0.5), dict(colors=1), dict(colors=100000),
                                 dict(bogus=3)])
def test_absurd_options(bad, rgb_small):
    codec = "kmeans" if "colors" in bad else "wavelet"
    with pytest.raises(InputError):
        api.encode_array(rgb_small, codec, **bad)


def test_target_bpp(rgb):
    data = api.encode_array(rgb, "wavelet", target_bpp=1.0)
    bpp = len(data) * 8 / (rgb.shape[0] * rgb.shape[1])
    assert 0.7 < bpp <= 1.0
    with pytest.raises(InputError):
        api.encode_array(rgb, "wavelet", target_bpp=0.001)


def test_target_psnr(rgb):
    data = api.encode_array(rgb, "wavelet", target_psnr=35.0)
    assert psnr(rgb, api.decode_array(data)) >= 35.0


@pytest.mark.parametrize("codec", ["wavelet", "kmeans"])
def test_decodes_identically_in_another_process(codec, rgb, tmp_path):
    data = api.encode_array(rgb, codec)
    ref = hashlib.sha256(api.decode_array(data).tobytes()).hexdigest()
    f = tmp_path / "x.gcz"
    f.write_bytes(data)
    code = ("import sys,hashlib; from gancomp import api;"
            "print(hashlib.sha256(api.decode_array(open(sys.argv[1],'rb').read()).tobytes()).hexdigest())")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="2", ATEN_CPU_CAPABILITY="default")
    out = subprocess.run([sys.executable, "-c", code, str(f)], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.stdout.strip() == ref, out.stderr


@pytest.mark.parametrize("resolution", [0.0, 1.0])
@pytest.mark.parametrize("target", [0.3, 1.7, 5.0, 19.0])
def test_rate_search_finds_the_best_quality_in_few_trials(target, resolution):
    """The --target-bpp search returns the highest quality whose file fits, to the search's
    resolution, on a smooth rate curve and on a staircase one, in fewer trials than bisection."""
    from gancomp.codecs.base import Codec, Encoded

    calls: list[float] = []

    class Fake(Codec):
        name, codec_id, version, channels = "fake", 250, 1, (3,)
        quality_resolution = resolution

        def quality_range(self):
            return (0.0, 100.0)

        def encode(self, image, quality=None, **options):
            calls.append(quality)
            q = round(quality) if resolution else quality
            return Encoded({}, [bytes(int(40 * 2 ** (q / 12.0)))])

    arr = np.zeros((64, 64, 3), np.uint8)
    c = Fake()
    res = api._search(c, arr, target, None, None, None, 8, {})
    px, tol = 64 * 64, max(100 / 2 ** 9, resolution)

    def bpp(q):
        return len(api._encode_once(c, arr, q, None, None, 8, {})[0]) * 8 / px

    assert bpp(res.quality) <= target
    if res.quality < 100:
        assert bpp(min(100.0, res.quality + tol * 1.01)) > target, res.quality
    assert len(calls) <= 8, len(calls)   # bisection: 10
