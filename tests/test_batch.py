"""gancomp batch: planning, resuming, failures, workers, Ctrl-C, JSON, Ray."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import DATA, ROOT, run_cli
from gancomp import api, batch
from gancomp.container import unpack
from gancomp.errors import InputError

IMGS = ["astronaut_128x96.png", "chelsea_80x64.png", "camera_gray_64.png"]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """photos/{a.png, sub/b.png, sub/deeper/c.png} plus things batch must ignore."""
    root = tmp_path / "photos"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".hidden").mkdir()
    shutil.copy(DATA / IMGS[0], root / "a.png")
    shutil.copy(DATA / IMGS[1], root / "sub" / "b.png")
    shutil.copy(DATA / IMGS[2], root / "sub" / "deeper" / "c.png")
    shutil.copy(DATA / IMGS[1], root / ".hidden" / "x.png")
    (root / "notes.txt").write_text("not an image")
    return root


def _outputs(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_plan_mirrors_the_tree_and_skips_hidden_and_output(tree: Path):
    s = batch.Settings(codec="wavelet")
    jobs = batch.plan(str(tree), tree / "out", s)  # output inside the input: not rescanned
    (tree / "out").mkdir()
    shutil.copy(DATA / IMGS[0], tree / "out" / "old.png")
    jobs = batch.plan(str(tree), tree / "out", s)
    assert [j.rel for j in jobs] == ["a.png", "sub/b.png", "sub/deeper/c.png"]
    assert jobs[2].dst == tree / "out" / "sub" / "deeper" / "c.gcz"
    # two inputs with one output name: the second is refused, not silently overwritten
    shutil.copy(DATA / IMGS[0], tree / "a.jpg")
    jobs = batch.plan(str(tree), tree / "o2", s)
    clash = [j for j in jobs if j.error]
    assert [j.rel for j in clash] == ["a.png"] and "a.jpg" in clash[0].error
    with pytest.raises(InputError, match="no such file"):
        batch.plan(str(tree / "nope"), tree / "o", s)


def test_encode_resume_and_verify(tree: Path, tmp_path: Path):
    out = tmp_path / "out"
    s = batch.Settings(codec="wavelet", quality=60, psnr=True)
    rep = batch.run(batch.plan(str(tree), out, s), s, workers=1)
    assert [o.status for o in rep.files] == ["done"] * 3
    for o in rep.files:
        data = Path(o.dst).read_bytes()
        src = np.asarray(Image.open(o.src))
        assert api.decode_array(data).shape[:2] == src.shape[:2]
        assert data == api.encode_array(src, "wavelet", 60)  # what `gancomp encode` writes
        assert o.bpp == pytest.approx(len(data) * 8 / (o.width * o.height)) and o.psnr > 20
    t = rep.totals()
    assert t["bytes_after"] == sum(len(b) for b in _outputs(out).values())
    assert t["bytes_before"] == sum(os.path.getsize(o.src) for o in rep.files)
    # a rerun skips every verified output; a truncated one and a stale temp are redone/cleaned
    first = _outputs(out)
    b = out / "sub" / "b.gcz"
    b.write_bytes(first["sub/b.gcz"][:-7])
    (out / "sub" / ".b.gcz.abc123.tmp").write_bytes(b"partial")
    rep2 = batch.run(batch.plan(str(tree), out, s), s, workers=1)
    assert {o.rel: o.status for o in rep2.files} == {"a.png": "skipped", "sub/b.png": "done",
                                                      "sub/deeper/c.png": "skipped"}
    assert _outputs(out) == first
    # another codec asked for: outputs of the old codec are not "finished"
    s3 = batch.Settings(codec="kmeans")
    assert not batch.finished(out / "a.gcz", s3) and batch.finished(out / "a.gcz", s)


def test_bad_file_fails_alone(tree: Path, tmp_path: Path):
    (tree / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    out = tmp_path / "out"
    s = batch.Settings(codec="wavelet")
    rep = batch.run(batch.plan(str(tree), out, s), s, workers=1)
    st = {o.rel: o for o in rep.files}
    assert st["sub/broken.png"].status == "failed"
    assert "broken.png" in st["sub/broken.png"].error and "\n" not in st["sub/broken.png"].error
    assert sum(o.status == "done" for o in rep.files) == 3
    assert not (out / "sub" / "broken.gcz").exists()


def test_two_workers_write_the_same_bytes_as_one(tree: Path, tmp_path: Path):
    s = batch.Settings(codec="wavelet", quality=40)
    r1 = batch.run(batch.plan(str(tree), tmp_path / "w1", s), s, workers=1)
    r2 = batch.run(batch.plan(str(tree), tmp_path / "w2", s), s, workers=2)
    assert r1.count("done") == r2.count("done") == 3
    assert _outputs(tmp_path / "w1") == _outputs(tmp_path / "w2")


def test_decode_mode_and_file_list(tree: Path, tmp_path: Path):
    s = batch.Settings(codec="wavelet", quality=90)
    batch.run(batch.plan(str(tree), tmp_path / "gcz", s), s)
    d = batch.Settings(mode="decode", fmt="png")
    rep = batch.run(batch.plan(str(tmp_path / "gcz"), tmp_path / "png", d), d)
    assert rep.count("done") == 3
    dec = np.asarray(Image.open(tmp_path / "png" / "sub" / "b.png"))
    assert np.array_equal(dec, api.decode_array((tmp_path / "gcz" / "sub" / "b.gcz").read_bytes()))
    # a list file: paths mirrored relative to their common folder, missing ones fail alone
    lst = tmp_path / "list.txt"
    lst.write_text(f"{tree / 'a.png'}\n# comment\n\n{tree / 'sub' / 'b.png'}\n{tree / 'gone.png'}\n")
    jobs = batch.plan(f"@{lst}", tmp_path / "l", s)
    assert [j.rel for j in jobs] == ["a.png", "sub/b.png", "gone.png"]
    rep = batch.run(jobs, s)
    assert [o.status for o in rep.files] == ["done", "done", "failed"]


def test_cli_json_stdout_exit_codes_and_stdin(tree: Path, tmp_path: Path):
    (tree / "bad.png").write_bytes(b"nope")
    out = tmp_path / "out"
    r = run_cli("batch", str(tree), str(out), "-c", "wavelet", "--workers", "1", "--json", "-")
    assert r.returncode == 1, r.stderr  # one file failed
    doc = json.loads(r.stdout)  # nothing but JSON on stdout
    assert doc["totals"]["done"] == 3 and doc["totals"]["failed"] == 1
    assert [f["rel"] for f in doc["files"] if f["status"] == "failed"] == ["bad.png"]
    assert b"bad.png" in r.stderr and b"Traceback" not in r.stderr
    (tree / "bad.png").unlink()
    r = run_cli("batch", str(tree), str(out), "-c", "wavelet", "--workers", "1")
    assert r.returncode == 0 and b"skipped" in r.stdout
    listing = f"{tree / 'a.png'}\n{tree / 'sub' / 'b.png'}\n".encode()
    r = run_cli("batch", "-", str(tmp_path / "s"), "-c", "wavelet", "--workers", "1", input=listing)
    assert r.returncode == 0, r.stderr
    assert sorted(_outputs(tmp_path / "s")) == ["a.gcz", "sub/b.gcz"]
    r = run_cli("batch", str(tree), str(out), "-c", "nosuchcodec")
    assert r.returncode == 2 and r.stderr.count(b"\n") == 1


def test_ctrl_c_leaves_only_complete_outputs(tmp_path: Path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(12):
        shutil.copy(DATA / IMGS[0], src / f"img{i:02d}.png")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "gancomp", "batch", str(src), str(out), "-c", "lossless",
           "--workers", "2", "--quiet"]
    # a shell without job control starts background jobs with SIGINT ignored, and Python then
    # keeps it ignored: give the child the default disposition so the test does not depend on
    # how the suite was launched
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while time.time() < deadline and not (out.exists() and any(out.glob("*.gcz"))):
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    done = sorted(out.glob("*.gcz"))
    assert 1 <= len(done) < 12
    assert not list(out.glob(".*"))  # no temp files left
    for f in done:
        unpack(f.read_bytes())  # every output present is complete (checksum verifies)
    r = subprocess.run(cmd[:-1] + ["--json", "-"], env=env, capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr
    t = json.loads(r.stdout)["totals"]
    assert t["skipped"] == len(done) and t["done"] == 12 - len(done)


def test_ray_matches_local(tree: Path, tmp_path: Path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'gancomp[ray]')")
    s = batch.Settings(codec="wavelet", quality=50)
    local = batch.run(batch.plan(str(tree), tmp_path / "local", s), s, workers=1)
    ray = batch.run(batch.plan(str(tree), tmp_path / "ray", s), s, workers=2, ray="local")
    assert ray.engine == "ray" and ray.count("done") == local.count("done") == 3
    assert _outputs(tmp_path / "ray") == _outputs(tmp_path / "local")


def test_notes_of_each_file_are_shown(tmp_path: Path):
    """What a file loses (here: the extra frames of an animated GIF) is said per file."""
    src = tmp_path / "in"
    src.mkdir()
    frames = [Image.open(DATA / IMGS[1]).convert("RGB"), Image.open(DATA / IMGS[0]).convert("RGB")]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:])
    r = run_cli("batch", str(src), str(tmp_path / "out"), "-c", "wavelet", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert b"anim.gif" in r.stderr and b"2 frames or pages: only the first is coded" in r.stderr
