"""Model registry: find weights by id, verify their SHA-256, load safetensors (never pickles).

Weights live in the package folder ``gancomp.models`` (the repository's top-level
``models/``) and in any folder listed in ``$GANCOMP_MODEL_PATH`` (os.pathsep-separated).
Each ``NAME.safetensors`` has a JSON model card ``NAME.json`` with at least
``id``, ``codec``, ``file``, ``sha256``, ``config``, ``data``, ``steps`` and ``results``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from .errors import ModelError

MAX_WEIGHTS_BYTES = 16 * 1024 * 1024

# Registered models: .gcz 1.1 files name these by a small integer instead of id + hash
# (formats/gcz.md). Each entry pins the full SHA-256, which the loader verifies; a retrained
# model gets a new number. Numbers are never reused or changed.
REGISTERED: dict[int, tuple[str, str]] = {
    1: ("ganinv-faces64", "77e7c9744ed8f02cd6906cbdf384efa9c2dbf7447b3c7ad17c1524724e15e721"),
    2: ("hp-a1", "d46081490ae7e8ed4976a1232a406056d8091eceba4f0942223fbf41e043c69e"),
    3: ("lossless-mlp-v1", "43dd23e59b86f380b1b9012df7bae5ad2a7d7cd8c642280b0afaf5724042a720"),
    4: ("lossless-mlp-v2", "300420caa8e6637bdf133d3ee46137eb884b74360ea6e382b007e5c5707501f3"),
    5: ("ganinv-faces64-v2", "2edacac3d86bebbc1cdd00344ae6e031df8bedd31b6234ccc952c1b832e63f59"),
    6: ("hp-a2", "59269896e128d291a2e43819691df9fe02ad91cc05d09212c00af10f7e2d84a1"),
}


def registered_ref(model_id: str, sha256_hex: str) -> int:
    """The registered number of (model_id, full SHA-256), or 0 when it has none."""
    for ref, (mid, sha) in REGISTERED.items():
        if mid == model_id and sha == sha256_hex.lower():
            return ref
    return 0


def resolve_ref(ref: int) -> tuple[str, str] | None:
    """(model id, full SHA-256) of a registered number, None when unknown to this build."""
    return REGISTERED.get(ref)


@dataclass(frozen=True)
class ModelCard:
    """A model's card plus where its weights file is."""

    id: str
    codec: str
    path: Path
    sha256: str
    card: dict[str, Any]

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def model_dirs() -> list[Path]:
    """Folders searched for models, in priority order."""
    dirs = [Path(p) for p in os.environ.get("GANCOMP_MODEL_PATH", "").split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parent.parent / "models")  # source checkout
    try:
        from importlib.resources import files

        dirs.append(Path(str(files("gancomp.models"))))
    except (ModuleNotFoundError, TypeError):
        pass
    seen, out = set(), []
    for d in dirs:
        if d.is_dir() and d.resolve() not in seen:
            seen.add(d.resolve())
            out.append(d)
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def list_models() -> list[ModelCard]:
    """All model cards found, first occurrence of each id wins."""
    found: dict[str, ModelCard] = {}
    for d in model_dirs():
        for card_path in sorted(d.glob("*.json")):
            try:
                card = json.loads(card_path.read_text())
                mid, codec, file, sha = card["id"], card["codec"], card["file"], card["sha256"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            path = card_path.parent / file
            if mid not in found and path.is_file():
                found[mid] = ModelCard(mid, codec, path, sha, card)
    return list(found.values())


def find(model_id: str) -> ModelCard:
    """The card of ``model_id``; ModelError when it is not installed."""
    for m in list_models():
        if m.id == model_id:
            return m
    raise ModelError(f"model {model_id!r} is not installed (see `gancomp models`)")


def default_for(codec: str) -> ModelCard | None:
    """The model a codec uses when none is named: the card marked ``default``, else the
    first one for the codec, else None."""
    cards = [m for m in list_models() if m.codec == codec]
    for m in cards:
        if m.card.get("default"):
            return m
    return cards[0] if cards else None


def model_ref(model: str | None, codec: str) -> tuple[str, str]:
    """(id, SHA-256) of the model an encoder will use: ``model`` by id, else ``codec``'s
    default; ModelError when none is installed or the model belongs to another codec."""
    card = find(model) if model else default_for(codec)
    if card is None:
        raise ModelError(f"no {codec} model is installed (see `gancomp models`)")
    if card.codec != codec:
        raise ModelError(f"model {card.id!r} is for codec {card.codec!r}, not {codec}")
    return card.id, card.sha256


def card_for_file(model_id: str, sha: str) -> ModelCard:
    """The installed card a file names (id + SHA-256 prefix); ModelError when the installed
    model of that id has other weights."""
    card = find(model_id)
    if not card.sha256.startswith(sha.lower()):
        raise ModelError(f"this file needs model {model_id!r} with SHA-256 {sha}…, "
                         f"but the installed {model_id!r} has {card.sha256[:16]}…")
    return card


@lru_cache(maxsize=8)
def _load_verified(path: str, sha256: str, mtime: float) -> dict:
    from safetensors.numpy import load_file

    p = Path(path)
    if p.stat().st_size > MAX_WEIGHTS_BYTES:
        raise ModelError(f"weights file {p.name} exceeds {MAX_WEIGHTS_BYTES} bytes")
    actual = sha256_file(p)
    if actual != sha256:
        raise ModelError(f"weights file {p.name} fails its SHA-256 check "
                         f"(card {sha256[:16]}…, file {actual[:16]}…)")
    return load_file(str(p))


def load(model_id: str, expect_sha256: str = "") -> tuple[dict, ModelCard]:
    """Load verified numpy arrays of ``model_id``. When ``expect_sha256`` (or a prefix of it,
    as stored in .gcz files) is given, refuse weights whose hash differs."""
    m = find(model_id)
    if expect_sha256 and not m.sha256.startswith(expect_sha256.lower()):
        raise ModelError(f"this file needs model {model_id!r} with SHA-256 {expect_sha256}…, "
                         f"but the installed {model_id!r} has {m.sha256[:16]}…")
    arrays = _load_verified(str(m.path), m.sha256, m.path.stat().st_mtime)
    return dict(arrays), m


def save(arrays: dict, card: dict, folder: Path, name: str) -> Path:
    """Write ``name.safetensors`` and its card ``name.json`` (sha256 and file filled in)."""
    import numpy as np
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.safetensors"
    # safetensors.numpy writes a non-contiguous array's memory, not its values: copy first
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path))
    if path.stat().st_size > MAX_WEIGHTS_BYTES:
        path.unlink()
        raise ModelError(f"{name}: weights exceed {MAX_WEIGHTS_BYTES} bytes; store fp16 or shrink")
    card = dict(card, file=path.name, sha256=sha256_file(path))
    for key in ("id", "codec", "config", "data", "steps", "results"):
        card.setdefault(key, None)
    (folder / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    return path


def runtime(factory: Callable[..., Any], model_id: str, sha: str, *args: Any) -> Any:
    """``factory(arrays, *args)`` for model ``model_id`` (ModelError unless its SHA-256 starts
    with ``sha``), cached per model file and arguments: the codecs' one model loader."""
    card = card_for_file(model_id, sha)
    return cached_runtime(factory, model_id, card.sha256, str(card.path),
                          card.path.stat().st_mtime, *args)


@lru_cache(maxsize=4)
def cached_runtime(factory: Callable[..., Any], model_id: str, sha: str, path: str,
                   mtime: float, *args: Any) -> Any:
    arrays, _ = load(model_id, sha)
    return factory(arrays, *args)
