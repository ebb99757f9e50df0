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
    resize = ["--resize"] if codec == "gan-inversion" else []  # else the size check comes first
    r = run_cli("encode", IMG, str(tmp_path / "x.gcz"), "-c", codec, "-x", opt, *resize)
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


# -- helpers for in-process runs (monkeypatched failures) ---------------------------------------

def run_inproc(monkeypatch, capsysbinary, *args: str) -> tuple[int, bytes, bytes]:
    from gancomp.cli import main

    monkeypatch.setattr(sys, "argv", ["gancomp", *args])
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code or 0
    out, err = capsysbinary.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def gcz(tmp_path_factory) -> str:
    p = tmp_path_factory.mktemp("gcz") / "x.gcz"
    r = run_cli("encode", IMG, str(p))
    assert r.returncode == 0, r.stderr
    return str(p)


# -- item 2: special files, links and modes --------------------------------------------------

def test_fifo_output_is_written_through(tmp_path, gcz):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = {}

    import threading

    def reader():
        with open(fifo, "rb") as f:
            got["data"] = f.read()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    r = run_cli("decode", gcz, str(fifo), "-f")
    t.join(30)
    if t.is_alive():  # the FIFO was replaced: unblock the reader before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)) if stat.S_ISFIFO(
            os.lstat(fifo).st_mode) else None
    assert r.returncode == 0, r.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced by a file"
    assert got["data"][:8] == b"\x89PNG\r\n\x1a\n"


def device(tmp_path, name: str, minor: int) -> str:
    """A private copy of /dev/null (minor 3) or /dev/full (minor 7): a broken build run as
    root must not replace the real ones."""
    path = str(tmp_path / name)
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except (PermissionError, AttributeError):
        pytest.skip("creating a device node needs root")
    return path


def test_device_output_stays_a_device(tmp_path, gcz):
    null = device(tmp_path, "null", 3)
    r = run_cli("decode", gcz, null, "-f")
    assert r.returncode == 0, r.stderr
    assert stat.S_ISCHR(os.stat(null).st_mode)


def test_symlink_is_written_through_and_mode_kept(tmp_path, gcz):
    target = tmp_path / "real.png"
    target.write_bytes(b"old")
    os.chmod(target, 0o600)
    link = tmp_path / "link.png"
    link.symlink_to(target)
    one_line_error(run_cli("decode", gcz, str(link)), 2)  # exists: needs --force
    r = run_cli("decode", gcz, str(link), "-f")
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.png", "real.png"]


# -- item 3: write failures are one line, exit 5, nothing left behind -------------------------

def test_stdout_to_dev_full(gcz):
    with open("/dev/full", "wb") as full:
        e = dict(os.environ, PYTHONPATH=str(ROOT))
        r = subprocess.run([sys.executable, "-m", "gancomp", "decode", gcz, "-"], stdout=full,
                           stderr=subprocess.PIPE, env=e, timeout=120)
    assert r.returncode == 5 and r.stderr.count(b"\n") == 1, r.stderr
    assert b"No space left" in r.stderr


def test_full_device_as_output_file(tmp_path, gcz):
    full = device(tmp_path, "full", 7)
    one_line_error(run_cli("decode", gcz, full, "-f"), 5)
    assert stat.S_ISCHR(os.stat(full).st_mode)


@pytest.mark.parametrize("where,err", [("mkstemp", 13), ("fsync", 28), ("replace", 30)])
def test_write_failures_are_one_line(tmp_path, gcz, monkeypatch, capsysbinary, where, err):
    import tempfile

    def fail(*a, **k):
        raise OSError(err, os.strerror(err))

    target = {"mkstemp": (tempfile, "mkstemp"), "fsync": (os, "fsync"),
              "replace": (os, "replace")}[where]
    monkeypatch.setattr(*target, fail)
    out = tmp_path / "y.png"
    code, _, stderr = run_inproc(monkeypatch, capsysbinary, "decode", gcz, str(out))
    assert code == 5, stderr
    assert stderr.count(b"\n") == 1 and os.strerror(err).encode() in stderr
    assert list(tmp_path.iterdir()) == []


# -- item 4: output problems are found before the work ----------------------------------------

def _no_work(monkeypatch):
    from gancomp import api

    def boom(*a, **k):
        raise AssertionError("the codec ran before the output was checked")

    monkeypatch.setattr(api, "encode_array_ex", boom)
    monkeypatch.setattr(api, "decode", boom)


