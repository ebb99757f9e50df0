"""Small helpers shared by the subcommands: option parsing, progress, messages."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

import click

from ..errors import InputError


def keep_freed_memory() -> None:
    """Let this (short, one-image) process reuse the memory it frees instead of handing it
    back to the system and faulting fresh zeroed pages in again (glibc malloc only; elsewhere
    nothing): freed blocks stay in the heap (no trimming) and arrays up to 32 MiB come from
    the heap, not from fresh mmaps. Cuts the page faults of ``gancomp decode`` of a Kodak image
    by about a third (sys time ~0.04-0.08 s less); the pixels and bytes do not change."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
        mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        mallopt(-1, 1 << 30)       # M_TRIM_THRESHOLD
        mallopt(-3, 32 << 20)      # M_MMAP_THRESHOLD
    except (OSError, AttributeError, TypeError):   # not glibc: keep the defaults
        pass


def parse_extra(pairs: tuple[str, ...]) -> dict:
    """Turn repeated ``-x key=value`` into a dict of strings; the codec's declared options
    (:class:`gancomp.codecs.base.Option`) type and range-check them."""
    out: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise InputError(f"-x expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        key = key.strip().replace("-", "_")
        if not key.isidentifier():
            raise InputError(f"bad option name {key!r}")
        out[key] = value.strip()
    return out


def codec_options_help(width: int = 100) -> list[str]:
    """One block per codec listing its declared options (``-x NAME=VALUE`` or the named
    flag), generated from the declarations, for ``encode --help`` and ``codecs -v``."""
    import textwrap

    from ..codecs import available
    from ..codecs.base import COMMON_OPTIONS

    lines: list[str] = ["all codecs:"]
    for o in COMMON_OPTIONS:
        lines += textwrap.wrap(o.describe(), width, initial_indent="  ", subsequent_indent="      ")
    for name, cls in available().items():
        lines.append(f"{name}:")
        for title, opts in (("encode", cls.encode_options), ("decode", cls.decode_options)):
            for o in opts:
                lines += textwrap.wrap(f"{o.describe()}" + (" [decode]" if title == "decode" else ""),
                                       width, initial_indent="  ", subsequent_indent="      ")
        if not cls.encode_options and not cls.decode_options:
            lines.append("  (no options)")
    return lines


def note(msg: str, quiet: bool = False) -> None:
    """A message for the user on stderr (never on stdout, which may carry data)."""
    if not quiet:
        click.echo(f"gancomp: {msg}", err=True)


@contextmanager
def spinner(text: str, enabled: bool) -> Iterator[None]:
    """A rich spinner on stderr while a long step runs (only on a terminal)."""
    if not enabled or not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(text):
        yield


def describe_channels(c: int) -> str:
    return {1: "gray", 2: "gray+alpha", 3: "RGB", 4: "RGBA"}.get(c, f"{c}ch")


class CodecOptionsCommand(click.Command):
    """A command whose help ends with every codec's declared options (generated)."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        with formatter.section("Codec options (-x NAME=VALUE, or the named flag)"):
            for line in codec_options_help(max(40, (formatter.width or 80) - 4)):
                formatter.write(" " * formatter.current_indent + line + "\n")
