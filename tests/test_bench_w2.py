"""Benchmark plumbing added with wavelet2: cached (resumable) rows, held-back photo selection."""

from __future__ import annotations

import json
import shutil

import pytest

from gancomp import compare

from conftest import DATA


def test_cached_rows_are_reused_and_fingerprinted(tmp_path):
    cache = tmp_path / "rows.jsonl"
    paths = [DATA / "chelsea_80x64.png"]
    runners = compare.resolve_codecs(["wavelet2", "jpeg"])
    first = compare.run(paths, runners, qualities=[30.0, 70.0], progress=False, cache=cache)
    lines = cache.read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(x)["key"] for x in lines)

    def boom(*_a, **_k):
        raise AssertionError("a cached row was measured again")

    for r in runners:
        r.encode = boom
    again = compare.run(paths, runners, qualities=[30.0, 70.0], progress=False, cache=cache)
    assert [(r.codec, r.bpp, r.psnr) for r in again.rows] == \
        [(r.codec, r.bpp, r.psnr) for r in first.rows]
    # another codec version (fingerprint) is measured anew
    runners[0].fingerprint += "x"
    with pytest.raises(AssertionError, match="measured again"):
        compare.run(paths, runners, qualities=[30.0, 70.0], progress=False, cache=cache)


def test_source_fingerprint_ignores_the_default_codec_choice():
    fp = compare._source_fingerprint()
    assert len(fp) == 16 and fp == compare._source_fingerprint()


def test_held_out_selection(tmp_path, monkeypatch):
    from gancomp.benchmarks import kodak
    from gancomp.train.data import is_held_out

    for i in range(60):
        shutil.copy(DATA / "camera_gray_64.png", tmp_path / f"p{i:03d}.png")
    want = sorted(p.name for p in tmp_path.iterdir() if is_held_out(p))
    assert want, "the test needs at least one held-back name"
    seen = {}

    def fake_run(paths, runners, **kw):
        seen["paths"] = [p.name for p in paths]
        raise SystemExit(0)

    monkeypatch.setattr(compare, "run", fake_run)
    with pytest.raises(SystemExit):
        kodak.run(str(tmp_path), held_out=True, write=False, codecs=["jpeg"], progress=False)
    assert seen["paths"] == want


def test_speed_suite_reports_cpu_time_per_contender(tmp_path):
    pytest.importorskip("imagecodecs")
    from gancomp.benchmarks import speed

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    shutil.copy(DATA / "chelsea_80x64.png", imgs / "a.png")
    text = speed.run(str(imgs), images=1, repeat=1, codecs=[("wavelet2", 40.0)], write=False,
                     echo=lambda *a, **k: None)
    rows = [r.split("|")[1:-1] for r in text.splitlines() if r.startswith("| ") and "---" not in r]
    assert rows[0][1].strip() == "encode CPU s"
    body = {r[0].strip(): [float(x) for x in r[1:]] for r in rows[1:]}
    assert any(k.startswith("gancomp wavelet2") for k in body) and any("AVIF" in k for k in body)
    for vals in body.values():
        assert vals[0] > 0 and vals[1] > 0          # whole-process CPU seconds were measured
    # each contender is scored on its own decoded file (they differ in PSNR)
    assert len({round(v[5], 3) for v in body.values()}) == len(body)


def test_speed_suite_times_processes_with_bytecode_cached(tmp_path):
    """An editable install under PYTHONDONTWRITEBYTECODE=1 would recompile gancomp's modules
    in every timed process (the libraries AVIF/WebP use are compiled at install): the suite
    lets its children cache bytecode, as after a normal install."""
    from gancomp.benchmarks import speed

    env = {"PYTHONDONTWRITEBYTECODE": "1", "PATH": "/bin"}
    speed._bytecode_cache(env, tmp_path)
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert env["PYTHONPYCACHEPREFIX"].startswith(str(tmp_path))