def test_missing_folder_found_before_encoding(monkeypatch, capsysbinary):
    _no_work(monkeypatch)
    code, _, err = run_inproc(monkeypatch, capsysbinary, "encode", IMG, "/nonexistent/x.gcz")
    assert code == 2 and b"folder does not exist" in err


def test_unwritable_folder_found_before_encoding(tmp_path, monkeypatch, capsysbinary):
    _no_work(monkeypatch)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m, **k: False if str(p) == str(tmp_path)
                        else real_access(p, m, **k))
    code, _, err = run_inproc(monkeypatch, capsysbinary, "encode", IMG, str(tmp_path / "x.gcz"))
    assert code == 5 and b"permission denied" in err, err


def test_input_equals_output_found_before_decoding(gcz, monkeypatch, capsysbinary):
    _no_work(monkeypatch)
    before = open(gcz, "rb").read()
    code, _, err = run_inproc(monkeypatch, capsysbinary, "decode", gcz, gcz, "-f",
                              "--format", "png")
    assert code == 2 and b"overwrite the input" in err
    assert open(gcz, "rb").read() == before


# -- item 5: output suffixes -----------------------------------------------------------------

def test_jpeg_output_with_quality(tmp_path, gcz):
    hi, lo = tmp_path / "hi.jpg", tmp_path / "lo.jpeg"
    assert run_cli("decode", gcz, str(hi)).returncode == 0
    assert run_cli("decode", gcz, str(lo), "--jpeg-quality", "20").returncode == 0
    assert Image.open(hi).format == "JPEG" and Image.open(lo).format == "JPEG"
    assert lo.stat().st_size < hi.stat().st_size


def test_unknown_suffix_refused_and_image_suffix_for_gcz_refused(tmp_path, gcz):
    one_line_error(run_cli("decode", gcz, str(tmp_path / "y.xyz")), 2)
    one_line_error(run_cli("encode", IMG, str(tmp_path / "x.png")), 2)
    assert list(tmp_path.iterdir()) == []
    r = run_cli("decode", gcz, str(tmp_path / "y.xyz"), "--format", "tiff")
    assert r.returncode == 0 and Image.open(tmp_path / "y.xyz").format == "TIFF"


# -- item 7: binary to or from a terminal ------------------------------------------------------

