"""Training options of the ae family: the high-rate emphasis of the base phase, 64x64 base crops,
continuing an exported model (cumulative steps, CPU seconds in the card) with the GAN model's
frozen encoder following the retrained base."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import DATA

torch = pytest.importorskip("torch")


def test_rate_positions_high_rate_share():
    from gancomp.train.ae import rate_positions

    torch.manual_seed(0)
    t = rate_positions(400, 5, t_lo=1.0, hi_frac=0.75)
    assert t.shape == (400,) and float(t.min()) >= 0 and float(t.max()) <= 4
    assert float(t[:300].min()) >= 1.0                  # the high-rate share
    assert float(t[300:].min()) < 1.0                   # the rest still covers low rates
    plain = rate_positions(400, 5)
    assert float(plain.min()) < 0.1 and float(plain.max()) > 3.9


def test_continue_exported_model_high_rate(tmp_path: Path):
    from safetensors.torch import load_file

    from gancomp.train.ae import CONFIGS, train

    cfg = dict(CONFIGS["tiny"], name="tiny")
    first = train(cfg, str(DATA), tmp_path / "a", minutes=0, steps=8, model_id="ae-t1",
                  log=lambda *a: None)
    hi = dict(cfg, name="tiny-hi", t_lo=1.0, hi_frac=0.75, base_crop=64)
    out = tmp_path / "b"
    train(hi, str(DATA), out, minutes=0, steps=8, model_id="ae-t2", log=lambda *a: None,
          init=first, share={"base": 0.5, "gan": 0.5})
    card = json.loads((out / "ae-t2.json").read_text())
    assert card["steps"]["base"] == 4 and card["steps"]["gan"] == 4
    # caps 8 x 45/20/15/10/10
    assert card["init_steps"] == {"base": 4, "up": 2, "res": 2, "gan": 1, "upgan": 1}
    assert set(card["cpu_seconds"]) == {"base", "up", "res", "gan", "upgan"}
    assert card["config"]["t_lo"] == 1.0
    ck = load_file(str(out / "checkpoint.safetensors"))
    old = load_file(str(first))
    # the base moved, and the GAN model's frozen encoder is the moved base's
    assert not torch.equal(ck["base.g_a.0.weight"], old["base.g_a.0.weight"])
    for k in ("g_a.0.weight", "g_a.4.weight", "skip_a.weight", "log_gain"):
        assert torch.equal(ck[f"gan.{k}"], ck[f"base.{k}"]), k


def test_adversarial_upsampler_phase_from_l2_and_continued(tmp_path: Path):
    """The upgan phase alone on a model without upg.* starts from up.* (the L2 generator) and
    moves only upg.*; continuing a model that has upg.* keeps it (not re-copied from up.*)."""
    from safetensors.torch import load_file

    from gancomp.train.ae import CONFIGS, train

    cfg = dict(CONFIGS["tiny"], name="tiny")
    first = train(cfg, str(DATA), tmp_path / "a", minutes=0, steps=8, model_id="ae-t1",
                  log=lambda *a: None, share={"base": 0.5, "up": 0.5})
    a = load_file(str(first))
    assert not any(k.startswith("upg.") for k in a)
    second = train(cfg, str(DATA), tmp_path / "b", minutes=0, steps=3, model_id="ae-t2",
                   log=lambda *a: None, init=first, share={"upgan": 1.0})
    b = load_file(str(second))
    card = json.loads((tmp_path / "b" / "ae-t2.json").read_text())
    assert card["steps"]["upgan"] == 3 and card["steps"]["up"] == 0
    assert "adversarial upsampler" in card["adversarial_loss"]
    for k in a:                                         # everything else is the init's
        assert torch.equal(a[k], b[k]), k
    assert not torch.equal(b["upg.body.0.weight"], a["up.body.0.weight"])
    assert float((b["upg.body.0.weight"] - a["up.body.0.weight"]).abs().max()) < 0.01
    third = train(cfg, str(DATA), tmp_path / "c", minutes=0, steps=0, model_id="ae-t3",
                  log=lambda *a: None, init=second, share={"upgan": 1.0})
    c = load_file(str(third))
    assert torch.equal(c["upg.body.0.weight"], b["upg.body.0.weight"])
