"""RD of the ``overfit`` codec per effort on a fixed Kodak subset, beside WebP, AVIF, HEIC and
JPEG XL measured in the same run on the same pixels; encode seconds per image per effort.

Sets: ``full`` = kodim01, 04, 05, 08, 14, 19, 21, 23 at full size; ``crops`` = 384x256 centre
crops of kodim01, 05, 14, 23. Encodes are slow, so every finished point is cached as a JSON
file (plus its .gcz) under --cache and skipped on the next run: the suite is resumable and
its report covers whatever has finished (the table says how many images each point has).

    gancomp bench --suite overfit ../shared/data/kodak --set crops --efforts 1,3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shlex
import sys
import time
from pathlib import Path

import numpy as np

SECTION = "overfit"
SETS = {"full": ["kodim01", "kodim04", "kodim05", "kodim08", "kodim14", "kodim19", "kodim21",
                 "kodim23"],
        "crops": ["kodim01", "kodim05", "kodim14", "kodim23"]}
CROP = (256, 384)
QUALITIES = (15.0, 40.0, 65.0, 90.0)
BASELINES = {"webp": (0, 5, 15, 30, 50, 70, 85, 95), "avif": (5, 12, 22, 35, 50, 62, 72, 80),
             "heic": (5, 12, 20, 27, 34, 41, 48), "jpegxl": None}
DEFAULT_CACHE = "docs/overfit_bench"
# the encoder recipe of new points. Points without "recipe" are "v1": codec version 1 (random
# starts + warm-up); "v2": codec version 2 starting from models/overfit-init-v1 (fitted at a
# wrong lambda); "v3": codec version 2 starting from models/overfit-init-v2. Each is kept and
# reported separately. "v4": v3's recipe and starting networks with the faster fitting loop of
# session 3 (gancomp.overfit.fastops: same mathematics, other float32 rounding, so other bytes).
RECIPES = ("v1", "v2", "v3", "v4")
RECIPE = RECIPES[-1]


def load(folder: Path, name: str, which: str) -> np.ndarray:
    from PIL import Image

    img = np.asarray(Image.open(folder / f"{name}.png").convert("RGB"))
    if which == "crops":
        h, w = img.shape[:2]
        if h > w:  # portrait Kodak images: crop 256x384 the other way round
            ch, cw = CROP[1], CROP[0]
        else:
            ch, cw = CROP
        y, x = (h - ch) // 2, (w - cw) // 2
        img = img[y:y + ch, x:x + cw]
    return np.ascontiguousarray(img)


def point(img: np.ndarray, q: float, effort: int, device: str | None, extra: dict) -> dict:
    """Encode and decode one image; the score comes from the decoded file."""
    from .. import api
    from ..metrics import psnr

    t0, c0 = time.perf_counter(), time.process_time()
    res = api.encode_array_ex(img, "overfit", q, effort=effort, device=device, **extra)
    t1, c1 = time.perf_counter(), time.process_time()
    rec = api.decode(res.data).pixels
    t2, c2 = time.perf_counter(), time.process_time()
    h, w = img.shape[:2]
    return {"bpp": len(res.data) * 8 / (h * w), "psnr": float(psnr(img, rec)), "bytes": len(res.data),
            "enc_s": t1 - t0, "dec_s": t2 - t1, "enc_cpu_s": c1 - c0, "dec_cpu_s": c2 - c1,
            "notes": res.notes,
            "decoded_sha256": hashlib.sha256(rec.tobytes()).hexdigest()}, res.data


def baseline_curve(name: str, imgs: list[np.ndarray]) -> tuple[list[float], list[float]]:
    """Mean (bpp, PSNR) per quality of a classical codec over the images."""
    from .. import baselines
    from ..metrics import psnr

    c = baselines.get(name)
    qs = BASELINES[name] if BASELINES[name] else c.sweep_qualities()
    rates, psnrs = [], []
    for q in qs:
        b, p = [], []
        for img in imgs:
            data = c.encode(img, q)
            b.append(len(data) * 8 / (img.shape[0] * img.shape[1]))
            p.append(psnr(img, c.decode(data)))
        rates.append(float(np.mean(b)))
        psnrs.append(float(np.mean(p)))
    return rates, psnrs


def _bd(r1, p1, r2, p2) -> float:
    from ..bdrate import bd_rate
    from ..errors import GanCompError

    try:
        return bd_rate(r1, p1, r2, p2)
    except GanCompError:
        return float("nan")


def speed(folder: Path, iters: int = 12) -> str:
    """CPU seconds per fitting iteration and model GFLOPS at 768x512 (kodim23), both
    architectures, and on its 384x256 benchmark crop (the small architecture the crops use),
    plus the peak memory of one 1024x1024 tile; a markdown table."""
    import resource

    from ..overfit import fit as F
    from ..overfit.model import Arch

    img = load(folder, "kodim23", "full")
    crop = load(folder, "kodim23", "crops")
    lines = ["| size | architecture | MAC/pixel | CPU s / iteration | GFLOP / iteration (3x fwd) | GFLOPS |",
             "|---|---|---|---|---|---|"]
    for im, arch in ((img, Arch()), (img, Arch(syn=(16,), arm=8)), (crop, Arch(syn=(16,), arm=8))):
        n = iters * (img.size // im.size)  # 4x the iterations on the crop: similar time
        F.fit(im, 0.002, arch, F.Schedule(iters=2), seed=0)
        t0 = time.process_time()
        F.fit(im, 0.002, arch, F.Schedule(iters=n), seed=0)
        cpu = (time.process_time() - t0) / n
        mac = arch.macs_per_pixel(*im.shape[:2])
        gf = 6 * mac * im.shape[0] * im.shape[1] / 1e9
        lines.append(f"| {im.shape[1]}x{im.shape[0]} | syn {arch.syn} / ARM {arch.arm} | {mac:.0f} | "
                     f"{cpu:.4f} | {gf:.3f} | {gf / cpu:.1f} |")
    tile = np.tile(load(folder, "kodim01", "full"), (2, 2, 1))[:1024, :1024].copy()
    F.fit(tile, 0.002, Arch(), F.Schedule(iters=3), seed=0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines += ["", f"Peak memory of the process after also fitting one 1024x1024 tile: {rss:.0f} MiB."]
    return "\n".join(lines)


def _iterations(r: dict) -> int | None:
    """Fitting iterations of a cached point (summed over tiles, from its notes)."""
    its = [int(m) for m in re.findall(r"(\d+) iterations", " ".join(r.get("notes", [])))]
    return sum(its) if its else None


def effort_times(rows: list[dict]) -> list[str]:
    """Markdown table: whole-encode CPU seconds per effort and set, measured (range over the
    cached points of the newest recipe that has the effort, point count) where points exist,
    else an ESTIMATE = the effort's iterations x the median CPU seconds per iteration of whole
    encodes over the set's points of its newest measured recipe: a least-squares line
    a + b x iterations (fixed cost: coding, setup) where those points have two or more
    iteration counts, else through zero (their median CPU seconds per iteration)."""
    from ..codecs.overfit import EFFORTS

    sizes = {"crops": "384x256 crop", "full": "768x512 image"}
    cols: dict[str, dict] = {}
    for which in sizes:
        sel = [r for r in rows if r["set"] == which and not r.get("iters_override")
               and "enc_cpu_s" in r and _iterations(r)]
        meas, rate_rec, fit = {}, None, None
        for e in EFFORTS:
            er = [r for r in sel if r["effort"] == e]
            if er:
                rec = max((r.get("recipe", "v1") for r in er), key=RECIPES.index)
                v = [r["enc_cpu_s"] for r in er if r.get("recipe", "v1") == rec]
                meas[e] = (min(v), max(v), len(v), rec)
        if sel:
            rate_rec = max((r.get("recipe", "v1") for r in sel), key=RECIPES.index)
            its = np.array([_iterations(r) for r in sel if r.get("recipe", "v1") == rate_rec], float)
            cpu = np.array([r["enc_cpu_s"] for r in sel if r.get("recipe", "v1") == rate_rec])
            if len(set(its.tolist())) > 1:
                b, a = np.polyfit(its, cpu, 1)
                fit = (float(a), float(b), f"{a:.1f} s + {b:.4f} s x iterations, least squares "
                       f"over {len(its)} {rate_rec} points")
            else:
                b = float(np.median(cpu / its))
                fit = (0.0, b, f"{b:.4f} s x iterations, the median over {len(its)} {rate_rec} "
                       f"points at {int(its[0])} iterations (fixed cost not separable)")
        cols[which] = {"meas": meas, "fit": fit}
    out = ["| effort | iterations | " + " | ".join(f"{sizes[w]}: CPU s per encode" for w in sizes) + " |",
           "|---|---|" + "---|" * len(sizes)]
    for e, (iters, cands, warm) in EFFORTS.items():
        n_it = iters + cands * warm  # pre-fitted start: warm-up iterations go to the main phase
        cells = []
        for which in sizes:
            c = cols[which]
            if e in c["meas"]:
                lo, hi, n, rec = c["meas"][e]
                rng = f"{lo:.0f}" if round(lo) == round(hi) else f"{lo:.0f}-{hi:.0f}"
                cells.append(f"**{rng}** measured ({n} encodes, {rec})")
            elif c["fit"]:
                est = c["fit"][0] + c["fit"][1] * n_it
                cells.append(f"~{est:.0f} (~{est / 60:.0f} min) estimate")
            else:
                cells.append("n/a")
        out.append(f"| {e} | {n_it} | " + " | ".join(cells) + " |")
    notes = [f"{sizes[w]}: {c['fit'][2]}" for w, c in cols.items() if c["fit"]]
    out += ["", "Measured = range of whole-encode CPU seconds (fit + coding, one thread) over the "
            "cached points of the newest recipe with that effort; estimates (not measured) from "
            "the set's newest measured recipe: " + "; ".join(notes) + "."]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gancomp bench --suite overfit", description=__doc__.splitlines()[0])
    p.add_argument("folder", nargs="?", default="../shared/data/kodak")
    p.add_argument("--set", dest="sets", default="crops", help="crops, full or crops,full")
    p.add_argument("--efforts", default="1")
    p.add_argument("--qualities", default=",".join(f"{q:g}" for q in QUALITIES))
    p.add_argument("--cache", default=DEFAULT_CACHE)
    p.add_argument("--device", default=None)
    p.add_argument("--iters", type=int, default=None, help="override iterations (quick checks)")
    p.add_argument("--report-only", action="store_true", help="only rebuild the report from the cache")
    p.add_argument("--images", type=int, default=None)
    p.add_argument("--only", default=None, help="comma-separated image names of the set")
    p.add_argument("--out", default="docs/BENCHMARKS.md")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--speed", action="store_true", help="only measure s/iteration, GFLOPS, memory")
    p.add_argument("--times", action="store_true",
                   help="only print encode CPU seconds per effort (measured or estimated) from the cache")
    a = p.parse_args(argv)
    if a.times:
        rows = [json.loads(f.read_text()) for f in sorted(Path(a.cache).glob("*.json"))]
        print("\n".join(effort_times(rows)))
        return 0
    import torch

    torch.set_num_threads(1)
    folder = Path(a.folder)
    if a.speed:
        print(speed(folder))
        return 0
    cache = Path(a.cache)
    cache.mkdir(parents=True, exist_ok=True)
    efforts = [int(e) for e in a.efforts.split(",")]
    qs = [float(q) for q in a.qualities.split(",")]
    extra = {"iters": a.iters} if a.iters else {}
    tag = f"-i{a.iters}" if a.iters else ""
    for which in a.sets.split(","):
        if a.report_only:
            break
        names = SETS[which][: a.images or None]
        if a.only:
            names = [n for n in names if n in a.only.split(",")]
        imgs = {n: load(folder, n, which) for n in names}
        if True:
            for e in efforts:
                for n in names:
                    for q in qs:
                        key = cache / f"{which}-{RECIPE}-e{e}{tag}-{n}-q{q:g}"
                        if key.with_suffix(".json").exists():
                            continue
                        r, data = point(imgs[n], q, e, a.device, extra)
                        r.update(image=n, set=which, effort=e, quality=q, iters_override=a.iters, recipe=RECIPE)
                        key.with_suffix(".gcz").write_bytes(data)
                        key.with_suffix(".json").write_text(json.dumps(r, indent=1) + "\n")
                        print(f"{which} e{e} {n} q{q:g}: {r['bpp']:.4f} bpp {r['psnr']:.2f} dB "
                              f"enc {r['enc_s']:.0f}s dec {r['dec_s']:.2f}s", file=sys.stderr, flush=True)
    cmd = "gancomp bench --suite overfit " + " ".join(shlex.quote(x) for x in (argv or sys.argv[1:]))
    report(a, cache, folder, cmd)
    return 0


def _recipe_table(rows: list[dict]) -> list[str]:
    """BD-rate of each later recipe against v1 at the same set and effort, on the images
    both finished at all 4 qualities (negative = less rate for the same PSNR)."""
    out = []
    for which in ("crops", "full"):
        for e in sorted({r["effort"] for r in rows if r["set"] == which}):
            sel = [r for r in rows if r["set"] == which and r["effort"] == e
                   and not r.get("iters_override")]
            per = {}
            for rec in RECIPES:
                rr = [r for r in sel if r.get("recipe", "v1") == rec]
                per[rec] = {n: {r["quality"]: r for r in rr if r["image"] == n}
                            for n in {r["image"] for r in rr}}
                per[rec] = {n: v for n, v in per[rec].items() if len(v) == 4}
            for rec in RECIPES[1:]:
                common = sorted(set(per["v1"]) & set(per[rec]))
                if not common:
                    continue
                curves = []
                for rc in ("v1", rec):
                    qs = sorted(per[rc][common[0]])
                    curves.append([[float(np.mean([per[rc][n][q][k] for n in common])) for q in qs]
                                   for k in ("bpp", "psnr")])
                bd = _bd(curves[0][0], curves[0][1], curves[1][0], curves[1][1])
                out.append(f"| {which} | {e} | {rec} | {', '.join(common)} | {bd:+.1f}% |")
    if not out:
        return []
    return ["Later recipes against v1 (BD-rate, PSNR; same set, effort and images):", "",
            "| set | effort | recipe | images | BD-rate vs v1 |", "|---|---|---|---|---|", *out, ""]


def _plot_curves(rows: list[dict], baselines_on, which: str) -> tuple[dict, str, str]:
    """Curves for the RD plot of one set (full images or crops), all on one image set so that
    they compare: the set's images complete (4 qualities) at the highest effort of the newest
    recipe that has any; every overfit (recipe, effort) complete on those images, and the
    classical codecs on them."""
    from ..compare import Curve

    ok = [r for r in rows if not r.get("iters_override")]
    for which in (which,):
        sel = [r for r in ok if r["set"] == which]

        def complete(rec: str, e: int) -> list[str]:
            return [n for n in SETS[which] if len({r["quality"] for r in sel if r["image"] == n
                                                   and r.get("recipe", "v1") == rec and r["effort"] == e}) == 4]
        keys = sorted({(RECIPES.index(r.get("recipe", "v1")), r["effort"]) for r in sel}, reverse=True)
        top = next(((RECIPES[i], e) for i, e in keys if complete(RECIPES[i], e)), None)
        if top is None:
            continue
        names = complete(*top)
        curves = {}
        for i, e in sorted(keys):
            rec = RECIPES[i]
            if not set(names) <= set(complete(rec, e)):
                continue
            rr = [r for r in sel if r.get("recipe", "v1") == rec and r["effort"] == e and r["image"] in names]
            qs = sorted({r["quality"] for r in rr})
            bpp = [float(np.mean([r["bpp"] for r in rr if r["quality"] == q])) for q in qs]
            ps = [float(np.mean([r["psnr"] for r in rr if r["quality"] == q])) for q in qs]
            k = f"overfit {rec} e{e}"
            curves[k] = Curve(k, np.array(bpp), np.array(ps), np.full(len(qs), np.nan))
        for b, (r_, p_) in baselines_on(which, names).items():
            curves[b] = Curve(b, np.array(r_), np.array(p_), np.full(len(r_), np.nan))
        note = (f"RD plot: mean over the {which} images {', '.join(names)} (those complete at "
                f"recipe {top[0]} effort {top[1]}); every overfit recipe/effort complete on them, "
                "and the classical codecs on the same pixels.")
        return curves, note, f"overfit vs classical codecs (Kodak {which}, {len(names)} images)"
    return {}, "", ""


def report(a, cache: Path, folder: Path, cmd: str) -> str:
    """Tables (per set and effort) from every cached point, BD-rates, plot; writes the section.
    A curve averages only the images that finished all its qualities; the classical codecs
    are measured on exactly those images."""
    rows = [json.loads(f.read_text()) for f in sorted(cache.glob("*.json"))]
    lines = ["Overfitted codec (`overfit`) on the Kodak subset, one torch thread per encode on a "
             "shared 2-core machine (load average 5-16 while this ran, so wall-clock encode "
             "seconds are several times the CPU seconds; points of session 1 have no CPU "
             "seconds). bpp from the whole .gcz file, PSNR (RGB, 8-bit) of the decoded file; a "
             "curve averages the images that finished all its qualities; WebP, AVIF, HEIC and "
             "JPEG XL are measured in the same run on exactly those pixels. Recipe v1: codec "
             "version 1 (random starts, warm-up at effort >= 3); v2: codec version 2 (pre-fitted "
             "starting networks `overfit-init-v1`, weights stored as differences, warm-up "
             "iterations moved to the main phase); v3: the same from `overfit-init-v2` (v1's "
             "networks had been fitted at a wrong lambda); v4: v3 with the faster fitting loop "
             "(same mathematics and iterations, other float rounding).", ""]
    lines += _recipe_table(rows)
    base_cache: dict[tuple, dict] = {}

    def baselines_on(which: str, names: list[str]) -> dict:
        """Mean (bpp, PSNR) per setting over ``names``; each image is coded once per report."""
        for n in names:
            if (which, n) not in base_cache:
                img = [load(folder, n, which)]
                base_cache[(which, n)] = {b: baseline_curve(b, img) for b in BASELINES}
        return {b: tuple([float(np.mean([base_cache[(which, n)][b][k][i] for n in names]))
                          for i in range(len(base_cache[(which, names[0])][b][k]))]
                         for k in range(2)) for b in BASELINES}

    summary: list[str] = []
    detail: list[str] = []
    groups = [(v, w) for v in RECIPES for w in ("crops", "full")]
    for rec, which in groups:
        sel = [r for r in rows if r["set"] == which and not r.get("iters_override")
               and r.get("recipe", "v1") == rec]
        for e in sorted({r["effort"] for r in sel}):
            er = [r for r in sel if r["effort"] == e]
            quals = sorted({r["quality"] for r in er})
            per = {n: sorted(r["quality"] for r in er if r["image"] == n) for n in SETS[which]}
            done = [n for n in SETS[which] if len(per[n]) == len(quals) == 4]
            partial = [f"{n} ({len(per[n])} of 4: q {', '.join(f'{q:g}' for q in per[n])})" for n in SETS[which]
                       if per[n] and n not in done]
            missing = [n for n in SETS[which] if not per[n]]
            iters = sorted({int(m.group(1)) for r in er for m in
                            [re.search(r"(\d+) iterations", " ".join(r.get("notes", [])))] if m})
            detail += [f"### {which}, recipe {rec}, effort {e}: {len(done)} of {len(SETS[which])} "
                       f"images complete ({', '.join(done) or 'none'})", ""]
            if partial or missing:
                detail += ["Not in the curves: " + "; ".join(
                    (["incomplete " + ", ".join(partial)] if partial else []) +
                    (["not run " + ", ".join(missing)] if missing else [])) + ".", ""]
            detail += ["| quality | images | bpp | PSNR dB | enc wall s/image | enc CPU s/image "
                       "| dec wall s | dec CPU s |", "|---|---|---|---|---|---|---|---|"]
            pts = []
            cpu_all = []
            for q in quals:
                rr = [r for r in er if r["quality"] == q and (r["image"] in done or not done)]
                pt = (float(np.mean([r["bpp"] for r in rr])), float(np.mean([r["psnr"] for r in rr])))

                def avg(k: str, f: str) -> str:
                    v = [r[k] for r in rr if k in r]
                    return format(float(np.mean(v)), f) if len(v) == len(rr) else "n/a"
                detail.append(f"| {q:g} | {len(rr)} | {pt[0]:.4f} | {pt[1]:.2f} | {avg('enc_s', '.0f')} | "
                              f"{avg('enc_cpu_s', '.0f')} | {avg('dec_s', '.2f')} | {avg('dec_cpu_s', '.2f')} |")
                cpu_all += [r["enc_cpu_s"] for r in rr if "enc_cpu_s" in r]
                pts.append(pt)
            detail.append("")
            cpu = "n/a" if not cpu_all else (f"{min(cpu_all):.0f}" if round(min(cpu_all)) == round(max(cpu_all))
                                              else f"{min(cpu_all):.0f}-{max(cpu_all):.0f}")
            it = "/".join(str(i) for i in iters) or "?"
            if not done or len(pts) < 4:
                summary.append(f"| {which} | {rec} | {e} ({it}) | 0 of {len(SETS[which])} | "
                               + " | ".join("n/a" for _ in BASELINES) + f" | {cpu} |")
                continue
            base = baselines_on(which, done)
            bds = [_bd(*base[b], [p[0] for p in pts], [p[1] for p in pts]) for b in BASELINES]
            name = f"overfit {rec} e{e} ({which}, {len(done)} img)"
            summary.append(f"| {which} | {rec} | {e} ({it}) | {len(done)} of {len(SETS[which])} | "
                           + " | ".join(f"{v:+.1f}%" for v in bds) + f" | {cpu} |")
            detail += ["| BD-rate (PSNR) of " + name + " vs | " + " | ".join(BASELINES) + " |",
                       "|---|" + "---|" * len(BASELINES),
                       "| | " + " | ".join(f"{v:+.1f}%" for v in bds) + " |", "",
                       "Classical codecs on the same images (mean bpp / PSNR dB per setting):", ""]
            for b, (r_, p_) in base.items():
                detail.append(f"- {b}: " + ", ".join(f"{x:.3f}/{y:.2f}" for x, y in zip(r_, p_)))
            detail.append("")
    lines += ["Summary: BD-rate (PSNR) of each recipe and effort against the classical codecs "
              "measured on the same images (only the images with all 4 qualities; negative = "
              "less rate than the other codec at equal PSNR) and encode CPU seconds per encode "
              "(range over the curve's points: its complete images, all qualities).", "",
              "| set | recipe | effort (iterations) | images complete | "
              + " | ".join(f"vs {b}" for b in BASELINES) + " | enc CPU s |",
              "|---|---|---|---|" + "---|" * (len(BASELINES) + 1), *summary, "", *detail]
    plots = {which: _plot_curves(rows, baselines_on, which) for which in ("full", "crops")}
    made = sorted({(r.get("recipe", "v1"), r["set"], r["effort"]) for r in rows
                   if not r.get("iters_override")})
    lines += ["Points were made by " + "; ".join(
        f"`gancomp bench --suite overfit KODAK --set {w} --efforts {e}` ({v})" for v, w, e in made) +
        f" (each finished point is cached in `{DEFAULT_CACHE}/` as JSON + .gcz and skipped when "
        f"a command is run again; `--only NAMES` restricts the images); this report: `{cmd}`."]
    text = "\n".join(lines)
    print(text)
    if not a.no_write and any(c for c, _, _ in plots.values()):
        from ..rdplot import plot

        for which, (curves, plot_note, title) in plots.items():
            if curves:
                png = "overfit_rd.png" if which == "full" else f"overfit_rd_{which}.png"
                plot(curves, f"docs/{png}", title=title, metrics=("psnr",))
                text += f"\n\n{plot_note}\n\n![overfit RD, {which}]({png})"
        from ..report import write_section

        write_section(a.out, SECTION, "## overfit (overfitted neural codec) on a Kodak subset\n\n" + text)
    return text


if __name__ == "__main__":
    raise SystemExit(main())