def _with_pty(args: list[str], which: str) -> subprocess.CompletedProcess:
    import pty

    master, slave = pty.openpty()
    e = dict(os.environ, PYTHONPATH=str(ROOT))
    kw = {"stdout": slave, "stderr": subprocess.PIPE} if which == "stdout" else \
        {"stdin": slave, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    try:
        return subprocess.run([sys.executable, "-m", "gancomp", *args], env=e, timeout=60, **kw)
    except subprocess.TimeoutExpired:
        pytest.fail("gancomp waited on the terminal")
    finally:
        os.close(slave)
        os.close(master)


def test_binary_to_terminal_refused():
    r = _with_pty(["encode", IMG, "-"], "stdout")
    assert r.returncode == 2 and b"terminal" in r.stderr and r.stderr.count(b"\n") == 1


def test_waiting_on_terminal_stdin_refused(tmp_path):
    r = _with_pty(["encode", "-", str(tmp_path / "x.gcz")], "stdin")
    assert r.returncode == 2 and b"terminal" in r.stderr and r.stderr.count(b"\n") == 1


# -- items 8, 9: machine-readable stdout, info on many files, bare gancomp ----------------------

@pytest.mark.parametrize("flag", ["--json", "--csv"])
def test_compare_data_on_stdout_is_alone(flag):
    r = run_cli("compare", IMG, "--codecs", "wavelet,kmeans", "-q", "30,60", flag, "-")
    assert r.returncode == 0, r.stderr
    if flag == "--json":
        data = json.loads(r.stdout)
        assert data
    else:
        lines = r.stdout.decode().splitlines()
        assert lines[0].count(",") >= 5 and all(l.count(",") == lines[0].count(",") for l in lines)
    assert b"PSNR" in r.stderr  # the table went to stderr


def test_info_reports_each_file_then_fails(tmp_path, gcz):
    bad = tmp_path / "bad.gcz"
    data = bytearray(open(gcz, "rb").read())
    data[20] ^= 1
    bad.write_bytes(bytes(data))
    r = run_cli("info", gcz, str(bad), gcz, IMG)
    assert r.returncode == 3
    assert r.stdout.decode().count(f"{gcz}: .gcz ") == 2
    err = r.stderr.decode().splitlines()
    assert len(err) == 2 and all(l.startswith("gancomp: error: ") for l in err)
    assert str(bad) in err[0] and IMG in err[1]
    r = run_cli("info", "--json", str(tmp_path / "missing.gcz"), gcz)
    assert r.returncode == 2 and len(json.loads(r.stdout)) == 1


def test_bare_gancomp_prints_help_without_error():
    r = run_cli()
    assert r.returncode == 0 and r.stderr == b""
    assert b"Usage:" in r.stdout and b"Exit codes" in r.stdout


# -- item 1: 16-bit RGB is never silently reduced ------------------------------------------------

def png16(arr: np.ndarray) -> bytes:
    """A 16-bit RGB (or RGBA) PNG written by hand (Pillow cannot write one)."""
    import struct
    import zlib

    h, w, c = arr.shape
    raw = b"".join(b"\0" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, {3: 2, 4: 6}[c], 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def rgb16(tmp_path_factory) -> str:
    a = np.random.default_rng(0).integers(0, 65536, (24, 32, 3)).astype(np.uint16)
    p = tmp_path_factory.mktemp("d16") / "rgb16.png"
    p.write_bytes(png16(a))
    return str(p)


def test_16bit_rgb_detected():
    from gancomp.imageio import decode_image_bytes

    for c in (3, 4):
        img = decode_image_bytes(png16(np.full((4, 5, c), 40000, np.uint16)))
        assert img.bit_depth == 16 and any("16-bit" in n for n in img.notes)
        assert img.pixels.shape == (4, 5, c)


def test_16bit_rgb_refused_by_lossless(tmp_path, rgb16):
    err = one_line_error(run_cli("encode", rgb16, str(tmp_path / "x.gcz"), "-c", "lossless"), 2)
    assert "16-bit" in err and list(tmp_path.iterdir()) == []


def test_16bit_rgb_lossy_notes_and_records_depth(tmp_path, rgb16):
    gz, png = tmp_path / "x.gcz", tmp_path / "y.png"
    r = run_cli("encode", rgb16, str(gz), "-c", "wavelet")
    assert r.returncode == 0 and b"16-bit samples reduced to 8 bits" in r.stderr, r.stderr
    assert json.loads(run_cli("info", "--json", str(gz)).stdout)["bit_depth"] == 16
    r = run_cli("decode", str(gz), str(png))
    assert r.returncode == 0 and b"source was 16-bit" in r.stderr



@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP", "TIFF"])
def test_extra_frames_are_reported_not_dropped_silently(fmt):
    """Animated GIF/PNG/WebP and multi-page TIFF: the first frame is coded and a note says so."""
    from gancomp.imageio import decode_image_bytes

    rng = np.random.default_rng(1)
    frames = [Image.fromarray(rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)) for _ in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:])
    img = decode_image_bytes(buf.getvalue())
    assert any("3 frames or pages: only the first is coded" in n for n in img.notes), img.notes
    one = io.BytesIO()
    frames[0].save(one, fmt)
    assert not any("frames" in n for n in decode_image_bytes(one.getvalue()).notes)

# -- item 10: corruption behind a valid checksum is caught by wavelet and kmeans -----------------

@pytest.mark.parametrize("codec,opts", [("wavelet", {}), ("wavelet", {"ratio": 8}),
                                        ("kmeans", {})])
def test_every_flip_behind_a_valid_crc_is_refused_or_harmless(rgb_small, codec, opts):
    from gancomp import api
    from gancomp.benchmarks.fuzz import classify, mutations

    data = api.encode_array(rgb_small[:24, :32], codec, **opts)
    ref = api.decode_array(data)
    counts: dict[str, int] = {}
    for mutated, what in mutations(data, True, [0xFF], 0, 0):
        outcome, _slow = classify(mutated, ref, 10.0)
        counts[outcome] = counts.get(outcome, 0) + 1
        assert outcome in ("error", "same"), (what, outcome)
    assert counts["error"] > 0.9 * (len(data) - 4)


# -- item 12: progress with a known amount of work ------------------------------------------------

class Recorder:
    def __init__(self):
        self.calls: list[tuple[int, int, str]] = []

    def __call__(self, done, total, label):
        self.calls.append((done, total, label))

    def of(self, label):
        return [(d, t) for d, t, lab in self.calls if lab == label]


def test_hyperprior_reports_tiles(rgb):
    from gancomp import api, progress

    rec = Recorder()
    with progress.listen(rec):
        data = api.encode_array(rgb, "hyperprior", 50, tile=64)
    assert rec.of("tiles") == [(1, 4), (2, 4), (3, 4), (4, 4)]
    rec2 = Recorder()
    with progress.listen(rec2):
        api.decode_array(data)
    assert rec2.of("tiles") == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert progress._LISTENERS.get() == ()


