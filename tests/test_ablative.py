"""ablative codec (id 10, seed 004): block selection, exact block coding, DCT, round trips
with a tiny inpainting model trained in seconds, and the shipped model if present."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import DATA, ROOT
from gancomp import api
from gancomp.blockdct import (DCT, dequantize_blocks, log_response, quantize_blocks,
                              select_blocks)


@pytest.fixture(scope="module")
def abl_models(tmp_path_factory):
    from gancomp.train import ablative

    root = tmp_path_factory.mktemp("abl")
    ablative.main(["--preset", "tiny", "--data", str(DATA), "--out", str(root / "a"),
                   "--export", str(root / "models"), "--model-id", "abl-tiny", "--quiet"])
    return root / "models"


@pytest.fixture()
def env(abl_models, monkeypatch):
    monkeypatch.setenv("GANCOMP_MODEL_PATH", str(abl_models))
    return {"GANCOMP_MODEL_PATH": str(abl_models)}


def test_dct_is_orthonormal_and_q100_is_near_lossless(rgb):
    assert np.allclose(DCT @ DCT.T, np.eye(8))
    mask = np.ones((rgb.shape[0] // 8, rgb.shape[1] // 8), bool)
    rec = dequantize_blocks(quantize_blocks(rgb, mask, 100), mask, 100)
    assert np.abs(rec - rgb).max() < 3


def test_selection_keeps_edges_and_the_asked_share():
    img = np.full((64, 64, 3), 100, np.uint8)
    img[:, 36:] = 200                       # an edge inside block column 4
    assert log_response(img)[:, 35:37].max() > log_response(img)[:, :20].max()
    m = select_blocks(img, 0.25, random_share=0.0)
    assert m.sum() == 16 and m[:, 4].all()
    m2 = select_blocks(img, 0.25, random_share=0.5, rng=np.random.default_rng(1))
    assert m2.sum() == 16 and m2[:, 4].sum() >= 8


@pytest.mark.parametrize("seed", range(3))
def test_block_coding_is_exact(seed):
    from gancomp.codecs.ablative import code_blocks, decode_blocks

    rng = np.random.default_rng(seed)
    coefs = np.rint(rng.laplace(0, 3, (37, 3, 64)) * (rng.random((37, 3, 64)) < 0.3)).astype(np.int64)
    coefs[:, :, 0] = rng.integers(-120, 120, (37, 3))
    coefs[5, 1, 7] = 900                     # beyond the table: escape
    assert np.array_equal(decode_blocks(code_blocks(coefs), 37), coefs)


def test_roundtrip_rate_and_sizes(env, rgb):
    sizes = []
    for q in (5, 30, 100):
        data = api.encode_array(rgb, codec="ablative", quality=q, model="abl-tiny")
        sizes.append(len(data))
        out = api.decode(data).pixels
        assert out.shape == rgb.shape
    assert sizes == sorted(sizes)
    full = api.decode(api.encode_array(rgb, codec="ablative", quality=100, block_quality=95,
                                       model="abl-tiny")).pixels
    assert np.abs(full.astype(int) - rgb).mean() < 3   # everything kept: only DCT loss
    for shape in [(1, 1, 3), (13, 21, 3), (9, 17, 1)]:
        img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        assert api.decode(api.encode_array(img, codec="ablative", model="abl-tiny")).pixels.shape == shape


def test_decodes_identically_in_other_processes(env, rgb, tmp_path):
    data = api.encode_array(rgb, codec="ablative", quality=25, model="abl-tiny")
    src = tmp_path / "a.gcz"
    src.write_bytes(data)
    ref = api.decode(data).pixels
    code = ("import sys, numpy as np; from gancomp import api; "
            "np.save(sys.argv[2], api.decode(open(sys.argv[1], 'rb').read()).pixels)")
    out = tmp_path / "d.npy"
    e = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="2", ATEN_CPU_CAPABILITY="default", **env)
    subprocess.run([sys.executable, "-c", code, str(src), str(out)], check=True, env=e, timeout=300)
    assert np.array_equal(np.load(out), ref)


def test_shipped_model_beats_its_input(rgb):
    from gancomp.weights import default_for

    if default_for("ablative") is None:
        pytest.skip("no ablative model installed")
    data = api.encode_array(rgb, codec="ablative", quality=20)
    out = api.decode(data).pixels
    assert np.mean((out.astype(float) - rgb) ** 2) < np.mean((rgb.astype(float) - rgb.mean()) ** 2)
