"""generative codec (id 9): a tiny model trained in seconds, round trips through both
decoders, keep masks, cross-process bit-exactness, errors; the shipped model if present."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import DATA, ROOT, run_cli
from gancomp import api
from gancomp.errors import FormatError, InputError


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """gen-tiny trained for 3 steps on tests/data, exported to a model folder."""
    from gancomp.train import generative

    root = tmp_path_factory.mktemp("gen")
    generative.main(["--preset", "tiny", "--data", str(DATA), "--out", str(root / "g"),
                     "--export", str(root / "models"), "--model-id", "gen-tiny", "--quiet"])
    return root / "models"


@pytest.fixture()
def models_env(tiny_models, monkeypatch):
    monkeypatch.setenv("GANCOMP_MODEL_PATH", str(tiny_models))
    return {"GANCOMP_MODEL_PATH": str(tiny_models)}


def test_training_writes_a_loss_log_and_resumes(tmp_path):
    from gancomp.train import generative

    out = tmp_path / "run"
    generative.main(["--preset", "tiny", "--data", str(DATA), "--out", str(out), "--quiet"])
    rows = (out / "loss.csv").read_text().splitlines()
    assert rows[0].startswith("step,seconds") and len(rows) == 4
    generative.main(["--preset", "tiny", "--data", str(DATA), "--out", str(out), "--quiet",
                     "--steps", "5"])
    assert (out / "loss.csv").read_text().splitlines()[-1].startswith("5,")


def test_shipped_integer_hs_matches_the_trained_one(tiny_models, tmp_path):
    """The exported integer hyper-synthesis computes what the float h_s of the checkpoint
    computes (a stored-transposed weight once made the entropy model useless)."""
    import torch
    from safetensors.numpy import load_file

    from gancomp.nn.intnet import IntLayer, run
    from gancomp.train import gen_common as gc
    from gancomp.train.generative import build

    ckpt = tiny_models.parent / "g" / "checkpoint.safetensors"
    model = build(gc.read_config(ckpt))
    gc.load_checkpoint(ckpt, {"model": model})
    arrays = load_file(str(tiny_models / "gen-tiny.safetensors"))
    hs = [IntLayer.from_arrays(arrays[f"hs_int.{i}.weight"], arrays[f"hs_int.{i}.bias"],
                               arrays[f"hs_int.{i}.meta"]) for i in range(3)]
    z = np.random.default_rng(0).integers(-4, 5, (model.Nh, 3, 4))
    want = model.h_s(torch.from_numpy(z).float()[None])[0].detach().numpy()
    assert np.abs(run(hs, z) / 256 - want).max() < 0.05


def test_both_decoders_from_one_file(models_env, rgb):
    data = api.encode_array(rgb, codec="generative", quality=40, model="gen-tiny")
    gan = api.decode(data).pixels
    mse = api.decode(data, decoder="mse").pixels
    assert gan.shape == mse.shape == rgb.shape
    assert not np.array_equal(gan, mse)  # the generator adds its residual (and noise)
    assert np.array_equal(api.decode(data, decoder="gan").pixels, gan)
    with pytest.raises(InputError, match="decoder"):
        api.decode(data, decoder="vae")


def test_rate_rises_with_quality(models_env, rgb):
    sizes = [len(api.encode_array(rgb, codec="generative", quality=q, model="gen-tiny"))
             for q in (0, 50, 100)]
    assert sizes == sorted(sizes), sizes


def test_keep_mask_roundtrip_and_rate(models_env, rgb, tmp_path):
    from gancomp.codecs.generative import decode_mask, encode_mask

    m = np.random.default_rng(0).random((7, 9)) < 0.3
    assert np.array_equal(decode_mask(encode_mask(m), m.shape), m)
    mask = np.zeros(rgb.shape[:2], np.uint8)
    mask[10:40, 20:70] = 255
    plain = api.encode_array(rgb, codec="generative", quality=0, model="gen-tiny")
    kept = api.encode_array(rgb, codec="generative", quality=0, model="gen-tiny", keep_mask=mask)
    h = api.read_header(kept)
    assert h.params["k"] == 10000 and len(h.streams) == len(api.read_header(plain).streams) + 1
    out = api.decode(kept).pixels
    mse_out = api.decode(kept, decoder="mse").pixels
    # kept blocks show the MSE synthesis (rows 0..47, cols 16..79 cover the mask's blocks)
    assert np.array_equal(out[16:32, 32:64], mse_out[16:32, 32:64])
    png = tmp_path / "m.png"
    Image.fromarray(mask).save(png)
    assert api.encode_array(rgb, codec="generative", quality=0, model="gen-tiny",
                            keep_mask=str(png)) == kept
    auto = api.encode_array(rgb, codec="generative", quality=0, model="gen-tiny", keep="auto")
    assert api.read_header(auto).params["k"] == 10000
    with pytest.raises(InputError, match="mask"):
        api.encode_array(rgb, codec="generative", keep_mask=mask[:50])


def test_auto_mask_picks_edges():
    from gancomp.codecs.generative import auto_mask

    img = np.full((64, 64, 3), 128, np.uint8)
    img[:, 40:] = 255  # one vertical edge at x = 40: blocks of column 2 (32..47)
    m = auto_mask(img, 4 / 16)
    assert m.sum() == 4 and m[:, 2].all()


def test_decodes_identically_in_other_processes(models_env, rgb, tmp_path):
    data = api.encode_array(rgb, codec="generative", quality=60, model="gen-tiny", keep="auto")
    src = tmp_path / "a.gcz"
    src.write_bytes(data)
    code = ("import sys, numpy as np; from gancomp import api; d = open(sys.argv[1], 'rb').read(); "
            "np.save(sys.argv[2], np.stack([api.decode(d).pixels, api.decode(d, decoder='mse').pixels]))")
    ref = np.stack([api.decode(data).pixels, api.decode(data, decoder="mse").pixels])
    for i, env in enumerate([{"OMP_NUM_THREADS": "1"},
                             {"OMP_NUM_THREADS": "2", "ATEN_CPU_CAPABILITY": "default"}]):
        out = tmp_path / f"d{i}.npy"
        e = dict(os.environ, PYTHONPATH=str(ROOT), **models_env, **env)
        subprocess.run([sys.executable, "-c", code, str(src), str(out)], check=True, env=e,
                       timeout=300)
        assert np.array_equal(np.load(out), ref), env


def test_corrupt_stream_is_a_format_error(models_env, rgb):
    from gancomp import container as ct

    data = api.encode_array(rgb, codec="generative", quality=50, model="gen-tiny")
    h = api.read_header(data)
    bad = list(h.streams)
    bad[-1] = bytes(b ^ 0x5A for b in bad[-1])
    h.streams = bad
    with pytest.raises(FormatError):
        api.decode(ct.pack(h))


def test_cli_keep_and_decoder(models_env, tmp_path):
    img = str(DATA / "astronaut_128x96.png")
    gcz = tmp_path / "a.gcz"
    r = run_cli("encode", img, str(gcz), "-c", "generative", "-x", "model=gen-tiny",
                "--keep", "auto", env=models_env)
    assert r.returncode == 0, r.stderr
    for dec in ("gan", "mse"):
        r = run_cli("decode", str(gcz), str(tmp_path / f"{dec}.png"), "--decoder", dec,
                    env=models_env)
        assert r.returncode == 0, r.stderr
    r = run_cli("encode", img, str(tmp_path / "b.gcz"), "-c", "generative", "-x",
                "model=gen-tiny", "--keep-mask", str(tmp_path / "missing.png"), env=models_env)
    assert r.returncode == 2 and r.stderr.count(b"\n") == 1, r.stderr


def test_shipped_model_roundtrip(rgb):
    from gancomp.weights import default_for

    card = default_for("generative")
    if card is None:
        pytest.skip("no generative model installed")
    data = api.encode_array(rgb, codec="generative", quality=30)
    assert len(data) * 8 / rgb[..., 0].size < 1.0
    out = api.decode(data).pixels
    assert out.shape == rgb.shape
    assert np.mean((out.astype(float) - rgb) ** 2) < np.mean((rgb.astype(float) - rgb.mean()) ** 2)


@pytest.fixture(scope="module")
def frozen_a2(tmp_path_factory):
    """One generator step on hp-a2's frozen rate path with the half-resolution generator,
    exported with a decoder-side strength; None when hp-a2 is not installed."""
    from gancomp.train import generative
    from gancomp.weights import list_models

    if "hp-a2" not in {c.id for c in list_models()}:
        return None
    root = tmp_path_factory.mktemp("a2")
    generative.main(["--preset", "a2-cpu", "--data", str(DATA), "--out", str(root / "g"),
                     "--steps", "1", "--crop", "64", "--batch", "1", "--quiet",
                     "--config", '{"per_image": 1, "gan_start": 0.0, "gen_width": 4}'])
    generative.export(root / "g" / "checkpoint.safetensors", root / "models", "gen-a2-test",
                      strength=1.5)
    return root / "models"


def test_frozen_rate_path_is_the_source_models(frozen_a2, rgb, monkeypatch):
    """A generator trained on hp-a2's frozen transforms ships hp-a2's integer h_s, tables and
    scale offsets, so its files have hp-a2's latents: the same size as hp-a2's at the same
    lambda (quality 0 = hp-a2's quality 0; quality 100 = its 5th of 8 levels)."""
    from safetensors.numpy import load_file

    if frozen_a2 is None:
        pytest.skip("hp-a2 not installed")
    monkeypatch.setenv("GANCOMP_MODEL_PATH", str(frozen_a2))
    ours = load_file(str(frozen_a2 / "gen-a2-test.safetensors"))
    from gancomp.weights import load

    src, _ = load("hp-a2")
    assert np.array_equal(ours["scale_offsets"], src["scale_offsets"].reshape(8, -1)[:5])
    assert np.array_equal(ours["hs_int.1.weight"], src["hs_int.1.weight"])
    for q_gen, q_hp in ((0, 0), (100, 400 / 7)):
        a = api.encode_array(rgb, codec="generative", quality=q_gen, model="gen-a2-test")
        b = api.encode_array(rgb, codec="hyperprior", quality=q_hp, model="hp-a2")
        assert abs(len(a) - len(b)) <= 24, (q_gen, len(a), len(b))
        mse = api.decode(a, decoder="mse").pixels
        ref = api.decode(b).pixels
        assert np.abs(mse.astype(int) - ref).mean() < 1.0


def test_half_generator_and_strength(frozen_a2, rgb, monkeypatch, tmp_path):
    """Generator v2 decodes, applies the shipped strength (gan = mse + 1.5 * residual) and
    is identical in another process with another kernel set."""
    import torch

    from gancomp.codecs.generative import _runtime

    if frozen_a2 is None:
        pytest.skip("hp-a2 not installed")
    monkeypatch.setenv("GANCOMP_MODEL_PATH", str(frozen_a2))
    data = api.encode_array(rgb, codec="generative", quality=30, model="gen-a2-test")
    h = api.read_header(data)
    rt = _runtime("gen-a2-test", h.model_sha256_prefix, "cpu")
    assert rt.strength == 1.5 and rt.model.gen_kind == 2
    assert rt.model.gen.noise_shape(torch.zeros(1, 3, 64, 128)) == (1, 1, 32, 64)
    gan = api.decode(data).pixels
    src = tmp_path / "a.gcz"
    src.write_bytes(data)
    code = ("import sys, numpy as np; from gancomp import api; "
            "np.save(sys.argv[2], api.decode(open(sys.argv[1], 'rb').read()).pixels)")
    e = dict(os.environ, PYTHONPATH=str(ROOT), GANCOMP_MODEL_PATH=str(frozen_a2),
             OMP_NUM_THREADS="2", ATEN_CPU_CAPABILITY="default")
    subprocess.run([sys.executable, "-c", code, str(src), str(tmp_path / "o.npy")], check=True,
                   env=e, timeout=300)
    assert np.array_equal(np.load(tmp_path / "o.npy"), gan)


def test_texture_loss_prefers_texture_to_blur():
    """Local-std matching: a blurred copy scores worse than a shifted copy (same texture
    energy, wrong place), and an identical copy scores 0."""
    import torch
    import torch.nn.functional as F

    from gancomp.nn.generative import texture_loss

    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    blur = F.avg_pool2d(x, 5, 1, 2, count_include_pad=False)
    shifted = torch.roll(x, 7, dims=3)
    assert texture_loss(x, x).item() < 1e-6
    assert texture_loss(blur, x).item() > 3 * texture_loss(shifted, x).item()


def test_torch_ssimulacra2_matches_the_package(rgb):
    """The differentiable port scores what the ``ssimulacra2`` package scores (a blurred and
    a noisy copy of the test image) and has a gradient."""
    import torch
    from PIL import ImageFilter

    pytest.importorskip("ssimulacra2")
    from gancomp.benchmarks.generative import ssimulacra2
    from gancomp.nn import ssimulacra2_torch as S

    noisy = np.clip(rgb + np.random.default_rng(0).normal(0, 10, rgb.shape), 0, 255).astype(np.uint8)
    blurred = np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(1.5)))

    def t(a):
        return torch.from_numpy(a.transpose(2, 0, 1)[None].astype(np.float64) / 255)

    for d in (noisy, blurred):
        assert abs(S.score(t(rgb), t(d)).item() - ssimulacra2(rgb, d)) < 0.05
    x = t(blurred).requires_grad_(True)
    S.loss(t(rgb), x).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_version_1_files_keep_their_unsmoothed_residual(frozen_a2, rgb, monkeypatch):
    """Version 2 smooths the half-resolution generator's residual (param s, default 1);
    the same streams marked as a version-1 file decode without smoothing, as they did."""
    import torch

    from gancomp import container as ct
    from gancomp.codecs.generative import smooth_121

    if frozen_a2 is None:
        pytest.skip("hp-a2 not installed")
    monkeypatch.setenv("GANCOMP_MODEL_PATH", str(frozen_a2))
    data = api.encode_array(rgb, codec="generative", quality=30, model="gen-a2-test")
    h = api.read_header(data)
    assert h.codec_version == 2 and h.params.get("s", 1) == 1
    h.codec_version = 1
    h.params = {k: v for k, v in h.params.items() if k != "s"}
    old = ct.pack(h)
    assert np.array_equal(api.decode(old, decoder="mse").pixels,
                          api.decode(data, decoder="mse").pixels)
    assert not np.array_equal(api.decode(old).pixels, api.decode(data).pixels)
    r = torch.zeros(1, 1, 6, 6, dtype=torch.float64)
    r[..., ::2, ::2] = 1.0  # a 2-pixel-period grid is flattened to its mean inside
    assert torch.allclose(smooth_121(r)[..., 1:-1, 1:-1], torch.full((1, 1, 4, 4), 0.25,
                                                                    dtype=torch.float64))
