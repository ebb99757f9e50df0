"""Progress of long work, reported by the library and shown (or not) by whoever called it.

Codecs and searches call :func:`update` where the amount of work is known::

    from .. import progress
    for k, tile in enumerate(tiles):
        ...
        progress.update(k + 1, len(tiles), "tiles")

``update(done, total, label)`` costs one context-variable lookup when nobody listens, so it
is cheap to call per row or per tile. Listeners are plain callables following
:class:`Callback` (``fn(done, total, label)``), installed for a block of code::

    with progress.listen(lambda done, total, label: print(label, done, total)):
        api.encode_array(pixels, "hyperprior")

Listeners nest (an outer bisection over quality and the codec's tiles inside each trial are
reported under their own labels) and are per thread/task (a :mod:`contextvars` variable), so
parallel encodes do not mix. :func:`bar` is the command line's listener: a rich progress bar
with a time estimate per label on stderr, shown only when stderr is a terminal and not
``--quiet``; before the first report it shows a spinner with the given text.

Labels in use: ``"tiles"`` (hyperprior, encode and decode), ``"rows"`` (lossless decode:
pixel diagonals), ``"pixels"`` (lossless encode: the prediction pass), ``"trials"`` (api
--target-bpp/--target-psnr bisection), ``"steps"`` (gan-inversion optimization).
"""

from __future__ import annotations

import contextvars
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Protocol


class Callback(Protocol):
    """A progress listener: ``done`` of ``total`` units of the work named ``label``."""

    def __call__(self, done: int, total: int, label: str) -> None: ...


_LISTENERS: contextvars.ContextVar[tuple[Callback, ...]] = contextvars.ContextVar(
    "gancomp_progress", default=())


def update(done: int, total: int, label: str = "work") -> None:
    """Report progress to every listener of the current context (no-op without one)."""
    listeners = _LISTENERS.get()
    for fn in listeners:
        fn(done, total, label)


@contextmanager
def listen(fn: Callback | None) -> Iterator[None]:
    """Call ``fn(done, total, label)`` for every :func:`update` inside the block."""
    if fn is None:
        yield
        return
    token = _LISTENERS.set(_LISTENERS.get() + (fn,))
    try:
        yield
    finally:
        _LISTENERS.reset(token)


def adapt(fn: Callable[[int, int], None] | None, label: str) -> Callback | None:
    """A listener that forwards one label's updates to a two-argument ``fn(done, total)``
    (the older ``progress=`` keyword of :func:`gancomp.api.encode_array`)."""
    if fn is None:
        return None

    def cb(done: int, total: int, lab: str) -> None:
        if lab == label:
            fn(done, total)

    return cb


@contextmanager
def bar(text: str, enabled: bool = True, stream=None, min_interval: float = 0.1
        ) -> Iterator[Callback | None]:
    """The command line's listener: a spinner with ``text``, then one rich bar per label
    (done/total, elapsed, time remaining) on stderr. Disabled (nothing printed, nothing
    imported) when ``enabled`` is false or the stream is not a terminal."""
    stream = sys.stderr if stream is None else stream
    if not enabled or not stream.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn,
                               TextColumn, TimeElapsedColumn, TimeRemainingColumn)

    prog = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
                    TimeRemainingColumn(), console=Console(file=stream), transient=True)
    tasks: dict[str, int] = {}
    prev: dict[str, int] = {}
    last = [0.0]
    spin = prog.add_task(text, total=None)

    def cb(done: int, total: int, label: str) -> None:
        if label not in tasks:
            tasks[label] = prog.add_task(f"{text} {label}", total=total)
            prog.update(spin, visible=False)
        elif done < prev[label]:  # a new pass of the same label (the next search trial)
            prog.reset(tasks[label], total=total)
        prev[label] = done
        now = time.monotonic()
        if done < total and now - last[0] < min_interval:  # rich redraws are not free
            return
        last[0] = now
        prog.update(tasks[label], completed=done, total=total)

    with prog, listen(cb):
        yield cb
