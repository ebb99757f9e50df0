"""The per-image least-squares refits shared by ``ae --finetune`` and ``hyperprior --adapt``:
the loop filter recovers a known blur's inverse, its stream round-trips, and applying it
matches a plain convolution."""

from __future__ import annotations

import numpy as np
import pytest

from gancomp.codecs import refit
from gancomp.errors import FormatError

from conftest import DATA


def _coder() -> refit.CoefCoder:
    from gancomp.train.export import gaussian_tables

    f, o, _ = gaussian_tables()
    return refit.CoefCoder(f, o)


def _blurred(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = rgb.transpose(2, 0, 1) / 255.0
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
    k = np.array([0.25, 0.5, 0.25])
    z = sum(k[i] * k[j] * xp[:, i:i + x.shape[1], j:j + x.shape[2]]
            for i in range(3) for j in range(3))
    return x, np.rint(z * 255) / 255


def test_loop_filter_undoes_blur_and_round_trips(rgb):
    pytest.importorskip("torch")
    x, z = _blurred(rgb)
    sse0 = float(((z - x) ** 2).sum())
    coder = _coder()
    res = refit.fit_filter(coder, z, x, lambda dsse, n: sse0 + dsse + 1e-4 * n)
    assert res is not None
    j, stream, d, r = res
    out = refit.apply_filter(z, d, r)
    sse1 = float(((out - x) ** 2).sum())
    assert sse1 < 0.6 * sse0                           # sharpening recovered
    assert abs((sse0 + (sse1 - sse0) + 1e-4 * len(stream)) - j) < 1e-6 * sse0  # exact dsse
    d2, r2 = refit.decode_filter(coder, stream)
    assert r2 == r and np.array_equal(d2, d)


def test_apply_filter_is_a_convolution(rgb):
    torch = pytest.importorskip("torch")
    from torch.nn import functional as F

    _, z = _blurred(rgb)
    r = 1
    rng = np.random.default_rng(0)
    d = rng.normal(0, 0.05, (refit.filter_size(r), 3))
    want = F.conv2d(F.pad(torch.from_numpy(z - 0.5)[None], (r,) * 4, mode="replicate"),
                    torch.from_numpy(d[:-1].T.reshape(3, 3, 3, 3).copy()),
                    torch.from_numpy(d[-1].copy()))[0].numpy() + z
    assert np.abs(refit.apply_filter(z, d, r) - want).max() < 1e-12


def test_malformed_filter_stream():
    coder = _coder()
    for bad in (b"", b"\x05\x08\x01", b"\x01\x00\x01"):
        with pytest.raises(FormatError):
            refit.decode_filter(coder, bad)
