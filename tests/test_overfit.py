"""The overfitted codec: integer tables, exact entropy model, round trips, reproducibility,
cross-process exactness, corrupt streams and bad options."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gancomp import api
from gancomp.errors import FormatError, InputError
from gancomp.overfit import arm as A
from gancomp.overfit import laplace as lp
from gancomp.overfit.model import decode_ints, encode_ints

DATA = Path(__file__).parent / "data"
FAST = {"effort": 1, "iters": 40}


def _img() -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(DATA / "astronaut_128x96.png").convert("RGB"))[:64, :96].copy()


def test_table_integer_and_matches_float():
    for i, r in enumerate(lp.RHO_Q):
        assert abs(r - math.exp(-1 / (2 * lp.MEAN_FRAC * lp.scale_of(i))) * 2 ** 30) <= 1
    t = lp.table()
    assert t.min() >= 1 and abs(int(t.sum(1).max()) - 2 ** 20) < 200
    row0 = t[10 * lp.MEAN_FRAC]  # fraction 0: symmetric around the centre column
    assert np.array_equal(row0[:lp.R], row0[lp.R + 1:2 * lp.R + 1][::-1])


def test_continuous_bits_match_table():
    import torch

    for s in (5, 20, 40):
        for m in (0, 3):
            mu = m / lp.MEAN_FRAC
            ls = lp.LOG_B0 + s / 8
            ys = torch.arange(-4.0, 5.0)
            b = lp.bits(ys, torch.full_like(ys, mu), torch.full_like(ys, ls)).numpy()
            ref = lp.row_bits()[s * lp.MEAN_FRAC + m, lp.R - 4:lp.R + 5]
            ok = ref < 18  # far tails sit on the table's floor
            assert np.allclose(b[ok], ref[ok], atol=0.02)


def _random_arm(rng, k=6):
    dims = [A.N_CTX, 8, 8, 2]
    layers = [(rng.integers(-40, 41, (a, b)), rng.integers(-200, 201, b)) for a, b in zip(dims[:-1], dims[1:])]
    return A.IntArm(layers, k)


def test_latents_round_trip_wavefront():
    rng = np.random.default_rng(0)
    arm = _random_arm(rng)
    grids = [rng.laplace(0, 3, (13, 17)).round().astype(np.int64), rng.integers(-60, 60, (7, 9)),
             np.zeros((1, 1), np.int64)]
    grids[0][3, 4] = 3000  # an escape
    data = A.encode_latents(arm, grids)
    back = A.decode_latents(arm, data, [g.shape for g in grids])
    assert all(np.array_equal(a, b) for a, b in zip(grids, back))
    assert A.wavefront_order(5, 7).tolist() != list(range(35))
    assert sorted(A.wavefront_order(5, 7).tolist()) == list(range(35))
    with pytest.raises(FormatError):
        A.decode_latents(arm, data[:-3], [g.shape for g in grids])


def test_weight_ints_round_trip():
    rng = np.random.default_rng(1)
    ts = [rng.integers(-3000, 3000, (5, 7)), np.zeros(3, np.int64), rng.integers(-2, 3, 40)]
    back = decode_ints(encode_ints(ts), [t.shape for t in ts])
    assert all(np.array_equal(a, b) for a, b in zip(ts, back))


@pytest.fixture(scope="module")
def encoded():
    img = _img()
    return img, api.encode_array(img, codec="overfit", quality=60, seed=3, **FAST)


def test_round_trip_and_reproducible(encoded):
    img, data = encoded
    rec = api.decode(data).pixels
    assert rec.shape == img.shape
    mse = np.mean((rec.astype(float) - img) ** 2)
    assert 10 * np.log10(255 ** 2 / mse) > 18  # a real fit, not noise (40 iterations only)
    again = api.encode_array(img, codec="overfit", quality=60, seed=3, **FAST)
    assert again == data
    other = api.encode_array(img, codec="overfit", quality=60, seed=4, **FAST)
    assert other != data


def test_tiles_round_trip():
    img = _img()
    data = api.encode_array(img, codec="overfit", quality=30, tile=64, effort=1, iters=10)
    assert api.decode(data).pixels.shape == img.shape


def test_other_process_threads_and_default_kernels(encoded, tmp_path):
    _, data = encoded
    f = tmp_path / "a.gcz"
    f.write_bytes(data)
    want = hashlib.sha256(api.decode(data).pixels.tobytes()).hexdigest()
    code = ("import sys,hashlib,torch; torch.set_num_threads(2); from gancomp import api; "
            "print(hashlib.sha256(api.decode(open(sys.argv[1],'rb').read()).pixels.tobytes()).hexdigest())")
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default", OMP_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", code, str(f)], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == want


def test_corrupt_streams_raise_format_error(encoded):
    from gancomp import container as ct
    from gancomp.codecs import get_codec

    _, data = encoded
    h = ct.unpack(data)
    codec = get_codec("overfit")
    rng = np.random.default_rng(0)
    for k in range(12):
        streams = [bytearray(s) for s in h.streams]
        s = streams[k % 2]
        if k < 4:
            del s[len(s) // 2:]
        else:
            s[int(rng.integers(0, len(s)))] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises(FormatError):
            codec.decode(h.params, [bytes(x) for x in streams], h.width, h.height, 3,
                         model_id=h.model_id, model_sha256=h.model_sha256_prefix)


def test_bad_options_one_line_exit_2(tmp_path):
    with pytest.raises(InputError):
        api.encode_array(_img(), codec="overfit", effort=12)
    png = DATA / "astronaut_128x96.png"
    for args in (["--effort", "0"], ["-q", "1e9"], ["-x", "seed=-1"], ["--best", "--effort", "3"]):
        r = subprocess.run([sys.executable, "-m", "gancomp", "encode", "-c", "overfit", *args,
                            str(png), str(tmp_path / "o.gcz")], capture_output=True, text=True)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not (tmp_path / "o.gcz").exists()


def test_gpu_recipe_state_finish_and_verify(tmp_path, monkeypatch):
    """Without constriction the GPU recipe saves float states; --finish codes them here and
    --verify decodes the .gcz to the recorded pixels."""
    from gancomp.codecs.overfit import arch_for
    from gancomp.overfit import fit as F
    from gancomp.overfit import gpurun

    from gancomp import container as ct

    img = _img()
    monkeypatch.setattr(gpurun, "_load", lambda kodak, which, name: img)
    arch = arch_for(img.shape[0] * img.shape[1])
    for prefit, name in ((False, "v1"), (True, "v2")):  # random start; pre-fitted start
        card, init = gpurun._start(arch, prefit)
        assert (init is not None) == prefit
        r = F.fit(img, 0.002, arch, F.Schedule(iters=10), seed=0, init=init)
        row = {"set": "crops", "image": name, "quality": 40.0, "effort": 9,
               "init": card.id if card else None, "init_sha256": card.sha256 if card else None}
        gpurun.save_state(tmp_path / f"crops-{name}-q40.safetensors", row, arch, r.latents, r.params)
    assert gpurun.main(["--finish", str(tmp_path)]) == 0
    for name, version in (("v1", 1), ("v2", 2)):
        c = ct.unpack((tmp_path / f"crops-{name}-q40.gcz").read_bytes())
        assert c.codec_version == version and (c.model_id != "") == (version == 2)
    assert gpurun.main(["--verify", str(tmp_path)]) == 0


def test_version2_starts_from_prefit_and_stores_differences(encoded):
    """Default encodes (codec version 2) name the shipped starting networks and store the
    weights as differences; -x prefit=0 writes a self-contained file without them."""
    from gancomp import container as ct

    img, data = encoded
    h = ct.unpack(data)
    assert h.codec_version == 2 and h.params.get("w") == 1 and h.model_id.startswith("overfit-init")
    plain = api.encode_array(img, codec="overfit", quality=60, seed=3, prefit=False, **FAST)
    hp = ct.unpack(plain)
    assert "w" not in hp.params and not hp.model_id
    assert api.decode(plain).pixels.shape == img.shape
    # the same integers decoded as absolute weights would be another (refused) state
    codec_params = {k: v for k, v in h.params.items() if k != "w"}
    from gancomp.codecs import get_codec

    with pytest.raises(FormatError):
        get_codec("overfit").decode(codec_params, h.streams, h.width, h.height, 3)


def test_prefit_tiny_and_analysis_shapes():
    """The pre-fitting code runs (2 tiny images, 3 iterations) and its least-squares latent
    projection has one latent per grid position."""
    from gancomp.overfit import prefit as P

    imgs = [_img()[:48, :64].copy(), _img()[16:64, 16:80].copy()]
    arch = P.ARCHS["small"]
    nets, lats = P.prefit(imgs, arch, [0.002], iters=3)
    assert set(nets) == {n for n, _ in P.param_shapes(arch)}
    coef = P.fit_analysis(imgs, lats, arch)
    assert coef.shape == (arch.grids, P.N_FEAT) and np.isfinite(coef).all()
    out = P.analysis(imgs[0], coef, arch)
    assert [a.shape for a in out] == arch.grid_shapes(48, 64)


def test_best_picks_overfit_effort_9(tmp_path):
    from gancomp import container as ct

    png = tmp_path / "s.png"
    from PIL import Image

    Image.fromarray(_img()[:16, :16].copy()).save(png)
    r = subprocess.run([sys.executable, "-m", "gancomp", "encode", "--best", "-x", "iters=10",
                        str(png), str(tmp_path / "o.gcz")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    h = ct.unpack((tmp_path / "o.gcz").read_bytes())
    assert h.params["e"] == 9 and h.codec_id == 7


def test_fast_fitting_ops_match_reference():
    """fastops' upsampling and ARM + rate give the values and gradients of the plain torch
    formulation (F.interpolate; gathered contexts + MLP + laplace.bits), in float64."""
    import torch
    import torch.nn.functional as F

    from gancomp.overfit import fastops as FO
    from gancomp.overfit.model import Arch

    g = torch.Generator().manual_seed(3)
    arch = Arch(syn=(8,), arm=8)
    h, w = 45, 70  # not multiples of 64: cropped upsampling, 1x2 coarsest grid
    shapes = arch.grid_shapes(h, w)
    qs = [(torch.randn(s, generator=g, dtype=torch.float64) * 3).round().requires_grad_(True)
          for s in shapes]
    x = FO.upsample_stack(qs, h, w)
    ref = torch.stack([qs[0]] + [F.interpolate(q[None, None], scale_factor=float(2 ** i),
                                               mode="bilinear", align_corners=False)[0, 0][:h, :w]
                                 for i, q in enumerate(qs) if i]).reshape(len(qs), -1)
    gx = torch.randn(x.shape, generator=g, dtype=torch.float64)
    assert torch.allclose(x, ref, atol=1e-12)
    for a, b in zip(torch.autograd.grad(x, qs, gx), torch.autograd.grad(ref, qs, gx)):
        assert torch.allclose(a, b, atol=1e-10)
    d = arch.arm_dims()
    ws = [(torch.randn(d[i + 1], d[i], generator=g, dtype=torch.float64) * 0.4).requires_grad_(True)
          for i in range(3)]
    bs = [(torch.randn(d[i + 1], generator=g, dtype=torch.float64) * 0.2).requires_grad_(True)
          for i in range(3)]
    old_chunk = FO.CHUNK
    FO.CHUNK = 128  # several row blocks per grid
    try:
        bits = FO.arm_bits(qs, ws, bs)
    finally:
        FO.CHUNK = old_chunk
    idx, _ = A.context_index(shapes)
    buf = torch.cat([F.pad(q[None], (A.PAD_L, A.PAD_R, A.PAD_T, 0))[0].reshape(-1) for q in qs])
    ctx = buf[torch.from_numpy(idx)]
    hdn = ctx
    for i in range(3):
        hdn = hdn @ ws[i].t() + bs[i]
        if i < 2:
            hdn = hdn.relu()
    flat = torch.cat([q.reshape(-1) for q in qs])
    ref_bits = lp.bits(flat, hdn[:, 0], hdn[:, 1]).sum()
    assert abs(float(bits.detach()) - float(ref_bits.detach())) < 1e-8 * float(ref_bits.detach())
    near = (flat - hdn[:, 0]).abs() <= 0.5
    assert 0 < int(near.sum()) < flat.numel()  # both branches of the bit count are exercised
    for a, b in zip(torch.autograd.grad(2.5 * bits, qs + ws + bs),
                    torch.autograd.grad(2.5 * ref_bits, qs + ws + bs)):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-9)


def test_fast_bit_count_matches_laplace_bits_at_extremes():
    """fastops._bits_grad (one formula for both branches): value and derivatives of
    laplace.bits under autograd, with log-scales beyond both clamps, |y - mu| around 1/2 and
    beyond the bit cap (float64)."""
    import torch

    from gancomp.overfit import fastops as FO

    g = torch.Generator().manual_seed(11)
    n = 4000
    y = (torch.randn(n, generator=g, dtype=torch.float64) * 3).round()
    mu = y + torch.randn(n, generator=g, dtype=torch.float64)
    mu[:40] = y[:40] + 0.5 + torch.linspace(-1e-3, 1e-3, 40, dtype=torch.float64)
    mu[40:80] = y[40:80] - 60.0                                   # over the cap
    ls = torch.randn(n, generator=g, dtype=torch.float64) * 3 - 0.5  # beyond LOG_B0 / LOG_B_MAX
    assert (ls < lp.LOG_B0).any() and (ls > lp.LOG_B_MAX).any()
    total, dy, dmu, dls = FO._bits_grad(y, mu, ls, True)
    args = [t.clone().requires_grad_(True) for t in (y, mu, ls)]
    ref = lp.bits(*args)
    assert (ref == lp.TABLE_BITS + 6).any() and ((y - mu).abs() > 0.5).any()
    assert abs(float(total) - float(ref.sum())) < 1e-9 * float(ref.sum())
    for a, b in zip((dy, dmu, dls), torch.autograd.grad(ref.sum(), args)):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-10)


def test_fast_conv_mse_matches_reference():
    """fastops.conv_mse: value and gradients of the two residual 3x3 layers + MSE as autograd
    computes them with F.conv2d (float64)."""
    import torch
    import torch.nn.functional as F

    from gancomp.overfit import fastops as FO

    g = torch.Generator().manual_seed(5)
    h, w = 23, 31
    x = torch.rand(3, h * w, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.rand(3, h * w, generator=g, dtype=torch.float64)
    ps = [(torch.randn(s, generator=g, dtype=torch.float64) * 0.3).requires_grad_(True)
          for s in ((3, 3, 3, 3), (3,), (3, 3, 3, 3), (3,))]
    mse = FO.conv_mse(x, t, h, w, *ps)
    x0 = x.view(1, 3, h, w)
    x1 = torch.relu(F.conv2d(x0, ps[0], ps[1], padding=1) + x0)
    x2 = F.conv2d(x1, ps[2], ps[3], padding=1) + x1
    ref = torch.mean((x2.reshape(3, -1) - t) ** 2)
    assert abs(float(mse.detach()) - float(ref.detach())) < 1e-12
    assert 0 < int((x1 == 0).sum()) < x1.numel()  # the ReLU clips some values
    for a, b in zip(torch.autograd.grad(3 * mse, [x, *ps]), torch.autograd.grad(3 * ref, [x, *ps])):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)


def test_soft_quant_matches_softround():
    import torch

    from gancomp.overfit.fastops import soft_quant
    from gancomp.overfit.fit import softround

    g = torch.Generator().manual_seed(7)
    y = (torch.randn(500, generator=g, dtype=torch.float64) * 3).requires_grad_(True)
    u = torch.rand(500, generator=g, dtype=torch.float64) - 0.5
    gy = torch.randn(500, generator=g, dtype=torch.float64)
    for t in (0.5, 0.2):
        s = softround(y, t)
        for got, ref in ((soft_quant(y, u, t), softround(s + u, t)),
                         (soft_quant(y, None, t), s + (torch.round(y) - s).detach())):
            assert torch.allclose(got, ref, atol=1e-12)
            a, = torch.autograd.grad(got, y, gy)
            b, = torch.autograd.grad(ref, y, gy, retain_graph=True)
            assert torch.allclose(a, b, atol=1e-10)


def test_bench_report_names_incomplete_images(tmp_path, monkeypatch):
    """--report-only on a partial cache: BD-rates only over images with all 4 qualities, the
    incomplete and the missing images named (no Kodak needed: loader and baselines faked)."""
    import argparse
    import json

    from gancomp.benchmarks import overfit as B

    monkeypatch.setattr(B, "load", lambda folder, name, which: np.zeros((8, 8, 3), np.uint8))
    monkeypatch.setattr(B, "baseline_curve",
                        lambda name, imgs: ([0.2, 0.4, 0.8, 1.6, 3.2], [26.0, 29.0, 32.0, 35.0, 38.0]))
    pts = {15.0: (0.25, 27.0), 40.0: (0.5, 30.0), 65.0: (1.0, 33.0), 90.0: (1.8, 35.5)}
    for q, (bpp, p) in pts.items():
        (tmp_path / f"crops-v3-e3-kodim01-q{q:g}.json").write_text(json.dumps(
            {"image": "kodim01", "set": "crops", "effort": 3, "quality": q, "bpp": bpp, "psnr": p,
             "recipe": "v3", "enc_cpu_s": 60.0, "notes": ["tile 0: 1080 iterations"]}))
    (tmp_path / "crops-v3-e3-kodim05-q15.json").write_text(json.dumps(
        {"image": "kodim05", "set": "crops", "effort": 3, "quality": 15.0, "bpp": 9.0, "psnr": 1.0,
         "recipe": "v3", "enc_cpu_s": 61.0, "notes": ["tile 0: 1080 iterations"]}))
    a = argparse.Namespace(no_write=True, out=str(tmp_path / "B.md"))
    text = B.report(a, tmp_path, tmp_path, "cmd")
    assert "crops, recipe v3, effort 3: 1 of 4 images complete (kodim01)" in text
    assert "incomplete kodim05 (1 of 4: q 15)" in text and "not run kodim14, kodim23" in text
    row = next(line for line in text.splitlines() if line.startswith("| crops | v3 | 3 (1080) |"))
    assert "1 of 4" in row and row.endswith("| 60 |") and "n/a" not in row
    # kodim05's lone point (9 bpp) must not enter the curve
    assert "| 15 | 1 | 0.2500 | 27.00 |" in text


def test_effort_times_measured_and_estimated():
    """The effort-time table: measured ranges where points exist (newest recipe only, runs with
    overridden iterations ignored), estimates from a least-squares line elsewhere."""
    from gancomp.benchmarks.overfit import effort_times

    def row(s, e, it, cpu, rec="v3", override=None):
        return {"set": s, "effort": e, "enc_cpu_s": cpu, "recipe": rec, "iters_override": override,
                "notes": [f"tile 0: {it} iterations, 0.1 s/it"]}

    rows = [row("crops", 1, 300, 32.0), row("crops", 1, 300, 34.0), row("crops", 2, 600, 62.0),
            row("crops", 2, 600, 80.0, rec="v2"), row("crops", 3, 40, 1.0, override=40)]
    lines = effort_times(rows)
    by_e = {ln.split(" | ")[0].strip("| "): ln for ln in lines if ln.startswith("| ") and "iterations" not in ln}
    assert "**32-34** measured (2 encodes, v3)" in by_e["1"]
    assert "**62** measured (1 encodes, v3)" in by_e["2"]
    # line through (300, 33) and (600, 62): 4 + 0.0967 x iterations -> effort 3 (1080 it) ~108
    assert "~108 (~2 min) estimate" in by_e["3"] and by_e["3"].endswith("n/a |")
    assert "4.0 s + 0.0967 s x iterations" in lines[-1]
