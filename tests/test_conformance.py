"""Frozen files from earlier releases must keep decoding to the same pixels."""

import hashlib
import json
from pathlib import Path

import pytest

from gancomp import api

CONF = Path(__file__).resolve().parent.parent / "formats" / "conformance"
MANIFEST = json.loads((CONF / "manifest.json").read_text())


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_conformance_file_decodes(name):
    data = (CONF / name).read_bytes()
    want = MANIFEST[name]
    assert hashlib.sha256(data).hexdigest() == want["sha256_file"], "frozen file was modified"
    px = api.decode_array(data)
    assert list(px.shape) == want["shape"]
    assert hashlib.sha256(px.tobytes()).hexdigest() == want["sha256_pixels"]


def test_readme_commands_are_what_ci_runs():
    root = CONF.parent.parent
    readme = (root / "README.md").read_text()
    ci = (root / ".ci" / "run").read_text()
    blocks = [b.split("```", 1)[0].strip() for b in readme.split("```sh\n")[1:]]
    assert len(blocks) >= 2
    for cmd in blocks[:2]:
        assert cmd in ci, f"README command not run by CI: {cmd}"
