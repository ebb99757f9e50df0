"""Codec registry. Every module in this package that defines a codec registers it with
:func:`register`; modules are discovered on first use so adding a codec needs no edit here.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import Codec, Encoded, Params, available, codec_by_id, get_codec, register

# The codec used when the user names none. It changes only when a codec beats it on Kodak.
DEFAULT_CODEC = "wavelet2"

# Where a file's codec id lives, so decoding imports only that codec (a hint: an id missing
# here, or a wrong entry, falls back to importing every codec module; tests check it).
MODULE_OF_ID = {6: "wavelet2", 1: "wavelet"}

_DISCOVERED = False


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_") and mod.name != "base":
            importlib.import_module(f"{__name__}.{mod.name}")


__all__ = ["Codec", "Encoded", "Params", "available", "codec_by_id", "get_codec", "register",
           "DEFAULT_CODEC"]
