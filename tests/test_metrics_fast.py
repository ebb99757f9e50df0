"""The vectorized metrics agree with the libraries that define them; parallel compare agrees
with serial compare."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import DATA
from gancomp import compare, metrics


def _pair(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = (128 + 60 * np.sin(xx / 9.0)[..., None] * np.cos(yy / 13.0)[..., None]
            + rng.normal(0, 20, (h, w, 3)))
    a = np.clip(base, 0, 255).astype(np.uint8)
    b = np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    return a, b


@pytest.mark.parametrize("shape", [(171, 203), (200, 161), (256, 256)])
def test_ms_ssim_matches_pytorch_msssim(shape):
    torch = pytest.importorskip("torch")
    from pytorch_msssim import ms_ssim

    a, b = _pair(*shape, seed=shape[0])
    x = torch.from_numpy(a.astype(np.float64)).permute(2, 0, 1)[None]
    y = torch.from_numpy(b.astype(np.float64)).permute(2, 0, 1)[None]
    ref = float(ms_ssim(x, y, data_range=255.0))
    assert metrics.ms_ssim(a, b) == pytest.approx(ref, abs=1e-9)
    assert metrics.Scorer(a).scores(b)["ms_ssim"] == pytest.approx(ref, abs=1e-9)


@pytest.mark.parametrize("shape", [(64, 80), (7, 9), (171, 203)])
def test_ssim_matches_skimage(shape):
    from skimage.metrics import structural_similarity

    a, b = _pair(*shape, seed=3)
    ref = structural_similarity(a.astype(float), b.astype(float), data_range=255.0,
                                channel_axis=-1, win_size=7)
    assert metrics.ssim(a, b) == pytest.approx(ref, abs=1e-12)
    sc = metrics.Scorer(a).scores(b)
    assert sc["ssim"] == pytest.approx(ref, abs=1e-12)
    assert sc["psnr"] == pytest.approx(metrics.psnr(a, b)) and sc["mse"] == metrics.mse(a, b)
    assert np.isnan(sc["ms_ssim"]) == (min(shape) <= 160)  # too small for five scales
    g = metrics.Scorer(a[:, :, :1]).ssim(b[:, :, :1])  # one channel works too
    assert g == pytest.approx(structural_similarity(a[:, :, 0].astype(float), b[:, :, 0].astype(float),
                                                    data_range=255.0, win_size=7), abs=1e-12)


def test_parallel_compare_gives_the_same_rows():
    imgs = [DATA / "astronaut_128x96.png", DATA / "chelsea_80x64.png", DATA / "camera_gray_64.png"]
    runners = compare.resolve_codecs(["wavelet", "jpeg"])
    q = {"wavelet": [30, 70], "jpeg": [20, 80]}
    k1: dict = {}
    k2: dict = {}
    r1 = compare.run(imgs, runners, per_codec=q, progress=False, keep=k1)
    r2 = compare.run(imgs, runners, per_codec=q, progress=False, keep=k2, workers=2)
    strip = lambda r: [(x.codec, x.image, x.point, x.nbytes, x.psnr, x.ssim) for x in r.rows]  # noqa: E731
    assert strip(r1) == strip(r2) and len(r1.rows) == 12
    assert k1 == k2 and len(k1) == 12
