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


def _upscaled() -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(DATA / "astronaut_128x96.png").convert("RGB")
                      .resize((256, 192), Image.BICUBIC))


def test_hyperprior_adapt_pays_and_decodes_the_same_elsewhere(tmp_path):
    pytest.importorskip("torch")
    from gancomp import api
    from gancomp.metrics import psnr

    from conftest import run_cli

    img = _upscaled()
    plain = api.encode_array(img, codec="hyperprior", quality=90)
    data = api.encode_array(img, codec="hyperprior", quality=90, adapt=True)
    h = api.read_header(data)
    assert h.codec_version == 3 and h.params["a"] in (2, 3) and len(data) > len(plain)
    rec, rec0 = api.decode_array(data), api.decode_array(plain)
    lam_gain = psnr(img, rec) - psnr(img, rec0)
    assert lam_gain > 0.2                               # kept only because it pays
    (tmp_path / "a.gcz").write_bytes(data)
    r = run_cli("decode", str(tmp_path / "a.gcz"), str(tmp_path / "a.png"),
                env={"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "2"})
    assert r.returncode == 0, r.stderr
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), rec)
    # a file without the loop-filter stream is written as version 2: older builds read it
    assert api.read_header(plain).codec_version == 2 and "a" not in api.read_header(plain).params


def test_hyperprior_last_layer_refit_moves_its_phase():
    """A refit stream (bit 0 of ``a``) whose only entry is the red bias of output phase (0, 0)
    shifts exactly those pixels by its value."""
    pytest.importorskip("torch")
    from gancomp import api, container
    from gancomp.codecs.hyperprior import _runtime

    img = _upscaled()
    plain = api.encode_array(img, codec="hyperprior", quality=50)
    c = container.unpack(plain)
    rt = _runtime(c.model_id, c.model_sha256_prefix, "cpu")
    n = rt.model.g_s[-1].weight.shape[0] + 1
    q = np.zeros((n, 12), np.int64)
    q[-1, 0] = 3                                       # bias row, channel red * 4 + phase 0
    c.streams.append(_coder().encode(q, 7))           # 3 / 128 = 5.98 / 255
    c.params["a"] = 1
    base = api.decode_array(plain).astype(int)
    moved = api.decode_array(container.pack(c)).astype(int) - base
    assert not moved[1::2].any() and not moved[:, 1::2].any() and not moved[..., 1:].any()
    red = moved[0::2, 0::2, 0][base[0::2, 0::2, 0] < 249]
    assert set(np.unique(red)) <= {5, 6, 7} and red.mean() > 5.5
    c.streams[-1] = b"\x00"
    with pytest.raises(FormatError):
        api.decode_array(container.pack(c))
