"""The optional compiled loops of wavelet2 (:mod:`gancomp._w2c`) and the switch between them
and the numpy code, which gives the same bytes and pixels.

``_w2c`` is built by setuptools at install time where a C compiler is present (setup.py; the
install goes on without it). ``ENABLED`` is true when it was built, unless the environment sets
``GANCOMP_W2_NUMPY=1``; tests flip it to run both paths.
"""

from __future__ import annotations

import os

try:
    from . import _w2c
except ImportError:        # no compiler at install time: the numpy code runs
    _w2c = None

ENABLED = _w2c is not None and os.environ.get("GANCOMP_W2_NUMPY", "") in ("", "0")


def on() -> bool:
    """Whether the compiled loops are used now."""
    return ENABLED
