"""Corruption behind a valid checksum: what each codec's decoder does with it.

The container's CRC catches any change of a file (tests/test_container.py). This benchmark
goes behind it: it changes bytes of a valid file, recomputes the CRC, and decodes. Each
outcome is one of

- ``error``: a gancomp error (FormatError, ModelError, ...), one line for the user;
- ``same``: the change made no difference to the pixels (unused bits, e.g. sign padding);
- ``different``: a valid image that differs from the original (undetected corruption);
- ``crash``: any other exception (a bug);
- ``slow``: took longer than ``--bound`` seconds (counted besides its outcome).

Two modes: ``--flips`` changes every byte of the file in turn (XOR with each of --masks),
``--random N`` makes N random 1-4 byte changes (seeded). Run::

    python -m gancomp.benchmarks.fuzz --codecs wavelet,kmeans --flips
    python -m gancomp.benchmarks.fuzz --random 2000 --seed 1

It prints one table row per codec (counts per outcome) and optionally writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .. import api
from ..errors import GanCompError

OUTCOMES = ("error", "same", "different", "crash", "slow")
DATA = Path(__file__).resolve().parents[2] / "tests" / "data"


def refix_crc(data: bytes) -> bytes:
    """Recompute the container's trailing checksum (CRC-32, or CRC-16 for small .gcz 1.1
    files) over everything before it."""
    from ..container import refix_checksum

    return refix_checksum(data)


def sample_files(codecs: list[str]) -> dict[str, bytes]:
    """One small valid file per codec (codecs whose model is missing are skipped)."""
    from PIL import Image

    rgb = np.asarray(Image.open(DATA / "chelsea_80x64.png").convert("RGB"))[:24, :32]
    face = np.asarray(Image.open(DATA / "chelsea_80x64.png").convert("RGB")
                      .resize((64, 64)))
    out: dict[str, bytes] = {}
    for c in codecs:
        try:
            if c == "gan-inversion":
                out[c] = api.encode_array(face, c, steps=2)
            elif c == "hyperprior":
                out[c] = api.encode_array(rgb, c, 50, tile=64)
            elif c == "wavelet-ratio":
                out[c] = api.encode_array(rgb, "wavelet", ratio=8)
            else:
                out[c] = api.encode_array(rgb, c)
        except GanCompError as exc:
            print(f"fuzz: {c} skipped ({exc})", file=sys.stderr)
    return out


def classify(data: bytes, ref: np.ndarray, bound: float) -> tuple[str, bool]:
    """(outcome, slow) of decoding ``data``."""
    t = time.perf_counter()
    try:
        px = api.decode(data).pixels
        what = "same" if px.shape == ref.shape and np.array_equal(px, ref) else "different"
    except GanCompError:
        what = "error"
    except Exception:  # noqa: BLE001  (this is what the benchmark looks for)
        what = "crash"
    return what, time.perf_counter() - t > bound


def mutations(data: bytes, flips: bool, masks: list[int], n_random: int, seed: int):
    """Mutated copies (CRC recomputed) and a short description of each."""
    body = len(data) - 4
    if flips:
        for i in range(body):
            for m in masks:
                b = bytearray(data)
                b[i] ^= m
                yield refix_crc(bytes(b)), f"byte {i} ^ {m:#04x}"
    rng = np.random.default_rng(seed)
    for _ in range(n_random):
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 5))):
            b[int(rng.integers(0, body))] = int(rng.integers(0, 256))
        yield refix_crc(bytes(b)), "random"


def run(codecs: list[str], flips: bool, masks: list[int], n_random: int, seed: int,
        bound: float, examples: int = 3) -> dict[str, dict]:
    files = sample_files(codecs)
    results: dict[str, dict] = {}
    for name, data in files.items():
        ref = api.decode(data).pixels
        counts = dict.fromkeys(OUTCOMES, 0)
        seen: dict[str, list[str]] = {"different": [], "crash": []}
        t0 = time.perf_counter()
        for mutated, what in mutations(data, flips, masks, n_random, seed):
            if mutated == data:
                continue
            outcome, slow = classify(mutated, ref, bound)
            counts[outcome] += 1
            counts["slow"] += slow
            if outcome in seen and len(seen[outcome]) < examples:
                seen[outcome].append(what)
        results[name] = {"bytes": len(data), "counts": counts, "examples": seen,
                         "seconds": round(time.perf_counter() - t0, 1)}
    return results


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m gancomp.benchmarks.fuzz", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codecs", default="wavelet,wavelet-ratio,kmeans,lossless,hyperprior,gan-inversion")
    ap.add_argument("--flips", action="store_true", help="change every byte (XOR --masks)")
    ap.add_argument("--masks", default="0xff", help="comma list of XOR masks for --flips")
    ap.add_argument("--random", type=int, default=0, help="random 1-4 byte changes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bound", type=float, default=5.0, help="seconds before a decode is slow")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args(argv)
    if not a.flips and not a.random:
        ap.error("give --flips and/or --random N")
    import torch

    torch.set_num_threads(1)
    res = run(a.codecs.split(","), a.flips, [int(m, 0) for m in a.masks.split(",")], a.random,
              a.seed, a.bound)
    print(f"{'codec':<14} {'bytes':>6} " + " ".join(f"{o:>9}" for o in OUTCOMES) + "  seconds")
    for name, r in res.items():
        print(f"{name:<14} {r['bytes']:>6} " + " ".join(f"{r['counts'][o]:>9}" for o in OUTCOMES)
              + f"  {r['seconds']:>7}")
        for k, ex in r["examples"].items():
            if ex:
                print(f"  {k}: {', '.join(ex)}")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
