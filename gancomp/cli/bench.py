"""``gancomp bench``: run a benchmark suite (gancomp.benchmarks.<suite>:main)."""

from __future__ import annotations

import importlib

import click

SUITES = {"kodak": "RD on Kodak: gancomp codecs vs JPEG, WebP, JPEG 2000, AVIF, JPEG XL, HEIC",
          "lossless": "lossless codecs (gancomp.benchmarks.lossless)",
          "faces": "face codecs (gancomp.benchmarks.faces)",
          "speed": "whole-process encode/decode time of gancomp vs AVIF (speed 6) and WebP"}


@click.command(context_settings={"help_option_names": ["-h", "--help"],
                                 "ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("dir", required=False, metavar="[DIR]")
@click.option("--suite", default="kodak", show_default=True, metavar="NAME",
              help="Benchmark suite: " + "; ".join(f"{k}: {v}" for k, v in SUITES.items()) + ".")
@click.option("--images", type=int, default=None, help="Use only the first N images.")
@click.option("--out", default=None, metavar="FILE",
              help="Markdown file whose section is replaced (default docs/BENCHMARKS.md).")
@click.option("--no-write", is_flag=True, help="Print the tables only; write no files.")
@click.pass_context
def bench(ctx: click.Context, dir: str | None, suite: str, images: int | None, out: str | None,
          no_write: bool) -> None:
    """Run benchmark suite --suite on DIR, print its tables and write its section of
    docs/BENCHMARKS.md with the exact command. Extra options go to the suite
    (kodak: --codecs LIST, --anchors CSV, --json FILE, --threads N).

    \b
      gancomp bench ../shared/data/kodak
      gancomp bench ../shared/data/kodak --images 4 --no-write
      gancomp bench --suite lossless ../shared/data/kodak
    """
    from ..errors import InputError

    if not suite.replace("_", "").isalnum():
        raise InputError(f"bad suite name {suite!r}")
    module = f"gancomp.benchmarks.{suite}"
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise InputError(f"suite {suite!r} needs a missing module: {exc.name}") from None
        raise InputError(f"unknown benchmark suite {suite!r} ({module} is not in this build); "
                         f"suites: {', '.join(SUITES)}") from None
    if not callable(getattr(mod, "main", None)):
        raise InputError(f"{module} has no main(argv)")
    argv: list[str] = [dir] if dir else []
    if images is not None:
        argv += ["--images", str(images)]
    if out is not None:
        argv += ["--out", out]
    if no_write:
        argv.append("--no-write")
    mod.main(argv + list(ctx.args))
