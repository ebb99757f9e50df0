"""Write benchmark results into docs/BENCHMARKS.md, one owned section per benchmark.

A section is the text between ``<!-- bench:KEY -->`` and ``<!-- /bench:KEY -->``; running a
benchmark replaces only its own section, so suites can be rerun independently.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .imageio import write_output

HEADER = "# Benchmarks\n\nEvery table below was produced by the command shown with it.\n"


def _markers(key: str) -> tuple[str, str]:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
        raise ValueError(f"bad section key {key!r}")
    return f"<!-- bench:{key} -->", f"<!-- /bench:{key} -->"


def write_section(path: str | os.PathLike, key: str, markdown: str) -> None:
    """Replace (or append) section KEY of the markdown file at PATH, atomically."""
    path = Path(path)
    start, end = _markers(key)
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    block = f"{start}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_output(str(path), text.encode("utf-8"), force=True, binary=False)


def read_section(path: str | os.PathLike, key: str) -> str | None:
    """The body of section KEY, or None if the file or section is absent."""
    path = Path(path)
    if not path.exists():
        return None
    start, end = _markers(key)
    m = re.search(re.escape(start) + r"\n?(.*?)\n?" + re.escape(end), path.read_text("utf-8"), re.S)
    return m.group(1) if m else None
