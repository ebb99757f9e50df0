"""The seed-001 tables for the ``ae`` family, with honest rates (real .gcz sizes):

- PSNR / SSIM at 1.5 bpp (16:1) of every variant against JPEG, JPEG 2000 and WebP, each
  codec's per-image curve interpolated linearly in bpp between its two measured points
  around 1.5 bpp (images whose curve does not reach 1.5 bpp are left out and counted);
- the RD sweep (mean bpp / PSNR / SSIM per quality) and BD-rates against JPEG;
- the progressive curve of ``passes=3, down=2`` (quality after each pass vs bytes of the file
  cut to that many passes);
- ``ft15``: ``finetune`` at only the two qualities whose plain points bracket 1.5 bpp
  (variant ``ae-ft15``: in the 1.5 bpp table, not in the sweep);
- the BD-rate of ``finetune`` against the plain CNN-AE over the same qualities, and of the
  hyperprior codec's ``adapt`` against plain hyperprior above 0.5 bpp;
- the ``down=2`` RD sweep (pass 1 at half size + the upsampling generator);
- ``upg``: the adversarial upsampler (``upsampler=gan``) against the L2 one on the same
  ``down=2`` files (identical latent streams, checked): PSNR, SSIM and SSIMULACRA2;
- a crop grid PNG (original, blocks coded alone as in the seed, overlapping windows, fine-
  tuned, GAN decoder, first pass, JPEG at about the same bpp).

ae points are scored on the encoder's reconstruction, which must equal the decoded file (checked
on the first image of each stage, every first-pass cut, and in the tests). Results
are cached per image in a JSON file, so an interrupted run resumes; the markdown section is
rewritten after each stage.

    python -m gancomp.benchmarks.ae --kodak /work/shared/data/kodak --train /work/shared/data/train
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

QS = (0.0, 25.0, 50.0, 75.0, 100.0)
FT_QS = (0.0, 25.0, 50.0, 75.0, 100.0)    # q0 since ft code 3: every image reaches 1.5 bpp
GAN_QS = (50.0, 100.0)
D2_QS = (0.0, 20.0, 40.0, 60.0)
UPG_QS = (20.0,)                   # down=2 at q20: about 0.25 bpp on Kodak
HP_QS = (60.0, 73.0, 87.0, 100.0)  # hp-a2 on Kodak: about 0.5-0.9 bpp
PROG_Q = 15.0                      # chosen on training photos: first pass about 0.2 bpp
PROG_DOWN = 2
PASSES = 3
CLASSIC = {"jpeg": (10, 30, 50, 70, 80, 90, 95),
           "webp": (10, 30, 50, 70, 80, 90, 95),
           "jpeg2000": None}
STAGES = ("ae", "classic", "ft", "ft15", "prog", "gan", "d2", "adapt", "upg")
# stages whose files depend only on these arrays (plus the code): reusable across models
# whose arrays are identical (--reuse)
STAGE_ARRAYS = {"ae": ("base.",), "ft": ("base.",), "ft15": ("base.",), "gan": ("base.", "gan."),
                "classic": (), "d2": ("base.", "up."), "prog": ("base.", "up.", "res.")}
STAGE_CODE = {"ft": 3}             # bumped when a stage's code changes (2: loop filter, 3: q0)
VARIANTS = {"ae": ["ae"], "classic": list(CLASSIC), "ft": ["ae-ft"], "ft15": ["ae-ft15"],
            "prog": ["ae-p3"],
            "gan": ["ae-gan"], "d2": ["ae-d2"], "adapt": ["hp", "hp-adapt"],
            "upg": ["ae-d2-l2", "ae-d2-gan"]}
TARGET = 1.5


def _load(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def _score(img: np.ndarray, rec: np.ndarray, nbytes: int) -> dict:
    from ..metrics import bpp, psnr, ssim

    return {"bpp": bpp(nbytes, img.shape[1], img.shape[0]), "psnr": psnr(img, rec),
            "ssim": ssim(img, rec)}


def encode_with_recons(img: np.ndarray, q: float, model: str | None, **opts):
    """The .gcz bytes of an ae encode and the encoder's reconstruction after each pass (what
    the decoder gives: tests/test_ae.py checks it, and :func:`run_ae` re-checks it by
    decoding the first image of each stage)."""
    from .. import api
    from ..codecs.ae import AECodec

    codec = AECodec()
    enc, recs = codec.encode_passes(img, q, model=model, **opts)
    data, _ = api._encode_once(codec, img, q, None, None, 8, {}, trial=lambda _q: enc)
    return data, recs


def run_ae(img: np.ndarray, q: float, model: str | None, check: bool = True, **opts) -> dict:
    """One ae point scored on the encoder's reconstruction; with ``check`` the file is also
    decoded and must give exactly that image."""
    from .. import api, container

    t0 = time.perf_counter()
    data, recs = encode_with_recons(img, q, model, **opts)
    t1 = time.perf_counter()
    r = _score(img, recs[-1], len(data))
    r.update(enc_s=t1 - t0)
    if check:
        if not np.array_equal(api.decode_array(data), recs[-1]):
            raise RuntimeError("ae decode differs from the encoder's reconstruction")
        r.update(dec_s=time.perf_counter() - t1)
    if opts.get("finetune"):
        r["ft_kept"] = int(container.unpack(data).params["f"])
    return r


def run_prog(img: np.ndarray, model: str | None, check: bool = True) -> list[dict]:
    """Per pass: size of the file cut to k passes and the quality of what it decodes to (the
    encoder's reconstructions; the one-pass cut is always decoded and compared, the full file
    too with ``check``)."""
    from .. import api
    from ..codecs.ae import truncate_passes

    data, recs = encode_with_recons(img, PROG_Q, model, passes=PASSES, down=PROG_DOWN)
    one = truncate_passes(data, 1)
    if not np.array_equal(api.decode_array(one, passes=1), recs[0]) or \
            (check and not np.array_equal(api.decode_array(data), recs[-1])):
        raise RuntimeError("progressive decode differs from the encoder's reconstruction")
    return [_score(img, recs[k - 1], len(truncate_passes(data, k))) for k in range(1, PASSES + 1)]


def run_ft(img: np.ndarray, model: str | None, check: bool, known: list[dict]) -> list[dict]:
    """``finetune`` at every quality of :data:`FT_QS`; points the ``ft15`` stage measured (same
    model, same code, deterministic encoder) are taken from it, except with ``check``, where
    every point is encoded again and must equal the known one (the check of that reuse)."""
    have = {p["q"]: p for p in known}
    out = []
    for q in FT_QS:
        if q in have and not check:
            out.append(dict(have[q]))
            continue
        r = dict(run_ae(img, q, model, check, finetune=True), q=q)
        if q in have and any(r[k] != have[q][k] for k in ("bpp", "psnr", "ssim", "ft_kept")):
            raise RuntimeError(f"ft at q{q:g} differs from the ft15 stage's point: {r} vs {have[q]}")
        out.append(r)
    return out


def run_upg(img: np.ndarray, q: float, model: str | None, check: bool) -> tuple[dict, dict]:
    """One ``down=2`` point decoded by the L2 upsampler and by the adversarial one: the two
    files must hold the same latent streams (so the same bits but for the ``u`` param); each
    scored with PSNR, SSIM and SSIMULACRA2 (when the ``ssimulacra2`` package is installed)."""
    from .. import api, container

    out = []
    files = []
    for up in ("mse", "gan"):
        data, recs = encode_with_recons(img, q, model, down=2, upsampler=up)
        if check and not np.array_equal(api.decode_array(data), recs[-1]):
            raise RuntimeError("ae decode differs from the encoder's reconstruction")
        r = dict(_score(img, recs[-1], len(data)), q=q)
        try:
            from .generative import ssimulacra2

            r["ssimulacra2"] = ssimulacra2(img, recs[-1])
        except ImportError:
            pass
        out.append(r)
        files.append(container.unpack(data).streams)
    if files[0] != files[1]:
        raise RuntimeError("upsampler=gan changed the latent streams")
    return out[0], out[1]


def run_hp(img: np.ndarray, q: float, adapt: bool) -> dict:
    """The default hyperprior model at quality q, with or without ``adapt``."""
    from .. import api

    data = api.encode_array(img, codec="hyperprior", quality=q, adapt=adapt)
    r = _score(img, api.decode_array(data), len(data))
    if adapt:
        r["kept"] = int(api.read_header(data).params.get("a", 0))
    return r


def run_classic(img: np.ndarray, name: str) -> list[dict]:
    from ..baselines import get

    c = get(name)
    qs = CLASSIC[name] or c.sweep_qualities()
    rows = []
    for q in qs:
        data = c.encode(img, q)
        rows.append(dict(_score(img, c.decode(data), len(data)), q=q))
    return rows


def at_rate(points: list[dict], target: float = TARGET) -> dict | None:
    """PSNR / SSIM at ``target`` bpp by linear interpolation between the bracketing points."""
    pts = sorted(points, key=lambda p: p["bpp"])
    for a, b in zip(pts, pts[1:]):
        if a["bpp"] <= target <= b["bpp"] and b["bpp"] > a["bpp"]:
            f = (target - a["bpp"]) / (b["bpp"] - a["bpp"])
            return {k: a[k] + f * (b[k] - a[k]) for k in ("psnr", "ssim")}
    return None


def bracket(points: list[dict], target: float = TARGET) -> list[float]:
    """The qualities of the two plain-ae points around ``target`` bpp (the ``ft15`` stage
    fine-tunes only these: the 1.5 bpp comparison at a fraction of the ``ft`` stage's CPU)."""
    pts = sorted(points, key=lambda p: p["bpp"])
    for a, b in zip(pts, pts[1:]):
        if a["bpp"] <= target <= b["bpp"]:
            return [a["q"], b["q"]]
    return []


def _mean_curve(per_image: list[list[dict]]) -> list[dict]:
    return [{k: float(np.mean([pts[i][k] for pts in per_image])) for k in ("bpp", "psnr", "ssim")}
            for i in range(len(per_image[0]))]


def _bd(anchor: list[dict], test: list[dict]) -> float:
    from ..bdrate import bd_rate
    from ..errors import GanCompError

    try:
        return bd_rate([p["bpp"] for p in anchor], [p["psnr"] for p in anchor],
                       [p["bpp"] for p in test], [p["psnr"] for p in test])
    except GanCompError:
        return float("nan")


def measure(files: list[Path], cache: dict, key: str, stages: tuple[str, ...], model: str | None,
            save, log) -> None:
    """Fill ``cache[key][image][variant]`` for every stage and image (skipping what is there)."""
    store = cache.setdefault(key, {})
    for stage in stages:
        for i, f in enumerate(files):
            check = i == 0                  # decode the first image's files and compare
            rec = store.setdefault(f.name, {})
            todo = list(VARIANTS[stage])
            if stage == "classic":   # a changed sweep is measured again
                todo = [v for v in todo if CLASSIC[v] is None or len(rec.get(v, [])) == len(CLASSIC[v])]
                if len(todo) == len(CLASSIC) and all(v in rec for v in todo):
                    continue
            elif all(v in rec for v in todo):
                continue
            img = _load(f)
            t0 = time.time()
            if stage == "ae":
                rec["ae"] = [dict(run_ae(img, q, model, check), q=q) for q in QS]
            elif stage == "classic":
                for name in CLASSIC:
                    rec[name] = run_classic(img, name)
            elif stage == "ft15":
                rec["ae-ft15"] = [dict(run_ae(img, q, model, check, finetune=True), q=q)
                                  for q in bracket(rec.get("ae", []))]
            elif stage == "ft":
                rec["ae-ft"] = run_ft(img, model, check, rec.get("ae-ft15", []))
            elif stage == "prog":
                rec["ae-p3"] = run_prog(img, model, check)
            elif stage == "gan":
                rec["ae-gan"] = [dict(run_ae(img, q, model, check, decoder="gan"), q=q)
                                 for q in GAN_QS]
            elif stage == "d2":
                rec["ae-d2"] = [dict(run_ae(img, q, model, check, down=2), q=q) for q in D2_QS]
            elif stage == "upg":
                pts = [run_upg(img, q, model, check) for q in UPG_QS]
                rec["ae-d2-l2"], rec["ae-d2-gan"] = [p[0] for p in pts], [p[1] for p in pts]
            elif stage == "adapt":
                rec["hp"] = [dict(run_hp(img, q, False), q=q) for q in HP_QS]
                rec["hp-adapt"] = [dict(run_hp(img, q, True), q=q) for q in HP_QS]
            save()
            log(f"{key} {stage} {f.name}: {time.time() - t0:.0f} s")
        yield stage


def tables(store: dict, label: str) -> str:
    """Markdown tables of one image set."""
    names = sorted(store)
    variants = ["ae", "ae-ft", "ae-ft15", "ae-d2", "ae-gan", "jpeg", "jpeg2000", "webp"]
    lines = [f"#### {label}: {len(names)} images", "",
             f"At {TARGET} bpp (16:1), per image interpolated between the two measured points "
             f"around {TARGET} bpp, then averaged (n = images whose curve reaches {TARGET} bpp; "
             f"compare rows with the same n):", "",
             "| codec | n | PSNR dB | SSIM |", "|---|---|---|---|"]
    for v in variants:
        vals = [at_rate(store[n][v]) for n in names if v in store[n]]
        ok = [x for x in vals if x]
        if vals:
            lines.append(f"| {v} | {len(ok)}/{len(vals)} | "
                         + (f"{np.mean([x['psnr'] for x in ok]):.2f} | {np.mean([x['ssim'] for x in ok]):.4f} |"
                            if ok else "- | - |"))
    # same-image comparison at 1.5 bpp: only images where ae and jpeg both reach it
    for v in ("ae", "ae-ft", "ae-ft15"):
        both = [n for n in names if v in store[n] and "jpeg" in store[n]
                and at_rate(store[n][v]) and at_rate(store[n]["jpeg"])]
        if both:
            d = [at_rate(store[n][v])["psnr"] - at_rate(store[n]["jpeg"])["psnr"] for n in both]
            ds = [at_rate(store[n][v])["ssim"] - at_rate(store[n]["jpeg"])["ssim"] for n in both]
            wins = sum(x > 0 for x in d)
            lines += ["", f"{v} minus JPEG at {TARGET} bpp on the {len(both)} images where both "
                          f"reach it: {np.mean(d):+.2f} dB PSNR ({wins} of {len(both)} images "
                          f"higher), {np.mean(ds):+.4f} SSIM."]
    lines += ["", "RD sweep (means over images; ae rows by quality, classical rows by their "
                  "own quality knob):", "", "| codec | quality | bpp | PSNR dB | SSIM |",
              "|---|---|---|---|---|"]
    curves = {}
    for v in variants:
        per = [store[n][v] for n in names if v in store[n]]
        if not per or v == "ae-ft15":           # per-image qualities: not a sweep
            continue
        curves[v] = _mean_curve(per)
        for p, c in zip(per[0], curves[v]):
            lines.append(f"| {v} | {p['q']:g} | {c['bpp']:.3f} | {c['psnr']:.2f} | {c['ssim']:.4f} |")
    if "jpeg" in curves:
        lines += ["", "BD-rate (PSNR) against JPEG over the overlapping range (negative = fewer "
                      "bits than JPEG):", "", "| codec | BD-rate vs JPEG |", "|---|---|"]
        for v, c in curves.items():
            if v != "jpeg" and len(c) >= 4:
                lines.append(f"| {v} | {_bd(curves['jpeg'], c):+.1f} % |")
    gan_names = [n for n in names if "ae-gan" in store[n] and "ae" in store[n]]
    if gan_names:
        lines += ["", f"GAN decoder vs the MSE decoder on the same {len(gan_names)} images and files' "
                      f"latents (same bits):", "", "| quality | bpp | PSNR ae | PSNR ae-gan | "
                      "SSIM ae | SSIM ae-gan |", "|---|---|---|---|---|---|"]
        for i, q in enumerate(GAN_QS):
            a_ = [next(p for p in store[n]["ae"] if p["q"] == q) for n in gan_names]
            g_ = [store[n]["ae-gan"][i] for n in gan_names]
            m = lambda xs, k: float(np.mean([x[k] for x in xs]))  # noqa: E731
            lines.append(f"| {q:g} | {m(g_, 'bpp'):.3f} | {m(a_, 'psnr'):.2f} | {m(g_, 'psnr'):.2f} | "
                         f"{m(a_, 'ssim'):.4f} | {m(g_, 'ssim'):.4f} |")
    ft_names = [n for n in names if "ae-ft" in store[n] and "ae" in store[n]]
    if ft_names:
        base = _mean_curve([[p for p in store[n]["ae"] if p["q"] in FT_QS] for n in ft_names])
        ft = _mean_curve([store[n]["ae-ft"] for n in ft_names])
        kept = [p["ft_kept"] for n in ft_names for p in store[n]["ae-ft"]]
        lines += ["", f"Fine-tuning (`finetune=true`) vs plain ae at qualities "
                      f"{', '.join(f'{q:g}' for q in FT_QS)} ({base[0]['bpp']:.2f}-"
                      f"{base[-1]['bpp']:.2f} bpp), {len(ft_names)} images: BD-rate "
                      f"**{_bd(base, ft):+.2f} %**; of {len(kept)} files, the last-layer refit "
                      f"was kept in {sum(k & 1 for k in kept)} and the loop filter in "
                      f"{sum(k >> 1 & 1 for k in kept)} (each dropped where it did not lower "
                      f"bpp + lambda * 255^2 * MSE). Mean bpp / PSNR per quality, plain -> "
                      f"fine-tuned: " + "; ".join(
                          f"{q:g}: {b['bpp']:.3f} / {b['psnr']:.2f} -> {f['bpp']:.3f} / "
                          f"{f['psnr']:.2f}" for q, b, f in zip(FT_QS, base, ft)) + "."]
    hp_names = [n for n in names if "hp-adapt" in store[n]]
    if hp_names:
        base = _mean_curve([store[n]["hp"] for n in hp_names])
        ad = _mean_curve([store[n]["hp-adapt"] for n in hp_names])
        kept = [p["kept"] for n in hp_names for p in store[n]["hp-adapt"]]
        lines += ["", f"Hyperprior `adapt=true` vs plain hyperprior (default model) at qualities "
                      f"{', '.join(f'{q:g}' for q in HP_QS)} ({base[0]['bpp']:.2f}-"
                      f"{base[-1]['bpp']:.2f} bpp), {len(hp_names)} images: BD-rate "
                      f"**{_bd(base, ad):+.2f} %**; of {len(kept)} files, the last-layer refit "
                      f"was kept in {sum(k & 1 for k in kept)} and the loop filter in "
                      f"{sum(k >> 1 & 1 for k in kept)}. Mean bpp / PSNR per quality, plain -> "
                      f"adapted: " + "; ".join(
                          f"{q:g}: {b['bpp']:.3f} / {b['psnr']:.2f} -> {f['bpp']:.3f} / "
                          f"{f['psnr']:.2f}" for q, b, f in zip(HP_QS, base, ad)) + "."]
    ug = [n for n in names if "ae-d2-gan" in store[n]]
    if ug:
        lines += ["", f"Adversarial upsampler (`down=2, upsampler=gan`: L2 + least-squares GAN) "
                      f"vs the L2 upsampler on the same files' latents (identical streams), "
                      f"{len(ug)} images; mean and images where the GAN one scores higher:", "",
                  "| quality | bpp | upsampler | PSNR dB | SSIM | SSIMULACRA2 |",
                  "|---|---|---|---|---|---|"]
        for i in range(min(len(store[n]["ae-d2-gan"]) for n in ug)):
            a_ = [store[n]["ae-d2-l2"][i] for n in ug]
            q = a_[0]["q"]
            g_ = [store[n]["ae-d2-gan"][i] for n in ug]
            for lab, xs in (("L2", a_), ("GAN", g_)):
                cells = []
                for k in ("psnr", "ssim", "ssimulacra2"):
                    if not all(k in x for x in xs):
                        cells.append("-")
                        continue
                    v = float(np.mean([x[k] for x in xs]))
                    f = f"{v:.4f}" if k == "ssim" else f"{v:.2f}"
                    if lab == "GAN":
                        f += f" ({sum(g[k] > a[k] for a, g in zip(a_, g_))}/{len(ug)})"
                    cells.append(f)
                lines.append(f"| {q:g} | {np.mean([x['bpp'] for x in xs]):.3f} | {lab} | "
                             + " | ".join(cells) + " |")
    pg = [store[n]["ae-p3"] for n in names if "ae-p3" in store[n]]
    if pg:
        c = _mean_curve(pg)
        lines += ["", f"Progressive file (`passes={PASSES}`, `down={PROG_DOWN}`, quality "
                      f"{PROG_Q:g}), {len(pg)} "
                      f"images: quality after each pass vs the bytes of the file cut to that "
                      f"pass (`truncate_passes`, `gancomp decode --passes k`):", "",
                  "| passes read | bpp | PSNR dB | SSIM |", "|---|---|---|---|"]
        for k, p in enumerate(c, 1):
            lines.append(f"| {k} | {p['bpp']:.3f} | {p['psnr']:.2f} | {p['ssim']:.4f} |")
        first = [x[0] for x in pg]
        lines += ["", f"First pass: {sum(p['psnr'] >= 25 for p in first)} of {len(first)} images "
                      f"decode to >= 25 dB, {sum(p['bpp'] <= 0.25 for p in first)} of "
                      f"{len(first)} from <= 0.25 bpp."]
    return "\n".join(lines)


def _busiest(img: np.ndarray, s: int) -> tuple[int, int]:
    """Top-left corner of the s x s window (on a 32-px grid) with the most gradient energy."""
    g = np.abs(np.diff(img.astype(np.float64).mean(2), axis=1))[:-1] + \
        np.abs(np.diff(img.astype(np.float64).mean(2), axis=0))[:, :-1]
    best = max(((float(g[y:y + s, x:x + s].sum()), y, x)
                for y in range(0, img.shape[0] - s, 32) for x in range(0, img.shape[1] - s, 32)))
    return best[1], best[2]


def grid(kodak: Path, model: str | None, out: Path, name: str = "kodim23.png",
         s: int = 128, q: float = 50.0) -> str:
    """A crop grid PNG; returns its caption."""
    from PIL import Image, ImageDraw

    from .. import api
    from ..baselines import get
    from ..codecs import ae as aemod
    from ..metrics import bpp as _bpp

    img = _load(kodak / name)
    y0, x0 = _busiest(img, s)
    data = api.encode_array(img, codec="ae", quality=q, model=model)
    rate = _bpp(len(data), img.shape[1], img.shape[0])
    cells = [("original", img)]
    tile, halo = aemod.TILE, aemod.HALO
    try:
        aemod.TILE, aemod.HALO = aemod.BLOCK, 0
        _, alone = aemod.AECodec().encode_passes(img, q, model=model)
    finally:
        aemod.TILE, aemod.HALO = tile, halo
    cells.append(("blocks alone", alone[0]))
    cells.append((f"ae {rate:.2f} bpp", api.decode_array(data)))
    cells.append(("ae finetune", api.decode_array(api.encode_array(img, codec="ae", quality=q, model=model, finetune=True))))
    cells.append(("ae gan", api.decode_array(api.encode_array(img, codec="ae", quality=q, model=model, decoder="gan"))))
    d2 = api.encode_array(img, codec="ae", quality=q, model=model, down=2)
    cells.append((f"ae down=2 {_bpp(len(d2), img.shape[1], img.shape[0]):.2f} bpp", api.decode_array(d2)))
    from ..errors import InputError

    try:
        d2g = api.encode_array(img, codec="ae", quality=q, model=model, down=2, upsampler="gan")
        cells.append(("down=2 GAN upsampler", api.decode_array(d2g)))
    except InputError:                       # a model without the adversarial upsampler
        d2g = None
    jpeg = get("jpeg")
    jq = min(range(5, 96), key=lambda v: abs(len(jpeg.encode(img, v)) * 8 / img.shape[0] / img.shape[1] - rate))
    jd = jpeg.encode(img, jq)
    cells.append((f"jpeg {_bpp(len(jd), img.shape[1], img.shape[0]):.2f} bpp", jpeg.decode(jd)))
    zoom = 2
    W = s * zoom
    canvas = Image.new("RGB", (W * len(cells), W + 16), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (label, a) in enumerate(cells):
        crop = Image.fromarray(a[y0:y0 + s, x0:x0 + s]).resize((W, W), Image.NEAREST)
        canvas.paste(crop, (i * W, 16))
        draw.text((i * W + 3, 2), label, fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return (f"{name} crop {s}x{s} at ({x0}, {y0}), 2x nearest zoom, ae quality {q:g}: original; "
            "the seed's scheme (each 32x32 block coded and decoded alone, same model); the "
            "ae codec (overlapping windows); fine-tuned; GAN decoder; down=2 (half-size latent + "
            "upsampling generator, fewer bits); " + ("the same down=2 file's latents decoded by the "
            "adversarial upsampler (upsampler=gan); " if d2g else "") +
            "JPEG at the closest bpp of the ae cell.")


def reuse(cache: dict, old_path: Path, model_id: str, sha: str, kodak: list[Path], log) -> None:
    """Copy from another model's benchmark cache the stages whose files depend only on arrays
    that are identical in both models (and on unchanged code), after re-measuring one point
    to confirm the copy."""
    from ..weights import load

    old = json.loads(old_path.read_text())
    oid, osha = old["model"].split(":")
    new_arrays, _ = load(model_id, sha)
    old_arrays, _ = load(oid, osha)
    versions = old.get("versions", {})
    ok = []
    for stage, prefixes in STAGE_ARRAYS.items():
        same = all(k in new_arrays and np.array_equal(v, new_arrays[k])
                   for k, v in old_arrays.items() if k.startswith(prefixes)) if prefixes else True
        if same and versions.get(stage, 1) == STAGE_CODE.get(stage, 1):
            ok.append(stage)
    note = ""
    if "ae" in ok and kodak:
        rec = old.get("kodak", {}).get(kodak[0].name, {}).get("ae")
        if rec:
            img = _load(kodak[0])
            again = run_ae(img, QS[2], model_id, check=True)
            was = next(p for p in rec if p["q"] == QS[2])
            extra = round((was["bpp"] - again["bpp"]) * img.shape[0] * img.shape[1] / 8)
            if again["psnr"] != was["psnr"] or not 0 <= extra <= 16:
                raise RuntimeError(f"reuse check failed: {again} != {was}")
            note = (f"; check on {kodak[0].name} q{QS[2]:g}: same pixels, the reused file "
                    f"{extra} bytes larger (container header of the older run)") if extra else ""
    for key in ("kodak", "held"):
        for name, rec in old.get(key, {}).items():
            dst = cache.setdefault(key, {}).setdefault(name, {})
            for stage in ok:
                for v in VARIANTS[stage]:
                    if v in rec and v not in dst:
                        dst[v] = rec[v]
    cache["reused"] = f"stages {', '.join(ok)} from {oid} (identical arrays{note})"
    log(f"reused {ok} from {old_path}")


def main(argv: list[str] | None = None) -> int:
    import torch

    torch.set_num_threads(1)
    p = argparse.ArgumentParser(prog="python -m gancomp.benchmarks.ae", description=__doc__.splitlines()[0])
    p.add_argument("--kodak", default="/work/shared/data/kodak")
    p.add_argument("--train", default="/work/shared/data/train", help="held-back photos come from here")
    p.add_argument("--held", type=int, default=10, help="how many held-back photos")
    p.add_argument("--limit", type=int, default=0, help="only the first N Kodak images")
    p.add_argument("--model", default=None)
    p.add_argument("--stages", default=",".join(STAGES))
    p.add_argument("--few", type=int, default=8,
                   help="GAN stage on only the first N images of each set")
    p.add_argument("--reuse", default=None,
                   help="another model's cache: copy stages whose arrays are identical")
    p.add_argument("--cache", default=None, help="default runs/ae-bench-<model>.json")
    p.add_argument("--doc", default="docs/BENCHMARKS.md")
    p.add_argument("--grid", default=None, help="default docs/ae_grid_<model>.png")
    p.add_argument("--no-grid", action="store_true", help="skip the crop grid")
    p.add_argument("--note", default="", help="a sentence for the section (how it was run)")
    a = p.parse_args(argv)
    from ..codecs.ae import _model_ref
    from ..report import write_section
    from ..train.data import list_images, split_held_out

    model_id, sha = _model_ref(a.model)
    cache_path = Path(a.cache or f"runs/ae-bench-{model_id}.json")
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    cache = cache if cache.get("model") == f"{model_id}:{sha}" else {"model": f"{model_id}:{sha}"}
    cache["versions"] = {st: STAGE_CODE.get(st, 1) for st in STAGES}

    def save() -> None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_text(json.dumps(cache))

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    kodak = sorted(Path(a.kodak).glob("*.png"))[: a.limit or None]
    held = split_held_out(list_images(a.train))[1][: a.held]
    stages = tuple(s for s in a.stages.split(",") if s)
    args = list(argv if argv is not None else sys.argv[1:])
    if "--note" in args:                    # the note is printed as text, not in the command
        del args[args.index("--note"):args.index("--note") + 2]
    cmd = "python -m gancomp.benchmarks.ae " + " ".join(shlex.quote(x) for x in args
                                                        if not x.startswith("--note="))
    caption = ""
    grid_path = Path(a.grid or f"docs/ae_grid_{model_id}.png")

    def write() -> None:
        parts = [f"### ae family (seed 001), model `{model_id}` (SHA-256 {sha[:12]}…)", "",
                 f"`{cmd}`", "",
                 "Real .gcz sizes. ae points are scored on the encoder's reconstruction, which "
                 "equals the decoded file: checked here by decoding every file of the first "
                 "image of each stage and set (and every first-pass cut), and by tests/test_ae.py. "
                 "Hyperprior points are decoded. One torch thread on a shared 2-core box." + (f" Reused: {cache['reused']}." if cache.get("reused")
                                         else "") + (f" {a.note}" if a.note else ""), ""]
        for key, label in (("kodak", "Kodak"), ("held", "Held-back training photos (unseen)")):
            if cache.get(key):
                parts += [tables(cache[key], label), ""]
        if caption:
            parts += [f"![ae crops]({grid_path.name})", "", caption]
        write_section(a.doc, f"ae-{model_id}", "\n".join(parts))

    if a.reuse:
        reuse(cache, Path(a.reuse), model_id, sha, kodak, log)
        save()
    for stage in stages:
        few = a.few if stage == "gan" else 0
        for key, files in (("kodak", kodak), ("held", held)):
            for _ in measure(files[: few or None], cache, key, (stage,), model_id, save, log):
                write()
    if not a.no_grid:
        caption = grid(Path(a.kodak), model_id, grid_path)
    elif grid_path.is_file():
        caption = cache.get("grid_caption", "")
    cache["grid_caption"] = caption
    save()
    write()
    log(f"wrote {a.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
