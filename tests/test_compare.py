import csv
import dataclasses
import json
import math

import numpy as np
import pytest
from PIL import Image

from conftest import DATA, run_cli
from gancomp import anchors, api, baselines, compare
from gancomp.errors import InputError

IMGS = [DATA / "astronaut_128x96.png", DATA / "chelsea_80x64.png"]
ANCHOR_CSV = """method,source_file,point,bpp,psnr_rgb,ms_ssim,enc_time_s,dec_time_s
compressai-bmshj2018-hyperprior_mse_cuda,x.json,1,0.131293,27.58,0.917,0.03,0.02
compressai-bmshj2018-hyperprior_mse_cuda,x.json,2,0.208893,29.20,0.942,0.03,0.02
compressai-bmshj2018-hyperprior_mse_cuda,x.json,3,0.319858,30.97,0.961,0.04,0.02
compressai-bmshj2018-hyperprior_mse_cuda,x.json,4,0.478356,32.84,0.975,0.04,0.02
compressai-bmshj2018-hyperprior_mse_cpu,x.json,1,0.131293,27.58,0.917,0.7,0.9
compressai-mbt2018-mean_mse_cuda,x.json,1,0.123922,27.70,0.918,0.03,0.02
"""


def test_sweep_rows_are_measured_on_real_bytes():
    runners = compare.resolve_codecs(["wavelet", "jpeg"])
    res = compare.run(IMGS, runners, per_codec={"wavelet": [30, 70], "jpeg": [20, 60, 90]},
                      progress=False)
    assert len(res.rows) == 2 * (2 + 3)
    img = compare.load_rgb(IMGS[0])
    for r in res.rows:
        assert r.bpp == pytest.approx(r.nbytes * 8 / (r.width * r.height))
        assert r.cr == pytest.approx(24 / r.bpp)
        assert r.enc_s > 0 and r.dec_s > 0 and math.isnan(r.ms_ssim)  # images < 160 px
    # the wavelet row is the .gcz the API writes, scored on what api.decode returns
    w = next(r for r in res.rows if r.codec == "wavelet" and r.image == IMGS[0].name and r.quality == 70)
    data = api.encode_array(img, "wavelet", 70)
    assert len(data) == w.nbytes
    assert w.psnr == pytest.approx(10 * math.log10(255**2 / np.mean(
        (img.astype(float) - api.decode_array(data)) ** 2)))
    # summaries average over images per point and rise with quality
    ss = [s for s in res.summaries if s.codec == "jpeg"]
    assert [s.images for s in ss] == [2, 2, 2]
    assert ss[0].bpp == pytest.approx(np.mean([r.bpp for r in res.rows if r.codec == "jpeg" and r.point == 0]))
    assert ss[0].bpp < ss[1].bpp < ss[2].bpp and ss[0].psnr < ss[1].psnr < ss[2].psnr


def test_target_bpp_is_hit_per_image():
    runners = compare.resolve_codecs(["wavelet", "jpeg"])
    res = compare.run(IMGS[:1], runners, target_bpp=1.6, progress=False)
    for r in res.rows:
        assert not r.target_missed
        assert 1.6 * 0.8 <= r.bpp <= 1.6, (r.codec, r.bpp)
    res = compare.run(IMGS[:1], compare.resolve_codecs(["jpeg"]), target_bpp=0.05, progress=False)
    assert res.rows[0].target_missed and res.notes


@pytest.mark.parametrize("name", list(baselines.CLASSICAL))
def test_classical_codecs_roundtrip_and_rate_rises(name, rgb):
    c = baselines.CLASSICAL[name]
    if c.missing():
        pytest.skip(c.missing())
    lo, hi = c.sweep[0], c.sweep[-1]
    a, b = c.encode(rgb, lo), c.encode(rgb, hi)
    ra, rb = c.decode(a), c.decode(b)
    assert ra.shape == rb.shape == rgb.shape and ra.dtype == np.uint8
    assert len(a) < len(b)
    assert np.mean((rgb.astype(float) - rb) ** 2) < np.mean((rgb.astype(float) - ra) ** 2)


