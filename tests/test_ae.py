"""The ae codec family (seed 001): tiny training + export, round trips of every variant,
progressive passes and truncation, seamless overlapping windows, decoding in another process
with other CPU settings, corrupt input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from gancomp import api, container
from gancomp.errors import FormatError, InputError

from conftest import DATA, run_cli

pytest.importorskip("torch")

MODEL = "ae-tinytest"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from gancomp.train.ae import CONFIGS, train

    run = tmp_path_factory.mktemp("aerun")
    cfg = dict(CONFIGS["tiny"], name="tiny")
    train(cfg, str(DATA), run, minutes=0, steps=10, model_id=MODEL, log=lambda *a: None)
    return run


@pytest.fixture()
def with_tiny(tiny_model, monkeypatch) -> Path:
    monkeypatch.setenv("GANCOMP_MODEL_PATH", str(tiny_model))
    return tiny_model


def _codec():
    from gancomp.codecs.ae import AECodec

    return AECodec()


def test_tiny_training_exports_card_and_resumes(tiny_model):
    card = json.loads((tiny_model / f"{MODEL}.json").read_text())
    assert card["codec"] == "ae" and len(card["sha256"]) == 64
    assert card["steps"] == {"base": 5, "up": 2, "res": 2, "gan": 1, "upgan": 1}
    assert "least-squares" in card["adversarial_loss"]
    assert (tiny_model / card["file"]).stat().st_size < 16 * 1024 * 1024
    rows = list(csv.DictReader(open(tiny_model / "loss.csv")))
    assert {r["phase"] for r in rows} == {"base", "up", "res", "gan", "upgan"}
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    from safetensors.numpy import load_file

    arrays = load_file(str(tiny_model / card["file"]))
    for prefix in ("base.", "res.", "gan.g_s.", "up.", "upg."):
        assert any(k.startswith(prefix) for k in arrays), prefix
    # the adversarial upsampler starts from the L2 one and moved
    assert not np.array_equal(arrays["upg.body.0.weight"], arrays["up.body.0.weight"])
    assert np.abs(arrays["upg.body.0.weight"] - arrays["up.body.0.weight"]).max() < 0.01


@pytest.mark.parametrize("opts", [{}, {"finetune": True}, {"decoder": "gan"}, {"passes": 3},
                                  {"down": 2, "passes": 2, "finetune": True},
                                  {"down": 2, "upsampler": "gan", "passes": 2}])
def test_round_trip_matches_encoder_reconstruction(with_tiny, rgb, opts):
    enc, recs = _codec().encode_passes(rgb, 70, model=MODEL, **opts)
    h, w, _ = rgb.shape
    out = _codec().decode(enc.params, enc.streams, w, h, 3, enc.model_id, enc.model_sha256)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.array_equal(out, recs[-1])
    assert len(recs) == opts.get("passes", 1)


def test_passes_decode_prefix_and_truncation(with_tiny, rgb_small):
    from gancomp.codecs.ae import truncate_passes

    data = api.encode_array(rgb_small, codec="ae", quality=40, model=MODEL, passes=3)
    enc, recs = _codec().encode_passes(rgb_small, 40, model=MODEL, passes=3)
    assert np.array_equal(api.decode_array(data), recs[2])
    assert np.array_equal(api.decode_array(data, passes=1), recs[0])
    assert np.array_equal(api.decode_array(data, passes=2), recs[1])
    short = truncate_passes(data, 1)
    assert len(short) < len(data)
    assert np.array_equal(api.decode_array(short, passes=1), recs[0])
    with pytest.raises(FormatError, match="passes=1"):
        api.decode_array(short)
    with pytest.raises(InputError):
        api.decode_array(data, passes=4)
    with pytest.raises(FormatError, match="checksum"):
        api.decode_array(data[:len(short) + 10])


def test_shipped_model_progressive_passes_improve(rgb):
    """With the shipped weights (deterministic, no training noise): the down=2 first pass is
    a fraction of the bytes, and every later pass raises PSNR."""
    from gancomp.codecs.ae import truncate_passes
    from gancomp.metrics import psnr

    data = api.encode_array(rgb, codec="ae", quality=0, passes=3, down=2)
    full1 = api.encode_array(rgb, codec="ae", quality=0)
    sizes = [len(truncate_passes(data, k)) for k in (1, 2, 3)]
    quality = [psnr(rgb, api.decode_array(data, passes=k)) for k in (1, 2, 3)]
    assert sizes[0] < sizes[1] < sizes[2] and sizes[0] < 0.6 * len(full1)
    assert quality[0] < quality[1] < quality[2]
    assert quality[0] > 18


def test_adversarial_upsampler_same_bits_other_pixels(with_tiny, rgb):
    """upsampler=gan: the same latents (streams) as the L2 upsampler, a different first pass,
    written as version 3 with u=1; files without it stay version 2."""
    l2 = api.encode_array(rgb, codec="ae", quality=40, model=MODEL, down=2)
    adv = api.encode_array(rgb, codec="ae", quality=40, model=MODEL, down=2, upsampler="gan")
    a, b = container.unpack(l2), container.unpack(adv)
    assert a.streams == b.streams
    assert (a.codec_version, b.codec_version) == (2, 3)
    assert "u" not in a.params and b.params["u"] == 1
    ra, rb = api.decode_array(l2), api.decode_array(adv)
    assert ra.shape == rb.shape == rgb.shape and not np.array_equal(ra, rb)
    enc, recs = _codec().encode_passes(rgb, 40, model=MODEL, down=2, upsampler="gan")
    assert np.array_equal(rb, recs[-1])
    with pytest.raises(InputError, match="down=2"):
        api.encode_array(rgb, codec="ae", model=MODEL, upsampler="gan")
    with pytest.raises(InputError, match="adversarial upsampler"):   # ae-v3 has none
        api.encode_array(rgb, codec="ae", model="ae-v3", down=2, upsampler="gan")
    b.params["d"] = 1                                  # u=1 without a half-size pass
    with pytest.raises(FormatError):
        api.decode_array(container.pack(b))


def test_overlapping_windows_are_seamless(with_tiny, rgb, monkeypatch):
    """Coding in small windows gives the same latents and pixels as one window: blocks share
    context, so no window or block grid can appear."""
    import gancomp.codecs.ae as ae

    enc1, rec1 = _codec().encode_passes(rgb, 60, model=MODEL)
    monkeypatch.setattr(ae, "TILE", 32)
    enc2, rec2 = _codec().encode_passes(rgb, 60, model=MODEL)
    assert enc1.streams == enc2.streams
    assert np.abs(rec1[0].astype(int) - rec2[0]).max() <= 1


def test_rate_grows_with_quality(with_tiny, rgb):
    sizes = [sum(map(len, _codec().encode(rgb, q, model=MODEL).streams)) for q in (0, 100)]
    assert sizes[1] > sizes[0]


def test_bad_options_and_corrupt_streams(with_tiny, rgb_small):
    with pytest.raises(InputError):
        api.encode_array(rgb_small, codec="ae", model=MODEL, passes=0)
    with pytest.raises(InputError):
        api.encode_array(rgb_small, codec="ae", model=MODEL, decoder="wgan")
    with pytest.raises(InputError):
        api.encode_array(rgb_small, codec="ae", model=MODEL, down=3)
    with pytest.raises(InputError, match="upsampling"):       # ae-v1 has no generator
        api.encode_array(rgb_small, codec="ae", model="ae-v1", down=2)
    data = api.encode_array(rgb_small, codec="ae", quality=50, model=MODEL)
    c = container.unpack(data)
    c.streams[1] = bytes(b ^ 0x5A for b in c.streams[1])
    with pytest.raises(FormatError):
        api.decode_array(container.pack(c))
    c = container.unpack(data)
    c.streams = c.streams[:1]
    with pytest.raises(FormatError):
        api.decode_array(container.pack(c))


def test_cli_and_other_process_decode_identically(with_tiny, rgb, tmp_path):
    from PIL import Image

    src = tmp_path / "a.png"
    Image.fromarray(rgb).save(src)
    env = {"GANCOMP_MODEL_PATH": str(with_tiny)}
    r = run_cli("encode", str(src), str(tmp_path / "a.gcz"), "-c", "ae", "-q", "50",
                "--finetune", "-x", "passes=2", "-x", f"model={MODEL}", env=env)
    assert r.returncode == 0, r.stderr
    data = (tmp_path / "a.gcz").read_bytes()
    ref = api.decode_array(data)
    ref1 = api.decode_array(data, passes=1)
    (tmp_path / "g.gcz").write_bytes(api.encode_array(rgb, codec="ae", quality=30, model=MODEL,
                                                      down=2, upsampler="gan"))
    refg = api.decode_array((tmp_path / "g.gcz").read_bytes())
    for k, want, name in ((None, ref, "a"), (1, ref1, "a"), (None, refg, "g")):
        out = tmp_path / f"o{k}{name}.png"
        args = ["decode", str(tmp_path / f"{name}.gcz"), str(out)] + (["--passes", str(k)] if k else [])
        r = run_cli(*args, env=dict(env, ATEN_CPU_CAPABILITY="default", OMP_NUM_THREADS="2"))
        assert r.returncode == 0, r.stderr
        assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), want)
    r = run_cli("decode", str(tmp_path / "a.gcz"), str(tmp_path / "x.png"), "--passes", "5", env=env)
    err = r.stderr.decode()
    assert r.returncode != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_train_ae_and_hyperprior_config_still_required(tmp_path):
    r = run_cli("train", "ae", "--config", "tiny", "--data", str(DATA), "--out", str(tmp_path),
                "--steps", "4", "--model-id", "ae-clitest")
    assert r.returncode == 0, r.stderr
    card = json.loads((tmp_path / "ae-clitest.json").read_text())
    assert card["codec"] == "ae" and set(card["steps"]) == {"base", "up", "res", "gan", "upgan"}
    assert all(n >= 1 for n in card["steps"].values())
    r = run_cli("train")
    err = r.stderr.decode()
    assert r.returncode == 2 and "--config" in err and "Traceback" not in err


def test_benchmark_upsampler_stage_scores_same_files(with_tiny, rgb):
    """The benchmark's upg stage: L2 and adversarial upsampler on the same latents, scored."""
    from gancomp.benchmarks.ae import run_upg, tables

    l2, gan = run_upg(rgb, 30.0, MODEL, check=True)
    extra = (gan["bpp"] - l2["bpp"]) * rgb.shape[0] * rgb.shape[1] / 8
    assert 0 <= extra <= 8 and l2["psnr"] != gan["psnr"]       # bytes of the u param only
    md = tables({"a.png": {"ae-d2-l2": [l2], "ae-d2-gan": [gan]}}, "test")
    assert "Adversarial upsampler" in md and "| 30 |" in md
