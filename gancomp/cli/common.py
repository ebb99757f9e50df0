"""Small helpers shared by the subcommands: option parsing, progress, messages."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

import click

from ..errors import InputError


def parse_extra(pairs: tuple[str, ...]) -> dict:
    """Turn repeated ``-x key=value`` into a dict with int/float/bool/str values."""
    out: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise InputError(f"-x expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        key = key.strip().replace("-", "_")
        if not key.isidentifier():
            raise InputError(f"bad option name {key!r}")
        low = value.lower()
        if low in ("true", "yes", "on"):
            out[key] = True
        elif low in ("false", "no", "off"):
            out[key] = False
        else:
            for conv in (int, float):
                try:
                    out[key] = conv(value)
                    break
                except ValueError:
                    continue
            else:
                out[key] = value
    return out


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
