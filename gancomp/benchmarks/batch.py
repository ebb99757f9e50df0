"""Throughput of ``gancomp batch`` (1 vs N workers, and Ray) and the speed of ``gancomp compare``.

    python -m gancomp.benchmarks.batch ../shared/data/kodak --workers 1,2 --ray \\
        -- -c wavelet --target-psnr 32
    python -m gancomp.benchmarks.batch --compare ../shared/data/kodak/kodim0{1,2,3}.png \\
        --codecs default,jpeg,webp,avif --baseline /tmp/old-gancomp

Each configuration runs the real command (``python -m gancomp batch ... --json``) in a fresh
process, so start-up (imports, worker spawn, model loading) is counted, as a user pays it.
Reported per run: wall seconds, CPU seconds of the process tree (user + sys, from
``getrusage(RUSAGE_CHILDREN)``; Ray's workers are not our children, so n/a there), the mean
1-minute load average while it ran and how many other processes were busy (this machine is
shared: read the ratios with that in mind), and whether the output files are byte-identical
to those of the first configuration. ``--compare`` times ``gancomp compare`` the same way,
optionally also with an older gancomp source tree (``--baseline DIR``, put first on PYTHONPATH).
Writes section ``batch`` (or ``compare-speed``) of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Timed:
    label: str
    wall: float
    cpu: float | None
    load: float
    busy_others: float
    rc: int
    report: dict | None = None
    digest: str | None = None


def _busy_processes(mine: set[int]) -> int:
    """Processes (not ours) in state R right now: what else competes for the CPUs."""
    n = 0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) in mine:
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2] == "R":
            n += 1
    return n


def _descendants(pid: int) -> set[int]:
    out = {os.getpid(), pid}
    try:
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    st = (d / "stat").read_text()
                    if int(st[st.rfind(")") + 2:].split()[1]) in out:
                        out.add(int(d.name))
                except (OSError, ValueError, IndexError):
                    pass
    except OSError:
        pass
    return out


def timed_run(label: str, cmd: list[str], env: dict[str, str], cpu: bool = True,
              cwd: str | None = None) -> Timed:
    """Run a command (in ``cwd``: not the repository, whose gancomp ``-m`` would import
    first), sampling the machine's load every second."""
    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         cwd=cwd or tempfile.gettempdir())

    def sample() -> None:
        while not stop.wait(1.0):
            samples.append((os.getloadavg()[0], _busy_processes(_descendants(p.pid))))

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = p.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    th.join()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if p.returncode not in (0, 1):
        sys.stderr.write(err.decode(errors="replace")[-2000:])
    rep = None
    try:
        rep = json.loads(out) if out.strip().startswith(b"{") else None
    except ValueError:
        pass
    load = sum(s[0] for s in samples) / len(samples) if samples else os.getloadavg()[0]
    busy = sum(s[1] for s in samples) / len(samples) if samples else float("nan")
    return Timed(label, wall, used if cpu else None, load, busy, p.returncode, rep)


