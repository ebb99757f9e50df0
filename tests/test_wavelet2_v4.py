"""wavelet2 format v4: v3 plus the trained integer mixer (gancomp.w2mix). The compiled and
numpy paths give the same files and pixels, the mixer never changes the chosen values (same
pixels as v3, fewer bytes), its table is checked, and its training runs on a tiny config."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gancomp import accel, api, subband3_fast, w2mix
from gancomp.codecs import wavelet2 as w2
from gancomp.errors import FormatError
from gancomp.metrics import psnr
from gancomp.train import w2mix as train_mix

needs_c = pytest.mark.skipif(subband3_fast._w2c is None,
                             reason="compiled extension not built (no C compiler)")


def _v4(monkeypatch):
    monkeypatch.setattr(w2, "VERSION", 4)


def _cases(rgb, gray, rgb_small):
    rgba = np.dstack([rgb, (np.arange(rgb.shape[1])[None, :] * 3 % 256 +
                            np.zeros(rgb.shape[:2], int)).astype(np.uint8)])
    return [(rgb, 5), (rgb, 40), (rgb, 90), (rgb[:37, :53], 60), (rgb_small[1:, :79], 20),
            (gray, 45), (gray[:61, :1], 70), (rgba[:79, :61], 30)]


@needs_c
def test_v4_c_and_numpy_give_the_same_files_and_pixels(monkeypatch, rgb, gray, rgb_small):
    _v4(monkeypatch)
    for img, q in _cases(rgb, gray, rgb_small):
        out = []
        for on in (True, False):
            monkeypatch.setattr(accel, "ENABLED", on)
            data = api.encode_array(np.ascontiguousarray(img), "wavelet2", q)
            out.append((data, api.decode_array(data)))
        (d1, p1), (d2, p2) = out
        assert api.read_header(d1).params["V"] == 4
        assert d1 == d2, (img.shape, q)
        assert np.array_equal(p1, p2), (img.shape, q)


@needs_c
def test_mixed_rows_c_equal_numpy_on_random_counts():
    """The C rows and w2mix's numpy rows from the same integer counts, with a random mixer and
    counts far over the log table (halving branch) and zero counts."""
    rng = np.random.default_rng(3)
    co = w2.make_coders(3)
    for m in (co.sig, co.gt1, co.sign):
        m.counts[:] = rng.integers(0, 40000, m.counts.shape)
        m.counts[rng.random(m.contexts) < 0.1, 0] = 0
        m.totals[:] = m.counts.sum(1)
    co.rest.counts[:] = rng.integers(0, 9000, co.rest.counts.shape)
    co.rest.totals[:] = co.rest.counts.sum(1)
    mx = w2mix.Mixer({"a": rng.integers(0, 200, (w2mix.N_ACLS, 7)),
                      "bias": rng.integers(-3000, 3000, (w2mix.N_BIAS, 7)),
                      "lg": w2mix.make_lg(), "exp": w2mix.make_exp()})
    n = 5000
    ctx = [rng.integers(0, m.contexts, n) for m in (co.sig, co.gt1, co.rest, co.sign)]
    one = [c.copy() for c in ctx]        # one scale class per call (the C path's tables) ...
    one[0] = 5 * 48 + one[0] % 48
    one[0][::97] = rng.integers(0, 1152, one[0][::97].size)   # ... with strays
    pas = [c.copy() for c in one]        # like one pass: g and r contexts follow the activity
    pas[0] = 5 * 48 + pas[0] % 48
    pas[1] = 30 + pas[1] % 6
    pas[2] = 12 + pas[1] % 6
    cases = [(q, ctx) for q in range(w2mix.N_QB)] + [(2, one), (4, [c[:7] for c in one]),
                                                     (1, pas)]
    for qb, ctx in cases:
        co.mixer = (mx, qb)
        M = subband3_fast._models(co)
        M.set_mixer(*mx.fold(qb), mx.a, mx.lg, mx.exp)
        rows_c = np.empty((ctx[0].size, 7))
        M.rows(*ctx, rows_c)
        snap = w2mix.Snapshot(mx, co)
        rows_np = w2mix.mix_rows(mx, qb, snap.terms(*ctx), ctx[0], ctx[1], ctx[3])
        assert np.array_equal(rows_c, rows_np)
        assert np.array_equal(w2mix.snapshot_rows(mx, qb, snap, *ctx), rows_np)
        assert np.all(rows_np >= 1) and np.all(rows_np == np.round(rows_np))
        assert np.all(rows_np.max(1) == 65536)


def test_v4_same_pixels_as_v3_and_fewer_bytes(rgb):
    """The mixer changes probabilities only: the encoder chooses the same values."""
    c = w2.Wavelet2Codec()
    an = c.analyse(rgb)
    tot = {3: 0, 4: 0}
    for q in (15, 45, 75):
        code = w2.step_code_for_quality(q)
        px = {}
        for v in (3, 4):
            e = c.encode_analysed(rgb.shape, an, code, c.chroma_default, version=v)
            assert e.params["V"] == v
            px[v] = c.decode(e.params, e.streams, rgb.shape[1], rgb.shape[0], 3)
            tot[v] += len(e.streams[0])
        assert np.array_equal(px[3], px[4])
        assert psnr(rgb, px[4]) > 25
    assert tot[4] < tot[3]


def test_versions_do_not_mix(rgb):
    c = w2.Wavelet2Codec()
    an = c.analyse(rgb)
    code = w2.step_code_for_quality(50)
    e3 = c.encode_analysed(rgb.shape, an, code, c.chroma_default, version=3)
    e4 = c.encode_analysed(rgb.shape, an, code, c.chroma_default, version=4)
    for params, streams in ((dict(e3.params, V=4), e3.streams),
                            (dict(e4.params, V=3), e4.streams)):
        with pytest.raises(FormatError):
            c.decode(params, streams, rgb.shape[1], rgb.shape[0], 3)


def test_modified_mixer_table_is_refused(monkeypatch, tmp_path, rgb):
    name, sha = w2.MIXERS[4]
    raw = bytearray((w2.DATA_DIR / name).read_bytes())
    raw[-5] ^= 1
    (tmp_path / name).write_bytes(bytes(raw))
    monkeypatch.setattr(w2, "DATA_DIR", tmp_path)
    monkeypatch.setattr(w2mix, "_CACHE", {})
    with pytest.raises(FormatError, match="modified"):
        w2.make_coders(4, step_code=150)
    (tmp_path / name).unlink()
    with pytest.raises(FormatError, match="missing"):
        w2.make_coders(4, step_code=150)


def test_shipped_mixer_card():
    name, sha = w2.MIXERS[4]
    card = json.loads((w2.DATA_DIR / name).with_suffix(".json").read_text())
    for key in ("id", "config", "data", "steps", "sha256", "results", "command"):
        assert key in card, key
    assert card["sha256"] == sha and card["file"] == name
    assert (w2.DATA_DIR / name).stat().st_size < 16 * 1024 * 1024


def test_quality_buckets_are_monotone():
    b = [w2mix.quality_bucket(w2.step_code_for_quality(q)) for q in range(0, 101)]
    assert b[0] == 0 and b[-1] == w2mix.N_QB - 1 and all(x <= y for x, y in zip(b, b[1:]))


def test_tiny_training_run_lowers_the_ideal_bits(tmp_path, rgb, rgb_small):
    """Collect, train a few iterations, quantize, save with a card, load: seconds."""
    d = train_mix.collect([rgb, rgb_small], [20, 60], log=lambda *a: None)
    assert d["w"].sum() > 10000 and d["f"].shape[1] == 9
    a, B = train_mix.train(d, iters=30, max_rows=20000, log=lambda *a: None)
    t = train_mix.quantize(a, B)
    base, mixed = train_mix.baseline_bits(d), train_mix.int_bits(t, d)
    assert mixed < base * 0.995          # it learned something on its own training rows
    sha = train_mix.save(t, tmp_path / "m", {"id": "tiny"})
    card = json.loads((tmp_path / "m.json").read_text())
    assert card["sha256"] == sha
    mx = w2mix.load(tmp_path / "m.safetensors", sha)
    assert mx.a.shape == (w2mix.N_ACLS, 7)