def test_lossless_and_search_report(rgb_small):
    from gancomp import api, progress

    small = rgb_small[:16, :20]
    rec = Recorder()
    with progress.listen(rec):
        data = api.encode_array(small, "lossless")
        api.decode_array(data)
        api.encode_array(small, "wavelet", target_bpp=6.0)
    rows = rec.of("rows")
    assert rows[-1] == (20 + 2 * 15, 20 + 2 * 15) and [d for d, _ in rows] == list(range(1, 51))
    assert rec.of("pixels")[-1] == (320, 320)
    trials = rec.of("trials")   # one report per trial, then (n, n) when the search ends
    assert [d for d, _ in trials[:-1]] == list(range(1, len(trials)))
    assert trials[-1][0] == trials[-1][1] == len(trials) - 1 >= 3
    assert all(d <= t for d, t in trials)
    legacy: list[tuple[int, int]] = []
    api.encode_array(small, "wavelet", target_bpp=6.0, progress=lambda d, t: legacy.append((d, t)))
    assert legacy[-1] == trials[-1]


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_bar_draws_on_a_terminal_only():
    from gancomp import progress

    tty = FakeTTY()
    with progress.bar("decoding", stream=tty, min_interval=0.0):
        for i in range(1, 5):
            progress.update(i, 4, "tiles")
    text = tty.getvalue()
    assert "decoding tiles" in text and "4/4" in text and "eta" in text
    pipe = io.StringIO()
    with progress.bar("decoding", stream=pipe):
        progress.update(1, 4, "tiles")
    with progress.bar("decoding", enabled=False, stream=FakeTTY()) as cb:
        assert cb is None
    assert pipe.getvalue() == ""


# -- fuzz: every codec's decoder behind a valid checksum -----------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@pytest.fixture(scope="module")
def every_codec_file(rgb_small):
    from gancomp.benchmarks.fuzz import sample_files
    from gancomp.codecs import available

    files = sample_files(sorted(available()) + ["wavelet-ratio"])
    assert {"wavelet", "kmeans", "lossless"} <= set(files)
    return sorted(files.items())


@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzz_every_decoder_with_valid_crc(every_codec_file, data):
    """A changed byte with a recomputed CRC reaches the codec's decoder: every outcome is
    gancomp's own error or an image of the declared size, within a time bound."""
    import time

    from gancomp import api
    from gancomp.benchmarks.fuzz import refix_crc
    from gancomp.errors import GanCompError

    name, good = data.draw(st.sampled_from(every_codec_file))
    b = bytearray(good)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(b) - 5))
        b[i] ^= data.draw(st.integers(1, 255))
    t = time.perf_counter()
    try:
        out = api.decode(refix_crc(bytes(b)))
        assert out.pixels.dtype == np.uint8
        assert out.pixels.shape == (out.header.height, out.header.width, out.header.channels)
    except GanCompError:
        pass
    assert time.perf_counter() - t < 30, name


@pytest.mark.parametrize("entropy", ["adaptive", "huffman"])
def test_lossless_never_decodes_corruption_to_other_pixels(rgb_small, entropy):
    from gancomp import api
    from gancomp.benchmarks.fuzz import classify, mutations

    data = api.encode_array(rgb_small[:12, :16], "lossless", entropy=entropy)
    ref = api.decode_array(data)
    for mutated, what in mutations(data, True, [0xFF], 0, 0):
        outcome, _slow = classify(mutated, ref, 10.0)
        assert outcome in ("error", "same"), (what, outcome)


def test_ctrl_c_during_a_long_fit_leaves_nothing(tmp_path):
    """SIGINT while `overfit` fits: exit 130, one line, no output file and no temporary file."""
    import signal
    import time

    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    out = tmp_path / "x.gcz"
    p = subprocess.Popen([sys.executable, "-m", "gancomp", "encode", str(DATA / "astronaut_128x96.png"),
                          str(out), "-c", "overfit", "--effort", "9", "--quiet"],
                         stderr=subprocess.PIPE, env=env,
                         # SIGINT may be inherited as ignored (background job of a shell)
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(5)
    assert p.poll() is None, "the fit ended before the signal; the test needs a longer fit"
    p.send_signal(signal.SIGINT)
    err = p.communicate(timeout=60)[1]
    assert p.returncode == 130, err
    assert b"Traceback" not in err and err.strip().count(b"\n") == 0, err
    assert list(tmp_path.iterdir()) == []
