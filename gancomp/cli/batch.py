"""``gancomp batch``: encode or decode a whole folder tree on all cores or on Ray."""

from __future__ import annotations

import json
import os
import sys

import click

from .common import note, parse_extra

EXIT_SOME_FAILED = 1
EXIT_INTERRUPTED = 130


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _size(n: float) -> str:
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{sign}{n:.0f} {unit}" if unit == "B" else f"{sign}{n:.1f} {unit}"
        n /= 1024
    return f"{n}"


class _Progress:
    """A rich progress bar on stderr (files, bytes saved, time left) on a terminal; one
    line per file otherwise, so logs show progress too."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.bar = None
        self.task = None
        self.saved = 0

    def start(self, total: int, todo: int) -> None:
        if self.quiet:
            return
        if total != todo:
            note(f"{total - todo} of {total} file(s) already done or refused; {todo} to do")
        if not self.tty:
            return
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.bar = Progress(TextColumn("{task.description:<24.24}"), BarColumn(),
                            MofNCompleteColumn(), TextColumn("saved {task.fields[saved]}"),
                            TextColumn("{task.fields[failed]}"), TimeElapsedColumn(),
                            TextColumn("left"), TimeRemainingColumn(),
                            console=Console(stderr=True), transient=False)
        self.bar.start()
        self.task = self.bar.add_task("batch", total=total, saved="0 B", failed="")
        self.failed = 0

    def outcome(self, o, n: int, total: int) -> None:
        if o.status in ("done", "skipped"):
            self.saved += o.in_bytes - o.out_bytes
        if self.quiet:
            return
        notes = o.notes if o.status == "done" else []
        if self.bar is not None:
            for n_ in notes:  # what was not kept (frames, bit depth) is never silent
                self.bar.console.print(f"gancomp: {o.rel}: {n_}")
            self.failed += o.status == "failed"
            self.bar.update(self.task, completed=n, description=o.rel, saved=_size(self.saved),
                            failed=f"[red]{self.failed} failed" if self.failed else "")
            return
        if o.status == "failed":
            note(f"[{n}/{total}] {o.rel}: FAILED: {o.error}")
        elif o.status == "done":
            bpp = f", {o.bpp:.3f} bpp" if o.bpp is not None else ""
            note(f"[{n}/{total}] {o.rel} -> {_size(o.out_bytes)}{bpp}, {o.seconds:.1f} s"
                 + "".join(f"; {n_}" for n_ in notes))

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _summary(report, to_stderr: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    t = report.totals()
    console = Console(stderr=to_stderr, width=None if (sys.stderr if to_stderr else sys.stdout).isatty() else 120)
    tab = Table(title=f"batch: {report.mode}, {report.engine}, {report.workers} worker(s)"
                + (" — INTERRUPTED" if report.interrupted else ""), title_justify="left",
                show_header=False)
    tab.add_column("what")
    tab.add_column("value", justify="right")
    rows = [("files", str(t["files"])), ("done", str(t["done"])), ("skipped (already done)", str(t["skipped"])),
            ("failed", str(t["failed"])), ("bytes before", _size(t["bytes_before"])),
            ("bytes after", _size(t["bytes_after"])), ("saved", _size(t["bytes_saved"])),
            ("bpp (.gcz files)", f"{t['bpp']:.4f}" if t["bpp"] is not None else "n/a"),
            ("mean PSNR (dB)", f"{t['psnr_mean']:.2f}" if t["psnr_mean"] is not None else "n/a"),
            ("wall time", f"{t['wall_s']:.1f} s"),
            ("files/s", f"{t['files_per_s']:.2f}" if t["files_per_s"] else "n/a")]
    for k, v in rows:
        tab.add_row(k, v)
    console.print(tab)
    failed = [o for o in report.files if o.status == "failed"]
    if failed:
        ft = Table(title="failures", title_justify="left")
        ft.add_column("file")
        ft.add_column("reason")
        for o in failed:
            ft.add_row(o.rel, o.error or "")
        console.print(ft)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("source", metavar="IN")
@click.argument("out_dir", metavar="OUT")
@click.option("--decode", "decode_mode", is_flag=True,
              help="Decode the .gcz files of IN to images instead of encoding.")
@click.option("-c", "--codec", default="default", show_default=True, help="Codec name.")
@click.option("-q", "--quality", type=float, default=None, help="Quality 0..100.")
@click.option("--target-bpp", type=float, default=None, help="Per file: best quality <= this bpp.")
@click.option("--target-psnr", type=float, default=None, help="Per file: smallest file >= this PSNR.")
@click.option("--ratio", type=float, default=None, help="Compression ratio (wavelet, gan-inversion).")
@click.option("--colors", type=int, default=None, help="Palette size (kmeans).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="Where learned codecs run.")
@click.option("-x", "--opt", "extra", multiple=True, metavar="KEY=VALUE",
              help="Codec-specific option (repeatable).")
@click.option("--metadata", type=click.Choice(["none", "icc", "all"]), default="icc",
              show_default=True, help="Metadata to keep when encoding.")
@click.option("--format", "fmt", type=click.Choice(["png", "tiff", "bmp", "ppm", "webp"]),
              default="png", show_default=True, help="Image format written by --decode.")
@click.option("-w", "--workers", type=click.IntRange(1, 1024), default=None,
              help="Worker processes (default: all CPUs this process may use).")
@click.option("--ray", "ray", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Run on Ray: a local instance, or the cluster at ADDRESS (--ray=ADDRESS, "
                   "e.g. --ray=auto or --ray=ray://head:10001). Needs gancomp[ray].")
@click.option("--psnr", is_flag=True, help="Also measure each encoded file's PSNR (one more decode).")
@click.option("-f", "--force", is_flag=True, help="Redo files whose output already exists.")
@click.option("--json", "json_path", metavar="FILE", default=None,
              help="Write the report as JSON ('-' = stdout, then nothing else goes there).")
@click.option("--quiet", is_flag=True, help="No progress or summary; errors only.")
def batch(source: str, out_dir: str, decode_mode: bool, codec: str, quality: float | None,
          target_bpp: float | None, target_psnr: float | None, ratio: float | None,
          colors: int | None, device: str | None, extra: tuple[str, ...], metadata: str, fmt: str,
          workers: int | None, ray: str | None, psnr: bool, force: bool, json_path: str | None,
          quiet: bool) -> None:
    """Encode every image under IN (a folder, '-' for paths on stdin, or @LIST for a file
    of paths) into the same tree under OUT, or with --decode every .gcz back to images.

    \b
      gancomp batch photos/ photos-gcz/ -q 60 --workers 2
      find photos -name '*.jpg' | gancomp batch - out/ --json report.json
      gancomp batch photos-gcz/ restored/ --decode
      gancomp batch photos/ out/ --ray=auto        # on the Ray cluster this machine joined

    Rerunning continues where a run stopped: outputs that pass their checksum are skipped
    (--force redoes them). One bad file never stops the batch. Exit code: 0 when every file
    is done or skipped, 1 when any failed (they are listed), 2 for bad arguments, 130 when
    interrupted.
    """
    from .. import batch as bt
    from ..errors import InputError

    settings = bt.Settings(
        mode="decode" if decode_mode else "encode", codec=codec, quality=quality,
        target_bpp=target_bpp, target_psnr=target_psnr,
        options=({"device": device} if device else {}) if decode_mode else
        {k: v for k, v in dict(parse_extra(extra), ratio=ratio, colors=colors,
                               device=device).items() if v is not None},
        metadata=metadata, fmt=fmt, psnr=psnr)
    if json_path and json_path != "-" and not os.path.isdir(os.path.dirname(os.path.abspath(json_path))):
        raise InputError(f"--json {json_path}: folder does not exist")
    jobs = bt.plan(source, out_dir, settings)
    if workers is None:
        workers = _cpus()
    os.makedirs(out_dir, exist_ok=True)
    import signal

    def _term(_sig, _frame):  # a scheduler's kill stops as cleanly as Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    prog = _Progress(quiet)
    try:
        report = bt.run(jobs, settings, workers=workers, ray=ray, force=force,
                        on_start=prog.start, on_outcome=prog.outcome)
    finally:
        prog.stop()
    if json_path:
        text = json.dumps(report.to_dict(), indent=1, default=str)
        if json_path == "-":
            click.echo(text)
        else:
            from ..imageio import write_output

            write_output(json_path, (text + "\n").encode(), force=True)
    if not quiet:
        _summary(report, to_stderr=json_path == "-")
    if report.interrupted:
        note("interrupted; run the same command again to continue")
        sys.exit(EXIT_INTERRUPTED)
    if report.count("failed"):
        sys.exit(EXIT_SOME_FAILED)
