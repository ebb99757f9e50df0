"""gancomp: learned and generative image compression with the .gcz container.

Library entry points live in :mod:`gancomp.api` (``encode``, ``decode``); they are
imported lazily here so that ``import gancomp`` and ``gancomp --help`` stay fast.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["encode", "decode", "__version__"]


def __getattr__(name: str):
    if name in ("encode", "decode", "encode_file", "decode_file"):
        from . import api

        return getattr(api, name)
    raise AttributeError(name)
