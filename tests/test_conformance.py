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
# Every other folder holds one codec family's files with its own manifest (frozen manifests
# are never rewritten; a new bitstream version adds files, or a new folder). Only the root and
# wavelet2/ hold container 1.0 files.
SUBDIRS = sorted(p.parent for p in CONF.glob("*/manifest.json") if p.parent != CONF11)
V10 = {CONF, CONF / "wavelet2"}
FILES = [(CONF, n, MANIFEST[n]) for n in sorted(MANIFEST)] + \
        [(CONF11, n, MANIFEST11[n]) for n in sorted(MANIFEST11)] + \
        [(d, n, w) for d in SUBDIRS
         for n, w in sorted(json.loads((d / "manifest.json").read_text()).items())]


def test_every_conformance_file_is_in_a_manifest():
    listed = {(f[0], f[1]) for f in FILES}
    for path in CONF.rglob("*.gcz"):
        assert (path.parent, path.name) in listed, path


@pytest.mark.parametrize("folder,name,want", FILES, ids=[f[0].name + "/" + f[1] for f in FILES])
def test_conformance_file_decodes(folder, name, want):
    data = (folder / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == want["sha256_file"], "frozen file was modified"
    px = api.decode_array(data)
    assert list(px.shape) == want["shape"]
    assert hashlib.sha256(px.tobytes()).hexdigest() == want["sha256_pixels"]
    assert (data[4], data[5]) == ((1, 0) if folder in V10 else (1, 1))
    if "codec_version" in want:
        assert data[7] == want["codec_version"]


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