def test_missing_library_and_unknown_codec_are_input_errors(monkeypatch):
    broken = dataclasses.replace(baselines.CLASSICAL["avif"], _probe=lambda: "libavif absent")
    monkeypatch.setitem(baselines.CLASSICAL, "avif", broken)
    with pytest.raises(InputError, match="avif.*not available.*libavif absent"):
        compare.resolve_codecs(["avif"])
    assert baselines.availability()["avif"] == "libavif absent"
    with pytest.raises(InputError, match="unknown codec"):
        compare.resolve_codecs(["wavelet", "nosuch"])
    with pytest.raises(InputError):
        compare.parse_qualities(["jpeg:a,b"])
    with pytest.raises(InputError, match="outside"):
        compare.run(IMGS, compare.resolve_codecs(["jpeg"]), qualities=[500], progress=False)


def test_anchors_csv_selection(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text(ANCHOR_CSV)
    cur = anchors.load(f)
    assert list(cur) == list(anchors.DEFAULT_METHODS)
    c = cur["compressai-bmshj2018-hyperprior_mse_cuda"]
    assert c.published and list(c.bpp) == sorted(c.bpp) and c.psnr[-1] == 32.84
    assert list(anchors.load(f, ["bmshj2018-hyperprior"])) == ["compressai-bmshj2018-hyperprior_mse_cuda"]
    assert list(anchors.load(f, ["hyperprior_mse_cpu"])) == ["compressai-bmshj2018-hyperprior_mse_cpu"]
    with pytest.raises(InputError, match="matches 2 methods"):
        anchors.load(f, ["hyperprior_mse"])
    local = tmp_path / "l.csv"
    local.write_text("method,q,bpp,psnr,ms_ssim,codec_s_per_img\njpeg,5,0.22,23.8,0.80,0.01\n"
                     "webp,0,0.10,25.6,0.85,0.03\n")
    assert set(anchors.load(local)) == {"jpeg", "webp"}
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="needs columns"):
        anchors.load(tmp_path / "bad.csv")


