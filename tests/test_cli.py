import hashlib
import json
import subprocess
import sys

import numpy as np
from PIL import Image
import io

from conftest import DATA, ROOT, run_cli
from gancomp.codecs import DEFAULT_CODEC

IMG = str(DATA / "chelsea_80x64.png")


def test_help_is_fast_and_imports_no_torch():
    code = ("import sys; sys.argv=['gancomp','--help']\n"
            "from gancomp.cli import cli\n"
            "try:\n    cli.main(standalone_mode=False)\nexcept SystemExit: pass\n"
            "assert 'torch' not in sys.modules, 'torch imported by --help'\n"
            "for c in ('encode','decode','info','models'):\n"
            "    sys.argv=['gancomp',c,'--help']\n"
            "    try:\n        cli.main(standalone_mode=False)\n    except SystemExit: pass\n"
            "assert 'torch' not in sys.modules\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PYTHONPATH": str(ROOT)}, timeout=60)
    assert r.returncode == 0, r.stderr


def test_encode_decode_files(tmp_path):
    gcz, png = tmp_path / "x.gcz", tmp_path / "y.png"
    r = run_cli("encode", IMG, str(gcz), "-v")
    assert r.returncode == 0, r.stderr
    assert b"bpp" in r.stderr and r.stdout == b""
    r = run_cli("decode", str(gcz), str(png))
    assert r.returncode == 0 and r.stderr == b"", r.stderr
    assert Image.open(png).size == (80, 64)
    info = json.loads(run_cli("info", "--json", str(gcz)).stdout)
    assert info["codec"] == DEFAULT_CODEC and info["width"] == 80


def test_pipeline_stdin_stdout():
    src = (DATA / "chelsea_80x64.png").read_bytes()
    enc = run_cli("encode", "-", "-", "-q", "70", input=src)
    assert enc.returncode == 0 and enc.stdout[:4] == b"\x8bGCZ"
    dec = run_cli("decode", "-", "-", input=enc.stdout)
    assert dec.returncode == 0 and dec.stdout[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(io.BytesIO(dec.stdout)).size == (80, 64)


def test_errors_are_one_line_and_nonzero(tmp_path):
    good = tmp_path / "good.gcz"
    assert run_cli("encode", IMG, str(good)).returncode == 0
    corrupt = tmp_path / "corrupt.gcz"
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0x10
    corrupt.write_bytes(bytes(data))
    (tmp_path / "random.gcz").write_bytes(np.random.default_rng(0).bytes(500))
    (tmp_path / "empty.png").write_bytes(b"")
    cases = [
        ("encode", str(tmp_path / "missing.png"), str(tmp_path / "o1.gcz")),
        ("encode", str(tmp_path / "empty.png"), str(tmp_path / "o2.gcz")),
        ("encode", IMG, str(tmp_path / "o3.gcz"), "--codec", "nope"),
        ("encode", IMG, str(tmp_path / "o4.gcz"), "-q", "1e9"),
        ("encode", IMG, str(tmp_path / "o5.gcz"), "--target-bpp", "-1"),
        ("decode", str(corrupt), str(tmp_path / "o6.png")),
        ("decode", str(tmp_path / "random.gcz"), str(tmp_path / "o7.png")),
        ("decode", str(good)[:-4] + ".nothere", str(tmp_path / "o8.png")),
        ("decode", str(good), str(tmp_path / "o9.png"), "--format", "gif"),
        ("info", str(corrupt)),
    ]
    for args in cases:
        r = run_cli(*args)
        assert r.returncode != 0, args
        lines = r.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in r.stderr.decode(), (args, r.stderr)
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == ["corrupt.gcz", "empty.png", "good.gcz", "random.gcz"], leftovers


def test_no_overwrite_without_force_and_input_untouched(tmp_path):
    src = tmp_path / "in.png"
    src.write_bytes((DATA / "chelsea_80x64.png").read_bytes())
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    out = tmp_path / "out.gcz"
    out.write_bytes(b"keep me")
    r = run_cli("encode", str(src), str(out))
    assert r.returncode != 0 and out.read_bytes() == b"keep me"
    assert run_cli("encode", str(src), str(out), "--force").returncode == 0
    r = run_cli("decode", str(out), str(src), "--force")
    assert r.returncode != 0 or hashlib.sha256(src.read_bytes()).hexdigest() != before
    assert hashlib.sha256((DATA / "chelsea_80x64.png").read_bytes()).hexdigest()


def test_codecs_and_models_list():
    r = run_cli("codecs")
    assert r.returncode == 0 and b"wavelet" in r.stdout and b"kmeans" in r.stdout
    assert run_cli("models").returncode == 0
