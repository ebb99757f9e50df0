"""Shared fixtures: small images shipped in tests/data (no ../shared needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def rgb() -> np.ndarray:
    return np.asarray(Image.open(DATA / "astronaut_128x96.png").convert("RGB"))


@pytest.fixture(scope="session")
def rgb_small() -> np.ndarray:
    return np.asarray(Image.open(DATA / "chelsea_80x64.png").convert("RGB"))


@pytest.fixture(scope="session")
def gray() -> np.ndarray:
    return np.asarray(Image.open(DATA / "camera_gray_64.png").convert("L"))[:, :, None]


def run_cli(*args: str, input: bytes | None = None, env: dict | None = None,
            cwd: str | None = None) -> subprocess.CompletedProcess:
    """Run `python -m gancomp ARGS` in a fresh process."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-m", "gancomp", *args], input=input,
                          capture_output=True, env=e, cwd=cwd, timeout=300)
