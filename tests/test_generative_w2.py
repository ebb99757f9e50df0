"""generative version 3 (wavelet2 bitstream + generator v3): a tiny generator trained in
seconds; the MSE decoder is the exact wavelet2 decode, the GAN decoder adds the scaled
residual, the encoder's strength choice, cross-process bit-exactness, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import DATA, ROOT
from gancomp import api
from gancomp.errors import FormatError, InputError


@pytest.fixture(scope="module")
def w2_models(tmp_path_factory):
    """gen-w2-tiny trained for 3 steps on tests/data, exported to a model folder."""
    from gancomp.train import w2gen

    root = tmp_path_factory.mktemp("w2g")
    w2gen.main(["--preset", "tiny", "--data", str(DATA), "--out", str(root / "g")])
    w2gen.main(["--preset", "tiny", "--data", str(DATA), "--out", str(root / "g"),
                "--export", str(root / "models"), "--model-id", "gen-w2-tiny"])
    return root


@pytest.fixture()
def w2_env(w2_models, monkeypatch):
    monkeypatch.setenv("GANCOMP_MODEL_PATH", str(w2_models / "models"))
    return {"GANCOMP_MODEL_PATH": str(w2_models / "models")}


def test_training_resumes_and_exports_a_card(w2_models):
    from gancomp.train import w2gen

    out = w2_models / "g"
    assert len((out / "loss.csv").read_text().splitlines()) == 4  # header + 3 steps
    w2gen.main(["--preset", "tiny", "--data", str(DATA), "--out", str(out), "--steps", "5"])
    assert (out / "loss.csv").read_text().splitlines()[-1].startswith("5,")
    card = json.loads((w2_models / "models" / "gen-w2-tiny.json").read_text())
    assert card["codec"] == "generative" and card["steps"] == 3
    assert "cpu_minutes" in card["training"] and "never Kodak" in card["data"]


def _base_and_gan(data: bytes):
    from gancomp.codecs import generative_w2 as g2
    from gancomp.codecs.generative import _runtime
    from gancomp.codecs.wavelet2 import Wavelet2Codec

    h = api.read_header(data)
    p = {**{"s": 1}, **h.params}
    wp = {k[1:]: v for k, v in p.items() if k.startswith("w")}
    base = Wavelet2Codec().decode(wp, h.streams, h.width, h.height, 3)
    rt = _runtime(h.model_id, h.model_sha256_prefix, "cpu")
    return base, g2.gan_pixels(base, g2._residual(rt, base, wp["s"], True), p["g"]), p


def test_mse_decoder_is_the_wavelet2_decode_and_gan_adds_the_residual(w2_env, rgb):
    data = api.encode_array(rgb, codec="generative", quality=60, model="gen-w2-tiny")
    assert data[7] == 3  # codec version 3
    base, gan, p = _base_and_gan(data)
    assert p["b"] == 1 and p["ws"] == 245 - 48 and p["wV"] == 2  # inner wavelet2 format 2
    mse = api.decode(data, decoder="mse").pixels
    assert np.array_equal(mse, base)
    out = api.decode(data).pixels
    assert np.array_equal(out, gan)
    if p["g"]:
        assert not np.array_equal(out, mse)


def test_trial_encoder_writes_the_files_encode_writes(w2_env, rgb):
    """Rate control's trial encoder (transform once, each step once) = a fresh encode, with
    and without the strength search; the cached residual does not change the decode."""
    from gancomp.codecs import generative_w2 as g2
    from gancomp.codecs import get_codec

    c = get_codec("generative")
    for tune in (0, 1):
        trial = c.trial_encoder(rgb, model="gen-w2-tiny", tune=tune)
        for q in (70, 10, 70, 33.3):
            got = api._encode_once(c, rgb, q, None, None, 8, {"model": "gen-w2-tiny",
                                                              "tune": tune}, trial)[0]
            assert got == api.encode_array(rgb, codec="generative", quality=q,
                                           model="gen-w2-tiny", tune=tune)
    data = api.encode_array(rgb, codec="generative", target_bpp=2.0, model="gen-w2-tiny")
    cached = api.decode(data).pixels
    g2._LAST.clear()
    assert np.array_equal(api.decode(data).pixels, cached)


def test_rate_rises_with_quality(w2_env, rgb):
    sizes = [len(api.encode_array(rgb, codec="generative", quality=q, model="gen-w2-tiny",
                                  tune=0)) for q in (0, 50, 100)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_tuned_strength_scores_at_least_the_default(w2_env, rgb):
    import torch

    from gancomp.codecs import generative_w2 as g2
    from gancomp.nn.ssimulacra2_torch import score

    pytest.importorskip("ssimulacra2")
    tuned = api.encode_array(rgb, codec="generative", quality=70, model="gen-w2-tiny")
    plain = api.encode_array(rgb, codec="generative", quality=70, model="gen-w2-tiny", tune=0)
    assert len(tuned) == len(plain)  # the strength costs the same byte either way
    assert api.read_header(plain).params["g"] == g2.DEFAULT_G
    g = api.read_header(tuned).params["g"]
    assert g in g2.TUNE_GRID

    def s(data):
        px = api.decode(data).pixels
        t = [torch.from_numpy(a.transpose(2, 0, 1).astype(np.float64) / 255)[None]
             for a in (rgb, px)]
        return float(score(*t)[0])

    assert s(tuned) >= s(plain) - 1e-9


def test_decodes_identically_in_other_processes(w2_env, rgb, tmp_path):
    data = api.encode_array(rgb, codec="generative", quality=40, model="gen-w2-tiny", tune=0)
    src = tmp_path / "a.gcz"
    src.write_bytes(data)
    code = ("import sys, numpy as np; from gancomp import api; d = open(sys.argv[1], 'rb').read(); "
            "np.save(sys.argv[2], np.stack([api.decode(d).pixels, api.decode(d, decoder='mse').pixels]))")
    ref = np.stack([api.decode(data).pixels, api.decode(data, decoder="mse").pixels])
    for i, env in enumerate([{"OMP_NUM_THREADS": "1"},
                             {"OMP_NUM_THREADS": "2", "ATEN_CPU_CAPABILITY": "default"}]):
        out = tmp_path / f"d{i}.npy"
        e = dict(os.environ, PYTHONPATH=str(ROOT), **w2_env, **env)
        subprocess.run([sys.executable, "-c", code, str(src), str(out)], check=True, env=e,
                       timeout=300)
        assert np.array_equal(np.load(out), ref), env


def test_keep_masks_are_refused(w2_env, rgb):
    with pytest.raises(InputError, match="keep masks"):
        api.encode_array(rgb, codec="generative", quality=40, model="gen-w2-tiny", keep="auto")


def test_bad_strength_is_a_format_error(w2_env, rgb):
    from gancomp import container as ct

    data = api.encode_array(rgb, codec="generative", quality=40, model="gen-w2-tiny", tune=0)
    c = ct.unpack(data)
    c.params["g"] = 999
    with pytest.raises(FormatError):
        api.decode(ct.pack(c))


def test_encoder_still_writes_the_frozen_version3_file(rgb):
    """The shipped encoder (gen-w2-cpu, inner wavelet2 format 2) re-writes the frozen
    conformance file byte for byte: catches a silent change of the inner bitstream (wavelet2's
    default format moved to 3, which costs more bytes at these rates)."""
    frozen = ROOT / "formats" / "conformance" / "generative" / "gen_v3_astronaut_q60.gcz"
    assert api.encode_array(rgb, codec="generative", quality=60, model="gen-w2-cpu") == \
        frozen.read_bytes()
