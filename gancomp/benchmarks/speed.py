"""Whole-process speed: ``gancomp encode`` / ``gancomp decode`` against AVIF (speed 6) and
WebP, each timed as a fresh process on the same images, side by side.

The issue's bar for the default codec: its whole-process encode and decode are each no slower
than an AVIF encode at speed 6 (avifenc's default). Without the avifenc tool, AVIF runs as a
Python process through imagecodecs/libavif (speed 6, one thread) -- Python start-up and
imports included, as for gancomp. Each command runs ``--repeat`` times; the median counts.
Writes the ``speed`` section of docs/BENCHMARKS.md.

    python -m gancomp.benchmarks.speed ../shared/data/kodak --images 6
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from ..errors import GanCompError, InputError

SECTION = "speed"

_PY_ENC = ("import sys, numpy as np, imagecodecs\nfrom PIL import Image\n"
           "im = np.asarray(Image.open(sys.argv[1]).convert('RGB'))\n"
           "open(sys.argv[2], 'wb').write(imagecodecs.{fn}(im, {args}))\n")
_PY_DEC = ("import sys, numpy as np, imagecodecs\nfrom PIL import Image\n"
           "Image.fromarray(np.asarray(imagecodecs.{fn}(open(sys.argv[1], 'rb').read()))"
           "[..., :3]).save(sys.argv[2])\n")


def _cpu_children() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds user + sys) of one whole process."""
    c, t = _cpu_children(), time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, env=env, timeout=600)
    dt, dc = time.perf_counter() - t, _cpu_children() - c
    if r.returncode != 0:
        raise GanCompError(f"{shlex.join(cmd)} failed: {r.stderr.decode(errors='replace')[-300:]}")
    return dt, dc


def _bytecode_cache(env: dict[str, str], tmp: Path) -> None:
    """Let the timed processes cache compiled bytecode, as after a normal ``pip install``
    (which byte-compiles every module). Without this, an editable install under
    PYTHONDONTWRITEBYTECODE=1 (this project's sandboxes set it) recompiles gancomp's own
    modules from source in every process (~40 ms) while the installed libraries the AVIF and
    WebP contenders import are already compiled. The cache lives in the temporary folder."""
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")


def commands(tmp: Path, img: Path, codecs: list[tuple[str, float]], avif_q: int, webp_q: int):
    """(label, encode cmd, decode cmd, coded file, decoded file) for every contender."""
    py = sys.executable
    out = []
    for name, q in codecs:
        f = tmp / f"{img.stem}.{name}.gcz"
        out.append((f"gancomp {name} -q {q:g}",
                    [py, "-m", "gancomp", "encode", str(img), str(f), "-c", name, "-q", str(q), "-f"],
                    [py, "-m", "gancomp", "decode", str(f), str(tmp / f"dec_{name}.png"), "-f"],
                    f, tmp / f"dec_{name}.png"))
    f = tmp / f"{img.stem}.avif"
    if shutil.which("avifenc") and shutil.which("avifdec"):
        q_arg = ["-q", str(avif_q)]
        out.append((f"avifenc -s 6 -q {avif_q} (tool)",
                    ["avifenc", "-s", "6", "-j", "1", "-y", "420", *q_arg, str(img), str(f)],
                    ["avifdec", "-j", "1", str(f), str(tmp / "dec_avif.png")], f,
                    tmp / "dec_avif.png"))
    else:
        enc = _PY_ENC.format(fn="avif_encode", args=f"level={avif_q}, speed=6, "
                             "pixelformat='yuv420', numthreads=1")
        out.append((f"AVIF speed 6 q {avif_q} (python + imagecodecs)",
                    [py, "-c", enc, str(img), str(f)],
                    [py, "-c", _PY_DEC.format(fn="avif_decode"), str(f),
                     str(tmp / "dec_avif.png")], f, tmp / "dec_avif.png"))
    f = tmp / f"{img.stem}.webp"
    enc = _PY_ENC.format(fn="webp_encode", args=f"level={webp_q}, method=4, lossless=False")
    out.append((f"WebP q {webp_q} (python + imagecodecs)", [py, "-c", enc, str(img), str(f)],
                [py, "-c", _PY_DEC.format(fn="webp_decode"), str(f), str(tmp / "dec_webp.png")],
                f, tmp / "dec_webp.png"))
    return out