def test_cli_compare_writes_json_csv_plot(tmp_path):
    out = tmp_path
    a = out / "anch.csv"
    a.write_text(ANCHOR_CSV)
    p = run_cli("compare", *map(str, IMGS), "--codecs", "wavelet,jpeg,webp",
                "-q", "wavelet:20,35,50,62,75", "-q", "jpeg:10,30,50,70,90",
                "--json", str(out / "r.json"), "--csv", str(out / "r.csv"),
                "--plot", str(out / "rd.png"), "--anchors", str(a), "--markdown", "--quiet",
                "--section", "cmp-test", "--report", str(out / "B.md"))
    assert p.returncode == 0, p.stderr
    text = p.stdout.decode()
    assert "| scheme | MSE | SSIM | MS-SSIM | PSNR | bpp | CR | enc s | dec s |" in text
    assert "BD-rate" in text and "wavelet q=20" in text
    doc = json.loads((out / "r.json").read_text())
    assert {c["name"] for c in doc["codecs"]} == {"wavelet", "jpeg", "webp"}
    assert len(doc["rows"]) == 2 * (5 + 5 + 8) and doc["rows"][0]["ms_ssim"] is None
    bd = doc["bd_rate_psnr"]["wavelet"]
    assert math.isfinite(bd["jpeg"]) and math.isfinite(bd["webp"]) and bd["jpeg"] < 0
    assert doc["bd_rate_psnr"]["jpeg"]["jpeg"] == pytest.approx(0.0)
    with open(out / "r.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(doc["rows"]) and float(rows[0]["bpp"]) > 0
    with Image.open(out / "rd.png") as im:
        assert im.format == "PNG" and im.size[0] > 600
    from gancomp.report import read_section

    body = read_section(out / "B.md", "cmp-test")
    assert "Command: `gancomp compare " in body and "--section cmp-test" in body
    assert "![RD curves](rd.png)" in body and "| wavelet q=20 |" in body


@pytest.mark.parametrize("args, msg", [
    (["--codecs", "wavelet,nosuch"], "unknown codec 'nosuch'"),
    (["--codecs", "jpeg", "-q", "jpeg:x"], "bad quality list"),
    (["--codecs", "jpeg", "--target-bpp", "-1"], "--target-bpp"),
    (["--codecs", "jpeg", "--json", "/nonexistent-dir/x.json"], "folder does not exist"),
    (["--codecs", "jpeg", "--anchors", "/nonexistent-dir/a.csv"], "cannot read anchors CSV"),
])
def test_cli_errors_are_one_line(args, msg):
    p = run_cli("compare", str(IMGS[0]), *args)
    err = p.stderr.decode().strip()
    assert p.returncode != 0 and len(err.splitlines()) == 1 and msg in err, err


def test_cli_empty_dir_and_missing_suite(tmp_path):
    p = run_cli("compare", str(tmp_path), "--codecs", "jpeg")
    assert p.returncode == 2 and "holds no images" in p.stderr.decode()
    assert len(p.stderr.decode().strip().splitlines()) == 1
    p = run_cli("bench", "--suite", "nosuch", str(tmp_path))
    assert p.returncode == 2 and "unknown benchmark suite" in p.stderr.decode()


def test_bench_kodak_suite_writes_its_section(tmp_path):
    from gancomp.benchmarks import kodak
    from gancomp.report import read_section

    a = tmp_path / "anch.csv"
    a.write_text(ANCHOR_CSV)
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\n<!-- bench:other -->\nkeep me\n<!-- /bench:other -->\n")
    printed = []
    kodak.run(str(DATA), images=2, out=md, codecs=["wavelet", "jpeg", "webp"], anchors_csv=str(a),
              command="gancomp bench tests/data --images 2", progress=False,
              echo=lambda *x, **k: printed.append(x))
    body = read_section(md, "kodak")
    assert body and "Command: `gancomp bench tests/data --images 2`" in body
    assert "| wavelet |" in body and "vs jpeg" in body and "vs bmshj2018-hyperprior" in body
    assert "Machine:" in body and read_section(md, "other") == "keep me"
    assert (tmp_path / "bench_kodak_psnr.png").stat().st_size > 0
    assert (tmp_path / "bench_kodak_msssim.png").stat().st_size > 0


def test_bench_plan_has_rd_codecs_only():
    from gancomp import weights
    from gancomp.benchmarks import kodak
    from gancomp.codecs import DEFAULT_CODEC, available

    plan = kodak.plan_codecs()
    assert plan.codecs[0] == DEFAULT_CODEC and "wavelet" in plan.codecs
    assert not (set(plan.codecs) & kodak.NOT_PHOTO_CODECS)
    assert all(not available()[c].lossless for c in plan.codecs if c in available())
    learned = [c for c in plan.codecs if c in available() and weights.default_for(c)]
    assert set(learned) <= set(available())
    assert set(plan.codecs) | set(plan.missing) >= set(kodak.CLASSICAL_ORDER)
    assert all(len(q) >= 4 for q in plan.qualities.values())  # enough points for a cubic BD fit


def test_bd_between_refuses_a_sliver_of_overlap():
    q = np.array([28.0, 30.0, 32.0, 34.0])
    r = np.array([0.2, 0.4, 0.8, 1.6])
    a = compare.Curve("a", r, q, np.full(4, np.nan))
    assert compare.bd_between(a, compare.Curve("b", r / 2, q, q)) == pytest.approx(-50.0)
    assert compare.bd_between(a, compare.Curve("c", r, q + 5.5, q)) is None  # 0.5 dB shared
    assert compare.bd_between(a, compare.Curve("d", r, q, q), "ms_ssim") is None  # no MS-SSIM
