"""gan-inversion: tiny model training, .gcz round trips across processes, GANZ, --resize,
compressive sensing, corrupt files. A tiny model is trained here (no ../shared needed)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import DATA, run_cli

TINY = "ganinv-tiny"
TINY2 = "ganinv-tiny2"


def _patches() -> np.ndarray:
    """64x64 crops of the shipped test photos (a stand-in for faces)."""
    out = []
    for name in ("astronaut_128x96.png", "chelsea_80x64.png"):
        img = np.asarray(Image.open(DATA / name).convert("RGB"))
        h, w = img.shape[:2]
        for y in range(0, h - 63, 16):
            for x in range(0, w - 63, 16):
                out.append(img[y:y + 64, x:x + 64])
    return np.stack(out)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """Train the tiny config for a few steps and export it; point the registry at it."""
    from gancomp.train.ganinv import Trainer, export

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("models")
    data = _patches()
    tr = Trainer("tiny", seed=0)
    for _ in range(20):
        tr.train_step(tr.batch(data, 8))
    export(tr, data, folder, TINY, TINY, "test patches")
    tr2 = Trainer("tiny2", seed=0, target_bits=60)
    for _ in range(20):
        tr2.train_step(tr2.batch(data, 8))
    export(tr2, data, folder, TINY2, TINY2, "test patches")
    old = os.environ.get("GANCOMP_MODEL_PATH")
    os.environ["GANCOMP_MODEL_PATH"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("GANCOMP_MODEL_PATH", None)
    else:
        os.environ["GANCOMP_MODEL_PATH"] = old


def _env(folder, **extra) -> dict:
    return {"GANCOMP_MODEL_PATH": str(folder), **extra}


def test_tiny_model_trains():
    from gancomp.train.ganinv import Trainer

    torch.set_num_threads(1)
    tr = Trainer("tiny", seed=1)
    x = tr.batch(_patches(), 8)
    first = tr.train_step(x)["mse"]
    for _ in range(40):
        last = tr.train_step(x)["mse"]
    assert last < first


def test_round_trip_other_process(tiny_model, tmp_path):
    from gancomp import api, inversion
    from gancomp.codecs.ganinv import decode_symbols

    face = _patches()[0]
    src = tmp_path / "face.png"
    Image.fromarray(face).save(src)
    gcz = tmp_path / "face.gcz"
    r = run_cli("encode", str(src), str(gcz), "-c", "gan-inversion", "-x", f"model={TINY}",
                "-x", "steps=10", env=_env(tiny_model))
    assert r.returncode == 0, r.stderr
    data = gcz.read_bytes()
    assert len(data) * 8 / 4096 < 2.0
    outs = []
    for i, env in enumerate([{"OMP_NUM_THREADS": "1"},
                             {"OMP_NUM_THREADS": "3", "ATEN_CPU_CAPABILITY": "default"}]):
        out = tmp_path / f"dec{i}.png"
        r = run_cli("decode", str(gcz), str(out), env=_env(tiny_model, **env))
        assert r.returncode == 0, r.stderr
        outs.append(np.asarray(Image.open(out)))
    here = api.decode_array(data)
    h = api.read_header(data)
    model = inversion.load_model(TINY)
    assert h.version == (1, 1) and h.params == {}  # default params are left out of 1.1 files
    sym = decode_symbols(h.streams[0], model.zdim, model.tables[5])
    assert np.array_equal(here, inversion.decode_latents(model, sym[None], 5, None, 64)[0])
    for o in outs:  # version 3 files decode in float64: identical in every process
        assert np.array_equal(o, here)


def test_symbols_entropy_round_trip(tiny_model):
    from gancomp import inversion
    from gancomp.codecs.ganinv import decode_symbols, encode_symbols

    model = inversion.load_model(TINY)
    sym = np.array([0, 1, -1, 5, -16, 16, 17, -40, 300, 2], dtype=np.int64)  # escapes too
    for b in (3, 5, 8):
        assert np.array_equal(decode_symbols(encode_symbols(sym, model.tables[b]), sym.size,
                                             model.tables[b]), sym)


def test_inversion_beats_its_start(tiny_model):
    from gancomp import inversion

    model = inversion.load_model(TINY)
    face = _patches()[:1]
    start = inversion.invert(model, face, steps=0, restarts=1, loss="mse")
    opt = inversion.invert(model, face, steps=40, restarts=1, loss="mse")
    assert opt.loss[0] < start.loss[0]


def test_ganz_ratio_round_trip(tiny_model):
    from gancomp import api, inversion

    face = _patches()[1]
    data = api.encode_array(face, "gan-inversion", ratio=200, model=TINY, steps=5, seed=7)
    h = api.read_header(data)
    assert int(h.params["d"]) == round(64 * 64 * 3 / 200) and int(h.params["s"]) == 7
    out = api.decode_array(data)
    assert out.shape == (64, 64, 3)
    data10 = api.encode_array(face, "gan-inversion", ratio=10, model=TINY, steps=5)
    assert len(data10) > len(data)
    with pytest.raises(Exception, match="ratio"):
        api.encode_array(face, "gan-inversion", ratio=0.5, model=TINY)
    assert inversion.ganz_layer(inversion.load_model(TINY), 7, 61).shape[1] == 61


def test_refuses_other_sizes_without_resize(tiny_model, tmp_path):
    out = tmp_path / "a.gcz"
    r = run_cli("encode", str(DATA / "astronaut_128x96.png"), str(out), "-c", "gan-inversion",
                "-x", f"model={TINY}", env=_env(tiny_model))
    assert r.returncode == 2
    err = r.stderr.decode().strip()
    assert "64x64" in err and "--resize" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_resize_round_trip_out_of_domain(tiny_model, tmp_path):
    gcz, png = tmp_path / "a.gcz", tmp_path / "a.png"
    r = run_cli("encode", str(DATA / "astronaut_128x96.png"), str(gcz), "-c", "gan-inversion",
                "--resize", "-x", f"model={TINY}", "-x", "steps=5", env=_env(tiny_model))
    assert r.returncode == 0, r.stderr
    r = run_cli("decode", str(gcz), str(png), env=_env(tiny_model))
    assert r.returncode == 0, r.stderr
    assert np.asarray(Image.open(png)).shape == (96, 128, 3)
    # gray input goes through RGB and comes back gray
    from gancomp import api

    gray = np.asarray(Image.open(DATA / "camera_gray_64.png").convert("L"))
    assert api.decode_array(api.encode_array(gray, "gan-inversion", model=TINY, steps=3)).shape \
        == (64, 64, 1)


def test_corrupt_file_is_refused(tiny_model, tmp_path):
    from gancomp import api

    data = bytearray(api.encode_array(_patches()[2], "gan-inversion", model=TINY, steps=3))
    data[len(data) // 2] ^= 0x10
    bad = tmp_path / "bad.gcz"
    bad.write_bytes(bytes(data))
    r = run_cli("decode", str(bad), str(tmp_path / "bad.png"), env=_env(tiny_model))
    assert r.returncode == 3
    assert len(r.stderr.decode().strip().splitlines()) == 1
    assert not (tmp_path / "bad.png").exists()


def test_compressive_sensing_sane(tiny_model):
    from gancomp import cs, inversion

    # wavelet baseline: a smooth image from half as many measurements as pixels
    yy, xx = np.mgrid[0:16, 0:16] / 15.0
    img = (np.stack([yy, xx, (yy + xx) / 2], -1) * 200 + 20).astype(np.uint8)
    a = cs.gaussian_matrix(384, 768, seed=1)
    y = cs.measure(img, a)
    rec = cs.recover_wavelet(y, a, img.shape, level=2, lam=1e-3, iters=300)
    err = np.abs(rec.astype(int) - img.astype(int)).mean()
    min_norm = np.clip(np.linalg.pinv(a) @ y * 255, 0, 255)   # what ignoring sparsity gives
    assert rec.shape == img.shape and err < np.abs(min_norm - img.ravel()).mean() / 4
    # generator prior: measurements of one of its own images are fitted better than a gray guess
    model = inversion.load_model(TINY)
    target = inversion.decode_latents(model, np.zeros((1, model.zdim), np.int64), 5)[0]
    a = cs.gaussian_matrix(300, 64 * 64 * 3, seed=2)
    y = cs.measure(target, a)
    got = cs.recover_generator(y, a, model, steps=30, restarts=2)
    assert got.shape == (64, 64, 3) and got.dtype == np.uint8
    gray = np.full_like(target, 128)
    assert np.linalg.norm(cs.measure(got, a) - y) < np.linalg.norm(cs.measure(gray, a) - y)


def test_shipped_model_round_trip():
    """The committed face model loads (SHA-256 verified) and codes an image both ways."""
    from gancomp import api, inversion, weights

    card = weights.find("ganinv-faces64")
    assert card.card["config"]["name"] == "small" and card.size <= weights.MAX_WEIGHTS_BYTES
    model = inversion.load_model("ganinv-faces64", card.sha256[:16])
    face = _patches()[3]
    data = api.encode_array(face, "gan-inversion", model="ganinv-faces64", steps=4)
    out = api.decode_array(data)
    assert out.shape == (64, 64, 3) and len(data) * 8 / 4096 < 0.5
    assert model.zdim == 128


def test_v2_tiny_trains_toward_its_rate_target():
    from gancomp.train.ganinv import Trainer

    torch.set_num_threads(1)
    tr = Trainer("tiny2", seed=1, target_bits=20)
    x = tr.batch(_patches(), 8)
    rows = [tr.train_step(x) for _ in range(40)]
    assert rows[-1]["lam"] != rows[0]["lam"]  # the rate weight is steered
    assert np.mean([r["mse"] for r in rows[-5:]]) < np.mean([r["mse"] for r in rows[:5]])


def test_v2_round_trip_other_process(tiny_model, tmp_path):
    from gancomp import api, inversion
    from gancomp.codecs.ganinv import decode_v2_symbols

    face = _patches()[4]
    src, gcz = tmp_path / "face.png", tmp_path / "face.gcz"
    Image.fromarray(face).save(src)
    r = run_cli("encode", str(src), str(gcz), "-c", "gan-inversion", "-x", f"model={TINY2}",
                env=_env(tiny_model))
    assert r.returncode == 0, r.stderr
    data = gcz.read_bytes()
    h = api.read_header(data)
    # version 3: float64 synthesis ("p" = 64 is that version's default, so not written)
    assert h.codec_version == 3 and h.params == {} and h.model_id == TINY2
    model = inversion.load_model(TINY2)
    assert model.v2
    sym = decode_v2_symbols(h.streams[0], model, 2)
    here = api.decode_array(data)
    assert np.array_equal(here, inversion.decode_latents_v2(model, sym[None], 2, 64)[0])
    for i, env in enumerate([{"OMP_NUM_THREADS": "1"},
                             {"OMP_NUM_THREADS": "3", "ATEN_CPU_CAPABILITY": "default"}]):
        out = tmp_path / f"dec{i}.png"
        r = run_cli("decode", str(gcz), str(out), env=_env(tiny_model, **env))
        assert r.returncode == 0, r.stderr
        assert np.array_equal(np.asarray(Image.open(out)), here)


def test_v2_levels_rate_and_options(tiny_model):
    from gancomp import api, inversion
    from gancomp.errors import InputError

    face = _patches()[5]
    sizes = [len(api.encode_array(face, "gan-inversion", model=TINY2, level=lv, steps=5))
             for lv in (0, 4)]
    assert sizes[0] < sizes[1]
    data = api.encode_array(face, "gan-inversion", model=TINY2, quality=100, steps=3)
    assert api.read_header(data).params == {"l": 4}
    with pytest.raises(InputError, match="bits and restarts"):
        api.encode_array(face, "gan-inversion", model=TINY2, bits=4)
    with pytest.raises(InputError, match="level"):
        api.encode_array(face, "gan-inversion", model=TINY2, level=9)
    # the optimizer improves on the encoder's start, and a heavier rate weight spends fewer bits
    model = inversion.load_model(TINY2)
    faces = _patches()[:4]
    start = inversion.invert_v2(model, faces, steps=0)
    opt = inversion.invert_v2(model, faces, steps=30, patience=30)
    assert (opt.loss <= start.loss).all() and opt.loss.sum() < start.loss.sum()
    cheap = inversion.invert_v2(model, faces, steps=30, patience=30, rate_weight=50.0)
    bits = [inversion.rate_bits(model, torch.from_numpy(r.symbols).float(), 1.0).sum()
            for r in (opt, cheap)]
    assert bits[1] < bits[0]


def test_v2_ganz_still_works(tiny_model):
    from gancomp import api

    face = _patches()[6]
    data = api.encode_array(face, "gan-inversion", model=TINY2, ratio=100, steps=3)
    assert api.read_header(data).params["d"] == round(64 * 64 * 3 / 100)
    assert api.decode_array(data).shape == (64, 64, 3)


def test_every_single_byte_change_of_a_real_face_file_is_refused():
    """Exhaustive over a default face file written by the shipped model (.gcz 1.1, CRC-16):
    every byte replaced by each of the other 255 values is refused as corrupt."""
    from gancomp import api, container
    from gancomp.errors import FormatError

    data = api.encode_array(_patches()[3], "gan-inversion", model="ganinv-faces64", steps=2)
    assert len(data) <= container.SMALL_FILE and data[5] == 1
    missed = 0
    for i in range(len(data)):
        for v in range(256):
            if v != data[i]:
                bad = bytearray(data)
                bad[i] = v
                try:
                    api.read_header(bytes(bad))
                    missed += 1
                except FormatError:
                    pass
    assert missed == 0
