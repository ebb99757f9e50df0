"""Issue 12: files and pipes a user can trust (each test failed before its fix)."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import DATA, ROOT, run_cli

IMG = str(DATA / "chelsea_80x64.png")


def one_line_error(r: subprocess.CompletedProcess, code: int) -> str:
    err = r.stderr.decode()
    assert r.returncode == code, (r.returncode, err)
    assert err.count("\n") == 1 and err.startswith("gancomp: error:"), err
    assert "Traceback" not in err
    return err


# -- item 6: every codec option is declared, typed and range-checked -------------------------

@pytest.mark.parametrize("codec,opt", [("hyperprior", "tile=abc"), ("hyperprior", "tile=0"),
                                       ("gan-inversion", "steps=abc"), ("gan-inversion", "bits=x"),
                                       ("gan-inversion", "seed=abc"), ("gan-inversion", "bits=9"),
                                       ("lossless", "entropy=zip"), ("wavelet", "ratio=0"),
                                       ("kmeans", "colors=1"), ("wavelet", "tile=64")])
def test_bad_codec_options_are_one_line(tmp_path, codec, opt):
    r = run_cli("encode", IMG, str(tmp_path / "x.gcz"), "-c", codec, "-x", opt)
    one_line_error(r, 2)
    assert not (tmp_path / "x.gcz").exists()


def test_named_flags_go_through_the_schema(tmp_path):
    one_line_error(run_cli("encode", IMG, str(tmp_path / "x.gcz"), "-c", "kmeans",
                           "--colors", "300"), 2)
    one_line_error(run_cli("encode", IMG, str(tmp_path / "x.gcz"), "--colors", "8"), 2)
    one_line_error(run_cli("encode", IMG, str(tmp_path / "x.gcz"), "-c", "kmeans",
                           "--colors", "8", "-x", "colors=4"), 2)
    r = run_cli("encode", IMG, str(tmp_path / "x.gcz"), "-c", "kmeans", "-x", "colors=8")
    assert r.returncode == 0, r.stderr


def test_every_codec_declares_its_options():
    from gancomp import api
    from gancomp.codecs import available

    declared = {n: {o.name for o in c.encode_options} for n, c in available().items()}
    assert declared["wavelet"] == {"ratio"} and declared["kmeans"] == {"colors"}
    assert {"tile", "model"} <= declared["hyperprior"]
    assert {"entropy", "finetune"} <= declared["lossless"]
    assert {"bits", "steps", "restarts", "seed", "loss", "ratio", "resize"} <= declared["gan-inversion"]
    assert api.check_encode_options("hyperprior", tile="256") == {"tile": 256}


def test_options_shown_in_help_and_codecs_listing():
    listing = run_cli("codecs", "-v").stdout.decode()
    helptext = run_cli("encode", "--help").stdout.decode()
    for text in (listing, helptext):
        assert "tile: int [64..4096] (default 1024)" in text
        assert "bits: int [2..8]" in text and "colors: int [2..256]" in text
