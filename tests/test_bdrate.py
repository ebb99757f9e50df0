import math

import numpy as np
import pytest

from gancomp.bdrate import bd_psnr, bd_quality, bd_rate, msssim_db
from gancomp.errors import InputError

# A realistic anchor: the published bmshj2018-hyperprior Kodak points (CompressAI, MSE models).
RATE = np.array([0.1313, 0.2089, 0.3199, 0.4784, 0.6687, 0.9388, 1.2592, 1.6602])
PSNR = np.array([27.58, 29.20, 30.97, 32.84, 34.53, 36.74, 38.58, 40.56])


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_half_the_rate_is_minus_50_percent(method):
    assert bd_rate(RATE, PSNR, RATE * 0.5, PSNR, method) == pytest.approx(-50.0, abs=1e-9)
    assert bd_rate(RATE, PSNR, RATE * 2.0, PSNR, method) == pytest.approx(100.0, abs=1e-9)
    assert bd_rate(RATE, PSNR, RATE, PSNR, method) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_one_db_up_is_bd_psnr_one(method):
    assert bd_psnr(RATE, PSNR, RATE, PSNR + 1.0, method) == pytest.approx(1.0, abs=1e-9)
    assert bd_psnr(RATE, PSNR, RATE, PSNR - 0.25, method) == pytest.approx(-0.25, abs=1e-9)


def test_exponential_curve_matches_closed_form():
    # log R = a * q + b is exactly representable; shifting quality by d changes rate by e^(-a d).
    q = np.linspace(28, 40, 6)
    a, d = 0.17, 1.5
    anchor = np.exp(a * q - 6)
    test = np.exp(a * (q - d) - 6)
    expected = (math.exp(-a * d) - 1) * 100
    assert bd_rate(anchor, q, test, q + 0) == pytest.approx(expected, rel=1e-9)
    # and only the shared quality range counts: extra test points outside it change nothing
    q2 = np.linspace(20, 50, 9)
    assert bd_rate(anchor, q, np.exp(a * (q2 - d) - 6), q2) == pytest.approx(expected, rel=1e-9)


def test_sign_convention_better_codec_is_negative():
    better = bd_rate(RATE, PSNR, RATE * 0.8, PSNR + 0.3)
    worse = bd_rate(RATE, PSNR, RATE * 1.3, PSNR - 0.3)
    assert better < 0 < worse


def test_order_and_nans_do_not_matter():
    perm = np.random.default_rng(0).permutation(RATE.size)
    r = np.append(RATE[perm] * 0.5, np.nan)
    q = np.append(PSNR[perm], 30.0)
    assert bd_rate(RATE, PSNR, r, q) == pytest.approx(-50.0, abs=1e-9)


def test_msssim_db_scale():
    assert msssim_db([0.9, 0.99])[0] == pytest.approx(10.0)
    assert msssim_db([0.9, 0.99])[1] == pytest.approx(20.0)


def test_bad_inputs_are_input_errors():
    with pytest.raises(InputError, match="at least 4"):
        bd_rate(RATE[:3], PSNR[:3], RATE, PSNR)
    with pytest.raises(InputError, match="overlap"):
        bd_rate(RATE, PSNR, RATE, PSNR + 100)
    with pytest.raises(InputError, match="overlap"):
        bd_quality(RATE, PSNR, RATE * 100, PSNR)
    with pytest.raises(InputError):
        bd_rate(RATE, PSNR, RATE, PSNR, method="spline")
    with pytest.raises(InputError):
        bd_rate(RATE, PSNR[:-1], RATE, PSNR)
