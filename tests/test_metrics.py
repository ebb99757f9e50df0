import math

import numpy as np
import pytest

from gancomp import metrics
from gancomp.report import read_section, write_section


def test_psnr_known_value():
    a = np.zeros((8, 8, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 16  # MSE = 256 / 192
    assert metrics.mse(a, b) == pytest.approx(256 / 192)
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 * 192 / 256))
    assert metrics.psnr(a, a) == math.inf


def test_ssim_and_msssim_match_references():
    import torch
    from pytorch_msssim import ms_ssim

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (200, 180, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    assert 0 < metrics.ssim(a, b) < 1
    ref = ms_ssim(torch.tensor(a).permute(2, 0, 1)[None].double(),
                  torch.tensor(b).permute(2, 0, 1)[None].double(), data_range=255)
    assert metrics.ms_ssim(a, b) == pytest.approx(float(ref), abs=1e-6)
    assert math.isnan(metrics.ms_ssim(a[:64, :64], b[:64, :64]))


def test_shape_mismatch_and_rates():
    with pytest.raises(ValueError):
        metrics.mse(np.zeros((2, 2)), np.zeros((2, 3)))
    assert metrics.bpp(100, 10, 10) == 8.0
    assert metrics.compression_ratio(0.5) == 48.0


def test_write_section_replaces_only_its_block(tmp_path):
    p = tmp_path / "B.md"
    write_section(p, "a", "table A1")
    write_section(p, "b", "table B")
    write_section(p, "a", "table A2")
    text = p.read_text()
    assert "table A1" not in text and "table A2" in text and "table B" in text
    assert read_section(p, "a") == "table A2"
    assert read_section(p, "zzz") is None
    with pytest.raises(ValueError):
        write_section(p, "bad key", "x")
