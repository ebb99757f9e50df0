"""compare --html: the page's content, and the page in a real headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cdp import Chromium, find_chromium, handle_box
from conftest import DATA, run_cli
from gancomp import compare, htmlreport

IMGS = [DATA / "astronaut_128x96.png", DATA / "chelsea_80x64.png"]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, compare.Result, list, dict]:
    runners = compare.resolve_codecs(["wavelet", "jpeg", "webp"])
    kept: dict = {}
    res = compare.run(IMGS, runners, per_codec={"wavelet": [20, 50, 80], "jpeg": [10, 40, 80],
                                                "webp": [10, 50, 90]}, progress=False, keep=kept)
    page = tmp_path_factory.mktemp("html") / "report.html"
    htmlreport.build(res, runners, IMGS, kept, page, command="gancomp compare test")
    return page, res, runners, kept


def _data(page: Path) -> dict:
    m = re.search(r"<script id=gcdata type=application/json>(.*?)</script>", page.read_text(), re.S)
    return json.loads(m.group(1))


def _png(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))


def test_page_is_self_contained_and_shows_the_measured_pixels(report):
    page, res, runners, kept = report
    text = page.read_text()
    assert "http://" not in text and "https://" not in text and "<script src" not in text
    d = _data(page)
    assert [p["name"] for p in d["pages"]] == [p.name for p in IMGS]
    by_name = {r.name: r for r in runners}
    for i, p in enumerate(d["pages"]):
        assert np.array_equal(_png(d["assets"][p["original"]]), compare.load_rgb(IMGS[i]))
        assert 1 <= len(p["levels"]) <= 3
        for lv in p["levels"]:
            assert set(lv["codecs"]) == {"wavelet", "jpeg", "webp"}
            for codec, c in lv["codecs"].items():
                point = int(c["asset"].rsplit("-", 1)[1])
                row = next(r for r in res.rows if r.codec == codec and r.image == p["name"]
                           and r.point == point)
                assert c["bpp"] == pytest.approx(row.bpp, abs=1e-4)
                # the nearest point to the level, and exactly the pixels that were scored
                cands = [r for r in res.rows if r.codec == codec and r.image == p["name"]]
                assert row is htmlreport.nearest(cands, lv["target"])
                shown = _png(d["assets"][c["asset"]])
                assert np.array_equal(shown, by_name[codec].decode(kept[(codec, p["name"], point)]))


def test_levels_lie_in_the_shared_range():
    rows = [compare.Row(c, "x", k, None, None, 8, 8, 1, b, 0, 30, 1, 1, 24 / b, 0, 0)
            for c, bs in (("a", [0.2, 0.5, 1.0, 2.0]), ("b", [0.4, 0.8, 3.0]))
            for k, b in enumerate(bs)]
    lv = htmlreport.bpp_levels(rows, set())
    assert len(lv) == 3 and 0.4 < lv[0] < lv[1] < lv[2] < 2.0


def test_images_beside_the_page(report, tmp_path: Path):
    _, res, runners, kept = report
    page = htmlreport.build(res, runners, IMGS, kept, tmp_path / "big.html", assets="beside")
    d = _data(page)
    files = sorted((tmp_path / "big_files").iterdir())
    assert len(files) == len(d["assets"]) and all(f.suffix == ".png" for f in files)
    for key, src in d["assets"].items():
        assert src == f"big_files/{key}.png" and (tmp_path / src).is_file()
    assert "data:image/png;base64,iVBOR" not in page.read_text().split("<h2>Table")[1]


def test_cli_html(tmp_path: Path):
    out = tmp_path / "r.html"
    r = run_cli("compare", str(IMGS[1]), "--codecs", "wavelet,jpeg", "-q", "30,70",
                "--html", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert out.exists() and "data:image/png;base64," in out.read_text()
    r = run_cli("compare", str(IMGS[1]), "--codecs", "jpeg", "--html", str(tmp_path / "no" / "r.html"))
    assert r.returncode == 2 and b"folder does not exist" in r.stderr


@pytest.mark.skipif(find_chromium() is None,
                    reason="Chromium is not installed (apt-get install chromium); .ci/run installs it")
def test_viewer_works_in_headless_chromium(report, tmp_path: Path):
    page = report[0]
    with Chromium(find_chromium()) as b:
        b.open(page.resolve().as_uri())
        assert b.js("document.body.dataset.ready") == "1"
        assert b.js("document.querySelectorAll('section.cmp').length") == 2
        # every picture decoded in the browser
        assert b.js("""Promise.all([...document.images].map(i => i.decode().then(() => i.naturalWidth)))
                       .then(w => w.every(x => x > 0))""")
        box = handle_box(b)
        assert box["now"] == 50
        # a real mouse drag of the split handle to 25 % of the viewer
        b.drag(box["hx"], box["hy"], box["vx"] + 0.25 * box["vw"], box["hy"])
        moved = handle_box(b)
        assert moved["now"] == 25
        assert moved["hx"] == pytest.approx(box["vx"] + 0.25 * box["vw"], abs=2)
        assert moved["clip"] == f"inset(0px 0px 0px {round(0.25 * box['vw'])}px)"
        # zoom 8x with the button (the 96-pixel-high picture overflows the viewer), then pan
        # by dragging the picture
        b.js("document.querySelector('section.cmp button[data-zoom=\"8\"]').click()")
        t0 = b.js("document.querySelector('section.cmp .pane.left img').style.transform")
        assert "scale(8)" in t0
        b.drag(box["vx"] + 0.6 * box["vw"], box["vy"] + 100, box["vx"] + 0.6 * box["vw"] + 40,
               box["vy"] + 130)
        t1 = b.js("document.querySelector('section.cmp .pane.left img').style.transform")
        assert t1 != t0 and "scale(8)" in t1
        assert handle_box(b)["now"] == 25  # panning does not move the split
        # choosing another codec / the original swaps the picture and its label
        b.js("""(() => {const s = document.querySelector('section.cmp select.right');
                 s.value = 'original'; s.dispatchEvent(new Event('change'));})()""")
        assert b.js("document.querySelector('section.cmp .tag.r').textContent") == "original"
        shot = b.screenshot()
    img = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"))
    (tmp_path / "shot.png").write_bytes(shot)
    assert img.shape[0] > 500 and img.shape[1] > 1000
    assert img.reshape(-1, 3).std(axis=0).max() > 20  # a rendered page, not a blank one
