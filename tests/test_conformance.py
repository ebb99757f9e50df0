"""Frozen files from earlier releases must keep decoding to the same pixels."""

import hashlib
import json
from pathlib import Path

import pytest

from gancomp import api

CONF = Path(__file__).resolve().parent.parent / "formats" / "conformance"
MANIFEST = json.loads((CONF / "manifest.json").read_text())
# .gcz 1.1 files, in their own folder and manifest (the 1.0 ones above stay untouched)
CONF11 = CONF / "v1_1"
MANIFEST11 = json.loads((CONF11 / "manifest.json").read_text())
# wavelet2's first files (container 1.0), in their own folder so the 1.0 manifest stays frozen
CONFW2 = CONF / "wavelet2"
MANIFESTW2 = json.loads((CONFW2 / "manifest.json").read_text())
# learned codecs whose models ship in models/ (ae versions 1 and 2, hyperprior version 3)
CONFL = CONF / "learned"
MANIFESTL = json.loads((CONFL / "manifest.json").read_text())
FILES = [(CONF, n, MANIFEST[n]) for n in sorted(MANIFEST)] + \
        [(CONF11, n, MANIFEST11[n]) for n in sorted(MANIFEST11)] + \
        [(CONFW2, n, MANIFESTW2[n]) for n in sorted(MANIFESTW2)] + \
        [(CONFL, n, MANIFESTL[n]) for n in sorted(MANIFESTL)]


@pytest.mark.parametrize("folder,name,want", FILES, ids=[f[0].name + "/" + f[1] for f in FILES])
def test_conformance_file_decodes(folder, name, want):
    data = (folder / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == want["sha256_file"], "frozen file was modified"
    px = api.decode_array(data)
    assert list(px.shape) == want["shape"]
    assert hashlib.sha256(px.tobytes()).hexdigest() == want["sha256_pixels"]
    assert (data[4], data[5]) == ((1, 1) if folder in (CONF11, CONFL) else (1, 0))


def test_v11_face_files_are_small():
    for name, want in MANIFEST11.items():
        if name.startswith("ganinv_") and name.endswith("_default.gcz"):
            data = (CONF11 / name).read_bytes()
            assert len(data) <= 128, name  # <= 0.25 bpp at 64x64


def test_readme_commands_are_what_ci_runs():
    root = CONF.parent.parent
    readme = (root / "README.md").read_text()
    ci = (root / ".ci" / "run").read_text()
    blocks = [b.split("```", 1)[0].strip() for b in readme.split("```sh\n")[1:]]
    assert len(blocks) >= 2
    for cmd in blocks[:2]:
        assert cmd in ci, f"README command not run by CI: {cmd}"