def tree_digest(folder: Path) -> str:
    """SHA-256 over the relative names and bytes of every file under folder."""
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f.relative_to(folder).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def _env(pythonpath: str | None = None) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (pythonpath and str(Path(pythonpath).resolve()), str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def bench_batch(src: str, workers: list[int], ray: bool, extra: list[str], limit: int | None
                ) -> tuple[list[Timed], str]:
    with tempfile.TemporaryDirectory(prefix="gancomp-batchbench-") as tmp:
        source = str(Path(src).resolve())
        if limit:
            from ..compare import image_paths

            lst = Path(tmp) / "list.txt"
            lst.write_text("\n".join(str(p.resolve()) for p in image_paths([source])[:limit]) + "\n")
            source = f"@{lst}"
        runs = [(f"local, --workers {w}", ["--workers", str(w)], True) for w in workers]
        if ray:
            runs.append((f"Ray (local instance), --workers {max(workers)}",
                         ["--workers", str(max(workers)), "--ray"], False))
        results = []
        for k, (label, opts, cpu) in enumerate(runs):
            out = Path(tmp) / f"out{k}"
            cmd = [sys.executable, "-m", "gancomp", "batch", source, str(out), *extra, *opts,
                   "--json", "-", "--quiet"]
            print(f"running: {label}: {shlex.join(cmd)}", file=sys.stderr, flush=True)
            t = timed_run(label, cmd, _env(), cpu)
            t.digest = tree_digest(out) if out.exists() else None
            results.append(t)
            print(f"  {t.wall:.1f} s wall, load {t.load:.1f}", file=sys.stderr, flush=True)
        return results, source


def autogroup_note() -> str:
    """A sentence on Linux's autogroup scheduling, which caps a session's CPU share."""
    try:
        on = Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return ""
    return (" The kernel's autogroup scheduling is on: CPU time is shared per session, not per "
            "process, so when other sessions keep the cores busy more workers cannot get more "
            "of them." if on else " The kernel's autogroup scheduling is off.")


def batch_markdown(results: list[Timed], command: str, extra: list[str]) -> str:
    base = results[0]
    rows = []
    for t in results:
        tot = (t.report or {}).get("totals", {})
        rows.append([
            t.label, str(tot.get("done", "?")), str(tot.get("failed", "?")), f"{t.wall:.1f}",
            f"{tot['done'] / t.wall:.3f}" if tot.get("done") else "n/a",
            f"{base.wall / t.wall:.2f}x" if tot.get("done") else "failed",
            f"{t.cpu:.1f}" if t.cpu is not None else "n/a",
            f"{t.load:.1f}", f"{t.busy_others:.1f}",
            "reference" if t is base else ("yes" if t.digest and t.digest == base.digest else "NO")])
    from ..compare import machine, markdown_table

    return "\n".join([
        "## gancomp batch throughput", "",
        f"Command: `{command}` (each row runs `gancomp batch IN OUT {shlex.join(extra)} "
        "--json - --quiet` plus the options named in the row, in a fresh process).", "",
        f"Machine: {machine()}.", "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Wall time includes "
        "start-up and worker spawn; CPU is user+sys of the whole process tree. The machine is "
        "shared: *load* is the mean 1-minute load average during the run and *busy others* the "
        "mean number of other runnable processes, so a speed-up here mixes parallelism with "
        "the share of the CPUs the run could get." + autogroup_note(), "",
        markdown_table(["run", "done", "failed", "wall s", "files/s", "speed-up", "CPU s",
                        "load", "busy others", "same bytes as row 1"], rows)])


def bench_compare(images: list[str], codecs: str, baseline: str | None,
                  baseline_images: int | None = None) -> list[Timed]:
    """Time compare now (1 and 2 workers) and, with ``baseline``, the older source tree on
    the first ``baseline_images`` images (and now on the same subset, to set them side by side)."""
    runs: list[tuple[str, str | None, int, list[str]]] = []
    if baseline:
        sub = images[:baseline_images] if baseline_images else images
        runs.append((f"before ({len(sub)} image(s))", baseline, 1, sub))
        if len(sub) != len(images):
            runs.append((f"now ({len(sub)} image(s))", None, 1, sub))
    runs.append((f"now ({len(images)} image(s)), --workers 1", None, 1, images))
    runs.append((f"now ({len(images)} image(s)), --workers 2", None, 2, images))
    out = []
    with tempfile.TemporaryDirectory(prefix="gancomp-cmpbench-") as tmp:
        for k, (label, pp, w, imgs) in enumerate(runs):
            imgs = [str(Path(i).resolve()) for i in imgs]
            js = Path(tmp) / f"r{k}.json"
            cmd = [sys.executable, "-m", "gancomp", "compare", *imgs, "--codecs", codecs,
                   "--json", str(js), "--quiet"]
            if w > 1:
                cmd += ["--workers", str(w)]
            print(f"running: {label}", file=sys.stderr, flush=True)
            t = timed_run(label, cmd, _env(pp))
            if js.exists():
                d = json.loads(js.read_text())
                t.report = {"images": len(imgs), "points": len(d["rows"]),
                            "ms_ssim": [r["ms_ssim"] for r in d["rows"]],
                            "bpp": [r["bpp"] for r in d["rows"]]}
            out.append(t)
            print(f"  {t.wall:.1f} s wall, {t.cpu:.1f} s CPU, load {t.load:.1f}", file=sys.stderr,
                  flush=True)
    return out


def compare_markdown(results: list[Timed], command: str, images: list[str], codecs: str) -> str:
    from ..compare import machine, markdown_table

    rows = []
    for t in results:
        r = t.report or {}
        ref = next((u for u in results if (u.report or {}).get("images") == r.get("images")), t)
        rr = ref.report or {}
        same = "reference" if t is ref else (
            "yes" if r.get("bpp") == rr.get("bpp") and _close(r.get("ms_ssim"), rr.get("ms_ssim"))
            else "NO")
        rows.append([t.label, str(r.get("points", "?")), f"{t.wall:.1f}",
                     f"{t.cpu:.1f}" if t.cpu is not None else "n/a", f"{t.load:.1f}",
                     f"{t.busy_others:.1f}", same])
    return "\n".join([
        "## gancomp compare speed", "",
        f"Command: `{command}`; each row runs `gancomp compare IMAGES --codecs {codecs} --json J "
        f"--quiet` in a fresh process with OMP_NUM_THREADS=1, on "
        f"{', '.join(Path(i).name for i in images)} (or the first of them).", "",
        f"Machine: {machine()}.", "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. CPU is user+sys of the "
        "process tree; on this shared machine CPU seconds are the steadier measure (wall time "
        "depends on what else runs: see load).", "",
        markdown_table(["run", "points", "wall s", "CPU s", "load", "busy others",
                        "same bpp and MS-SSIM (1e-9) as the first run on those images"], rows)])


def _close(a, b) -> bool:
    if a is None or b is None or len(a) != len(b):
        return False
    return all((x is None and y is None) or (x is not None and y is not None and abs(x - y) <= 1e-9)
               for x, y in zip(a, b))


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = shlex.join(["python", "-m", "gancomp.benchmarks.batch", *argv])
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", help="a folder for batch; images for --compare")
    ap.add_argument("--workers", default="1,2", help="worker counts to run (batch)")
    ap.add_argument("--ray", action="store_true", help="also run on a local Ray instance")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N images (batch)")
    ap.add_argument("--compare", action="store_true", help="time gancomp compare instead")
    ap.add_argument("--codecs", default="default,jpeg,webp,avif")
    ap.add_argument("--baseline", default=None, metavar="DIR",
                    help="also time compare with the gancomp source tree in DIR (before)")
    ap.add_argument("--baseline-images", type=int, default=None, metavar="N",
                    help="run the baseline on the first N images only (it is slow)")
    ap.add_argument("--report", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args(argv)
    if a.compare:
        res = compare_markdown(bench_compare(a.inputs, a.codecs, a.baseline, a.baseline_images),
                               command, a.inputs,
                               a.codecs)
        key = "compare-speed"
    else:
        results, _ = bench_batch(a.inputs[0], [int(w) for w in a.workers.split(",")], a.ray,
                                 extra, a.limit)
        res = batch_markdown(results, command, extra)
        key = "batch"
    print(res)
    if not a.no_write:
        from ..report import write_section

        write_section(a.report, key, res)


if __name__ == "__main__":
    main()