def run(img_dir: str, *, images: int = 6, repeat: int = 3, codecs: list[tuple[str, float]],
        avif_q: int = 50, webp_q: int = 75, out: str = "docs/BENCHMARKS.md", write: bool = True,
        command: str = "", echo=print) -> str:
    """Time every contender on the first ``images`` images; print and write the table."""
    import numpy as np

    from .. import compare as cmp
    from ..report import write_section

    paths = cmp.image_paths([img_dir])[:images]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    res: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        _bytecode_cache(env, tmp)
        for i, img in enumerate(paths):
            src = cmp.load_rgb(img)
            cmds = commands(tmp, img, codecs, avif_q, webp_q)
            times: dict[str, dict[str, list[tuple[float, float]]]] = {
                label: {"enc": [], "dec": []} for label, *_ in cmds}
            if i == 0:   # warm-up, not timed: writes the bytecode cache, touches the files
                for label, enc, dec, f, _ in cmds:
                    _timed(enc, env)
                    _timed(dec, env)
            for _ in range(repeat):   # contenders interleaved: each repeat runs all of them
                for label, enc, dec, f, _ in cmds:
                    times[label]["enc"].append(_timed(enc, env))
                    times[label]["dec"].append(_timed(dec, env))
            for label, enc, dec, f, decoded in cmds:
                r = res.setdefault(label, {"enc": [], "dec": [], "enc_cpu": [], "dec_cpu": [],
                                           "bpp": [], "psnr": []})
                for k in ("enc", "dec"):
                    r[k].append(float(np.median([w for w, _ in times[label][k]])))
                    r[k + "_cpu"].append(float(np.median([c for _, c in times[label][k]])))
                r["bpp"].append(f.stat().st_size * 8 / (src.shape[0] * src.shape[1]))
                r["psnr"].append(cmp.metrics.psnr(src, cmp.load_rgb(decoded)))
            echo(f"speed: {i + 1}/{len(paths)} {img.name}", file=sys.stderr)
    rows = [[k, f"{np.median(v['enc_cpu']):.3f}", f"{np.median(v['dec_cpu']):.3f}",
             f"{np.median(v['enc']):.2f}", f"{np.median(v['dec']):.2f}",
             f"{np.mean(v['bpp']):.3f}", f"{np.mean(v['psnr']):.2f}"] for k, v in res.items()]
    md = [f"## Whole-process speed ({len(paths)} images of {Path(img_dir).name})", "",
          f"Command: `{command}`", "", f"Machine: {cmp.machine()}.", "",
          f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Each encode and "
          f"decode runs as a fresh process (start-up and imports included), {repeat} times; "
          "the table gives the median over images of the per-image median, in seconds: CPU "
          "time of the whole process (user + sys, from getrusage of the children) and wall "
          "time. Python bytecode is cached as after a normal install (one untimed warm-up run "
          "of every command first). OMP_NUM_THREADS=1, one thread everywhere. The machine is "
          "shared, so wall "
          "times are noisy (judge on CPU time); the contenders ran interleaved, each repeat "
          "running all of them on the same image.", "",
          cmp.markdown_table(["command", "encode CPU s", "decode CPU s", "encode wall s",
                              "decode wall s", "bpp (mean)", "PSNR dB (mean)"], rows)]
    text = "\n".join(md)
    echo(text)
    if write:
        write_section(out, SECTION, text)
    return text


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="gancomp bench --suite speed", description=__doc__.split("\n")[0])
    p.add_argument("dir", nargs="?", default=os.environ.get("GANCOMP_KODAK"))
    p.add_argument("--images", type=int, default=6)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--codecs", default="wavelet2:50,wavelet:50",
                   help="gancomp contenders as NAME:QUALITY, comma separated")
    p.add_argument("--avif-q", type=int, default=50)
    p.add_argument("--webp-q", type=int, default=75)
    p.add_argument("--out", default="docs/BENCHMARKS.md")
    p.add_argument("--no-write", action="store_true")
    a = p.parse_args(argv)
    if not a.dir:
        raise InputError("give the image folder (or set GANCOMP_KODAK)")
    try:
        codecs = [(c.split(":")[0], float(c.split(":")[1])) for c in a.codecs.split(",")]
    except (IndexError, ValueError):
        raise InputError(f"--codecs wants NAME:QUALITY,... got {a.codecs!r}") from None
    run(a.dir, images=a.images, repeat=a.repeat, codecs=codecs, avif_q=a.avif_q,
        webp_q=a.webp_q, out=a.out, write=not a.no_write,
        command=shlex.join(["gancomp", "bench", "--suite", "speed",
                            *(argv if argv is not None else sys.argv[1:])]))


if __name__ == "__main__":
    try:
        main()
    except GanCompError as exc:
        print(f"gancomp: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
