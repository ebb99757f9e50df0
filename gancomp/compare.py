"""Rate-distortion comparisons: run gancomp and classical codecs on the same images, measure
real file sizes and quality, aggregate per quality point, and compute BD-rates.

Conventions (design.md, the same as CompressAI's): bpp is the whole file's size in bits over
the original image's pixel count; PSNR, SSIM and MS-SSIM are computed per image on 8-bit RGB
and averaged over images at each quality point (a "point" is one quality setting of a sweep,
or one --target-bpp goal); timings are the median over images of one encode and one decode.
gancomp codecs are decoded from the .gcz bytes they wrote through the normal decode path.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from . import metrics
from .bdrate import bd_rate, msssim_db
from .errors import GanCompError, InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".ppm", ".pgm",
                  ".pnm", ".gif"}
DEFAULT_CODECS = "default,jpeg,webp"


# ---------------------------------------------------------------------------- inputs

def image_paths(inputs: Sequence[str]) -> list[Path]:
    """Expand files and folders (their image files, sorted) into a list of image paths."""
    if not inputs:
        raise InputError("no images given")
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            if not found:
                raise InputError(f"{item}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"{item}: no such file or folder")
    return out


def load_rgb(path: Path) -> np.ndarray:
    """Load an image as 8-bit RGB (gray is replicated, alpha dropped) so every codec and
    metric sees the same three channels."""
    from .imageio import load_image

    px = load_image(str(path)).pixels
    if px.shape[2] in (2, 4):
        px = px[:, :, :-1]
    if px.shape[2] == 1:
        px = np.repeat(px, 3, axis=2)
    return np.ascontiguousarray(px)


# ---------------------------------------------------------------------------- codecs

@dataclass
class Runner:
    """One codec as compare sees it: encode to real bytes, decode those bytes."""

    name: str
    kind: str                       # "gancomp" or "classical"
    description: str
    encode: Callable[[np.ndarray, float | None], bytes]
    decode: Callable[[bytes], np.ndarray]
    sweep: list[float | None]
    qrange: tuple[float, float]
    lossless: bool = False
    native: Callable[[float], float] | None = None
    native_name: str = "quality"
    integer_quality: bool = False
    requested: str = ""             # the name the user typed (e.g. "default", "jxl")
    spec: tuple[str, dict[str, Any]] | None = None   # (name, options) to rebuild it elsewhere
    fingerprint: str = ""           # changes when the codec's output may change (caching)


def _gancomp_runner(name: str, options: dict[str, Any]) -> Runner:
    from . import api
    from .codecs import DEFAULT_CODEC, get_codec

    codec = get_codec(name)
    label = codec.name
    desc = codec.description + (" [default]" if codec.name == DEFAULT_CODEC else "")

    def enc(img: np.ndarray, q: float | None) -> bytes:
        return api.encode_array(img, codec.name, q, **options)

    def dec(data: bytes) -> np.ndarray:
        return api.decode_array(data)

    sweep: list[float | None] = [None] if codec.lossless else list(codec.sweep_qualities())
    return Runner(label, "gancomp", desc, enc, dec, sweep, codec.quality_range(), codec.lossless,
                  fingerprint=_source_fingerprint() + repr(sorted(options.items())))


_NOT_CODEC_SOURCE = {"benchmarks", "cli", "compare.py", "report.py", "rdplot.py", "bdrate.py",
                     "anchors.py", "train"}


def _source_fingerprint() -> str:
    """SHA-256 over gancomp's own source and data files (cached rows of gancomp codecs are
    reused only while none of them changed)."""
    import hashlib

    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        rel = f.relative_to(root).parts
        if f.is_file() and f.suffix in (".py", ".safetensors", ".json", ".png") and \
                "__pycache__" not in rel and rel[0] not in _NOT_CODEC_SOURCE and \
                rel != ("codecs", "__init__.py"):   # only names the default codec
            h.update(str(f.relative_to(root)).encode() + f.read_bytes())
    return h.hexdigest()[:16]


def _library_fingerprint() -> str:
    from importlib import metadata

    out = []
    for pkg in ("pillow", "imagecodecs", "pillow-heif"):
        try:
            out.append(f"{pkg}={metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            out.append(f"{pkg}=none")
    return ",".join(out)


def _classical_runner(name: str) -> Runner:
    from . import baselines

    c = baselines.get(name)

    def enc(img: np.ndarray, q: float | None) -> bytes:
        return c.encode(img, c.sweep[len(c.sweep) // 2] if q is None else q)

    return Runner(c.name, "classical", c.description, enc, c.decode, list(c.sweep), c.qrange,
                  native=c.native, native_name=c.native_name, integer_quality=c.integer_quality,
                  fingerprint=_library_fingerprint())


def resolve_codecs(names: Iterable[str], options: dict[str, Any] | None = None) -> list[Runner]:
    """Runners for a list of codec names: classical names (jpeg, webp, jpeg2000, avif, jpegxl,
    heic) or any registered gancomp codec, including ``default``. Duplicates are dropped."""
    from . import baselines
    from .codecs import available

    options = {k: v for k, v in (options or {}).items() if v is not None}
    runners: list[Runner] = []
    seen: set[str] = set()
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise InputError("no codecs given")
    gancomp_names = available()
    for n in names:
        key = baselines.ALIASES.get(n.lower(), n.lower())
        if key in baselines.CLASSICAL:
            r = _classical_runner(key)
        elif n == "default" or n in gancomp_names:
            r = _gancomp_runner(n, options)
        else:
            raise InputError(f"unknown codec {n!r}; gancomp codecs: {', '.join(gancomp_names)}; "
                             f"classical: {', '.join(baselines.names())}")
        r.requested = n
        r.spec = (n, {} if key in baselines.CLASSICAL else dict(options))
        if r.name not in seen:
            seen.add(r.name)
            runners.append(r)
    return runners


def parse_qualities(specs: Sequence[str]) -> tuple[list[float] | None, dict[str, list[float]]]:
    """Parse ``-q 10,50,90`` (all codecs) and ``-q jpeg:5,10,20`` (one codec)."""
    common: list[float] | None = None
    per: dict[str, list[float]] = {}
    for spec in specs:
        codec, _, values = spec.rpartition(":")
        try:
            qs = [float(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise InputError(f"bad quality list {spec!r} (e.g. 10,50,90 or jpeg:5,10,20)") from None
        if not qs or not all(math.isfinite(q) for q in qs):
            raise InputError(f"bad quality list {spec!r}")
        if codec:
            per[codec.strip()] = qs
        else:
            common = qs
    return common, per


# ---------------------------------------------------------------------------- running

@dataclass
class Row:
    """One codec on one image at one point."""

    codec: str
    image: str
    point: int
    quality: float | None
    native: float | None
    width: int
    height: int
    nbytes: int
    bpp: float
    mse: float
    psnr: float
    ssim: float
    ms_ssim: float
    cr: float
    enc_s: float
    dec_s: float
    target_bpp: float | None = None
    target_missed: bool = False


@dataclass
class Summary:
    """One codec at one point, averaged over images (CompressAI convention)."""

    codec: str
    point: int
    quality: float | None
    native: float | None
    images: int
    bpp: float
    mse: float
    psnr: float
    ssim: float
    ms_ssim: float
    cr: float
    enc_s: float          # median over images
    dec_s: float          # median over images
    target_bpp: float | None = None
    missed: int = 0


@dataclass
class Result:
    """Everything a comparison measured."""

    rows: list[Row]
    summaries: list[Summary]
    codecs: list[dict[str, str]]
    images: list[str]
    target_bpp: float | None = None
    notes: list[str] = field(default_factory=list)


def _measure(runner: Runner, img: np.ndarray, q: float | None) -> tuple[bytes, np.ndarray, float, float]:
    t0 = time.perf_counter()
    data = runner.encode(img, q)
    t1 = time.perf_counter()
    rec = runner.decode(data)
    t2 = time.perf_counter()
    if rec.shape != img.shape:
        raise GanCompError(f"{runner.name} decoded to {rec.shape}, expected {img.shape}")
    return data, rec, t1 - t0, t2 - t1


def find_quality_for_bpp(runner: Runner, img: np.ndarray, target: float,
                         steps: int = 10) -> tuple[float, bool]:
    """Bisection over quality: the highest quality whose file is at most ``target`` bpp.
    Returns (quality, missed) where missed means even the lowest quality is too big."""
    lo, hi = runner.qrange
    pixels = img.shape[0] * img.shape[1]

    def fits(q: float) -> bool:
        return len(runner.encode(img, q)) * 8 / pixels <= target

    if not fits(lo):
        return lo, True
    if fits(hi):
        return hi, False
    a, b = lo, hi
    for _ in range(steps):
        if runner.integer_quality and b - a <= 1:
            break
        mid = (a + b) / 2
        if runner.integer_quality:
            mid = float(math.floor(mid))
            if mid <= a:
                mid = a + 1
        if fits(mid):
            a = mid
        else:
            b = mid
    return a, False


def run(images: Sequence[Path], runners: Sequence[Runner], *, qualities: list[float] | None = None,
        per_codec: dict[str, list[float]] | None = None, target_bpp: float | None = None,
        progress: bool = True, log: Callable[[str], None] | None = None,
        keep: dict[tuple[str, str, int], bytes] | None = None, workers: int = 1,
        cache: str | Path | None = None) -> Result:
    """Measure every codec on every image, at each sweep quality or at ``target_bpp``.

    Each decoded image is scored once, against reference statistics computed once per image
    (:class:`gancomp.metrics.Scorer`). ``keep``, when given, receives the bytes of every
    measured file keyed by (codec, image name, point), for the HTML report. ``workers`` > 1
    measures images in that many processes (one torch thread each); rows come back in the
    same order either way. ``cache``: a JSON-lines file of measured rows; rows whose codec
    fingerprint, image and quality match are reused and new ones appended as they are
    measured (resumable runs; not used with ``target_bpp``)."""
    alias = {r.requested: r.name for r in runners if r.requested}
    per_codec = {alias.get(k, k): v for k, v in (per_codec or {}).items()}
    unknown = set(per_codec) - {r.name for r in runners}
    if unknown:
        raise InputError(f"quality list for codec(s) not being compared: {', '.join(sorted(unknown))}")
    if target_bpp is not None and not (0 < target_bpp < 64):
        raise InputError(f"--target-bpp must be in (0, 64), got {target_bpp}")
    plan: dict[str, list[float | None]] = {}
    for r in runners:
        if target_bpp is not None or r.lossless:
            plan[r.name] = [None]
        else:
            qs = per_codec.get(r.name, qualities if qualities is not None else r.sweep)
            lo, hi = r.qrange
            bad = [q for q in qs if q is not None and not (lo <= q <= hi)]
            if bad:
                raise InputError(f"{r.name}: quality {bad[0]:g} outside {lo:g}..{hi:g}")
            plan[r.name] = list(qs)
    per_image = sum(len(plan[r.name]) for r in runners)
    total = per_image * len(images)
    rows: list[Row] = []
    notes: list[str] = []
    want_bytes = keep is not None
    cache_rows = _RowCache(cache if target_bpp is None and not want_bytes else None)
    with cache_rows, _progress(progress, total) as tick:
        if workers > 1 and len(images) > 1 and all(r.spec for r in runners):
            def done(name: str) -> None:
                tick(f"done {name}", per_image)
                if progress and log and not _isatty():
                    log(f"image done: {name}")

            results = _run_parallel(images, runners, plan, target_bpp, want_bytes, workers, done,
                                    cache_rows)
        else:
            results = []
            for i, path in enumerate(images):
                if progress and log and not _isatty():
                    log(f"image {i + 1}/{len(images)}: {path.name}")  # a trace for logs
                results.append(measure_image(path, runners, plan, target_bpp, want_bytes,
                                             lambda d: tick(d), cache_rows))
        for r_rows, r_notes, r_kept in results:
            rows += r_rows
            notes += r_notes
            if keep is not None:
                keep.update(r_kept)
    if log:
        for n in notes:
            log(n)
    codecs = [{"name": r.name, "kind": r.kind, "description": r.description} for r in runners]
    return Result(rows, aggregate(rows), codecs, [p.name for p in images], target_bpp, notes)


Measured = tuple[list[Row], list[str], dict[tuple[str, str, int], bytes]]


def measure_image(path: Path, runners: Sequence[Runner], plan: dict[str, list[float | None]],
                  target_bpp: float | None, want_bytes: bool = False,
                  tick: Callable[[str], None] | None = None,
                  cache: "_RowCache | None" = None) -> Measured:
    """All points of all codecs on one image: rows, notes and (optionally) the file bytes.
    Points found in ``cache`` are reused; new ones are added to it."""
    img = load_rgb(path)
    h, w, _ = img.shape
    scorer = metrics.Scorer(img)
    rows: list[Row] = []
    notes: list[str] = []
    kept: dict[tuple[str, str, int], bytes] = {}
    for r in runners:
        for k, q in enumerate(plan[r.name]):
            if tick:
                tick(f"{r.name} {path.name}")
            key = json.dumps([r.name, r.fingerprint, path.name, q])
            if cache is not None and key in cache:
                rows.append(Row(**dict(cache[key], point=k)))
                continue
            missed = False
            if target_bpp is not None and not r.lossless:
                q, missed = find_quality_for_bpp(r, img, target_bpp)
                if missed:
                    notes.append(f"{r.name} cannot reach {target_bpp} bpp on {path.name}")
            data, rec, te, td = _measure(r, img, q)
            b = metrics.bpp(len(data), w, h)
            sc = scorer.scores(rec)
            rows.append(Row(
                r.name, path.name, k, q, r.native(q) if (r.native and q is not None) else q,
                w, h, len(data), b, sc["mse"], sc["psnr"], sc["ssim"], sc["ms_ssim"],
                metrics.compression_ratio(b), te, td, target_bpp, missed))
            if cache is not None:
                cache.add(key, rows[-1])
            if want_bytes:
                kept[(r.name, path.name, k)] = data
    return rows, notes, kept


def _image_task(path: Path, specs: list[tuple[str, dict[str, Any]]],
                plan: dict[str, list[float | None]], target_bpp: float | None,
                want_bytes: bool, cached: dict[str, dict]) -> tuple[Measured, dict[str, dict]]:
    runners = [resolve_codecs([n], o)[0] for n, o in specs]
    cache = _RowCache(None, cached)
    return measure_image(path, runners, plan, target_bpp, want_bytes, None, cache), cache.new


def _run_parallel(images: Sequence[Path], runners: Sequence[Runner],
                  plan: dict[str, list[float | None]], target_bpp: float | None,
                  want_bytes: bool, workers: int, done: Callable[[str], None],
                  cache: "_RowCache") -> list[Measured]:
    """One image per task on a spawned process pool (one torch thread per process)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from .batch import _stop_pool, init_worker

    specs = [r.spec for r in runners]
    pool = ProcessPoolExecutor(min(workers, len(images)), mp_context=mp.get_context("spawn"),
                               initializer=init_worker)
    try:
        futs = {pool.submit(_image_task, p, specs, plan, target_bpp, want_bytes,
                            cache.for_image(p.name)): i
                for i, p in enumerate(images)}
        out: list[Measured | None] = [None] * len(images)
        for f in as_completed(futs):
            i = futs[f]
            out[i], new = f.result()
            for key, row in new.items():
                cache.add(key, Row(**row))
            done(images[i].name)
        return [o for o in out if o is not None]
    finally:
        _stop_pool(pool)


class _RowCache:
    """Measured rows by key ([codec, fingerprint, image, quality] as JSON), read from and
    appended to a JSON-lines file when ``path`` is given (a line cut short is skipped)."""

    def __init__(self, path: str | Path | None, rows: dict[str, dict] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.rows: dict[str, dict] = dict(rows or {})
        self.new: dict[str, dict] = {}
        self._f = None
        if self.path is not None and self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    d = json.loads(line)
                    self.rows[d.pop("key")] = d
                except (ValueError, KeyError):
                    continue

    def __enter__(self) -> "_RowCache":
        if self.path is not None:
            self._f = open(self.path, "a", encoding="utf-8")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._f is not None:
            self._f.close()

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def __getitem__(self, key: str) -> dict:
        return self.rows[key]

    def for_image(self, name: str) -> dict[str, dict]:
        return {k: v for k, v in self.rows.items() if json.loads(k)[2] == name}

    def add(self, key: str, row: Row) -> None:
        d = asdict(row)
        self.rows[key] = self.new[key] = d
        if self._f is not None:
            self._f.write(json.dumps(dict(d, key=key)) + "\n")
            self._f.flush()


def _isatty() -> bool:
    import sys

    return sys.stderr.isatty()


class _progress:
    """A rich progress bar on stderr (only when it is a terminal and enabled)."""

    def __init__(self, enabled: bool, total: int) -> None:
        import sys

        self.enabled = enabled and sys.stderr.isatty()
        self.total = total
        self._bar = None

    def __enter__(self) -> Callable[[str, int], None]:
        if not self.enabled:
            return lambda _desc, _n=0: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                             TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        self._bar.start()
        task = self._bar.add_task("compare", total=self.total)
        pending = [0]

        def tick(desc: str, n: int = 0) -> None:
            """A step starts (n=0: the previous one is done) or n steps are done."""
            if n == 0:
                self._bar.advance(task, pending[0])
                pending[0] = 1
            else:
                self._bar.advance(task, n)
            self._bar.update(task, description=desc)

        return tick

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def _nanmean(v: Iterable[float]) -> float:
    a = np.asarray(list(v), dtype=np.float64)
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else float("nan")


def aggregate(rows: Sequence[Row]) -> list[Summary]:
    """Average rows over images for each (codec, point), in first-seen codec order."""
    groups: dict[tuple[str, int], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.codec, r.point), []).append(r)
    out = []
    for (codec, point), rs in groups.items():
        qs = {r.quality for r in rs}
        q = rs[0].quality if len(qs) == 1 else None        # per-image qualities (target-bpp)
        nat = rs[0].native if len(qs) == 1 else None
        b = float(np.mean([r.bpp for r in rs]))
        out.append(Summary(codec, point, q, nat, len(rs), b, float(np.mean([r.mse for r in rs])),
                           float(np.mean([r.psnr for r in rs])), _nanmean(r.ssim for r in rs),
                           _nanmean(r.ms_ssim for r in rs), metrics.compression_ratio(b),
                           float(np.median([r.enc_s for r in rs])),
                           float(np.median([r.dec_s for r in rs])),
                           rs[0].target_bpp, sum(r.target_missed for r in rs)))
    return out


# ---------------------------------------------------------------------------- BD-rates

@dataclass
class Curve:
    """An RD curve: mean bpp with mean PSNR and MS-SSIM per point."""

    name: str
    bpp: np.ndarray
    psnr: np.ndarray
    ms_ssim: np.ndarray
    published: bool = False


def curves(summaries: Sequence[Summary]) -> dict[str, Curve]:
    """One curve per codec from the summaries (sorted by rate)."""
    out: dict[str, Curve] = {}
    for name in dict.fromkeys(s.codec for s in summaries):
        ss = sorted((s for s in summaries if s.codec == name), key=lambda s: s.bpp)
        out[name] = Curve(name, np.array([s.bpp for s in ss]), np.array([s.psnr for s in ss]),
                          np.array([s.ms_ssim for s in ss]))
    return out


MIN_OVERLAP_DB = 1.0  # a BD-rate over a sliver of shared quality is extrapolation, not data


def bd_between(anchor: Curve, test: Curve, metric: str = "psnr") -> float | None:
    """BD-rate (%) of ``test`` against ``anchor`` on PSNR or MS-SSIM (in dB); None when
    the curves have too few points or share less than MIN_OVERLAP_DB of quality."""
    qa = anchor.psnr if metric == "psnr" else msssim_db(anchor.ms_ssim)
    qt = test.psnr if metric == "psnr" else msssim_db(test.ms_ssim)
    fa, ft = qa[np.isfinite(qa)], qt[np.isfinite(qt)]
    if not fa.size or not ft.size or min(fa.max(), ft.max()) - max(fa.min(), ft.min()) < MIN_OVERLAP_DB:
        return None
    try:
        return bd_rate(anchor.bpp, qa, test.bpp, qt)
    except InputError:
        return None


def bd_matrix(curves_: dict[str, Curve], anchors: Sequence[str], metric: str = "psnr"
              ) -> dict[str, dict[str, float | None]]:
    """BD-rate of every curve against each anchor curve present: {codec: {anchor: %}}."""
    present = [a for a in anchors if a in curves_]
    return {name: {a: bd_between(curves_[a], c, metric) for a in present}
            for name, c in curves_.items() if not c.published}


# ---------------------------------------------------------------------------- output

def machine() -> str:
    """One line about the machine and the library versions that produced the numbers."""
    import os
    import platform

    import numpy
    import PIL
    import torch
    from PIL import features

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    libs = [f"Pillow {PIL.__version__} (libjpeg-turbo {features.version('libjpeg_turbo')}, "
            f"libwebp {features.version('webp')}, OpenJPEG {features.version('jpg_2000')})"]
    try:
        import imagecodecs

        v = dict(x.split("-", 1) for x in imagecodecs.version().split(", ") if "-" in x)
        libs.append(f"imagecodecs {imagecodecs.__version__} (libavif {v.get('libavif')}, "
                    f"libjxl {v.get('libjxl')})")
    except Exception:  # noqa: BLE001 - versions are informative only
        pass
    try:
        import pillow_heif

        info = pillow_heif.libheif_info()
        libs.append(f"pillow-heif {pillow_heif.__version__} (libheif {info.get('libheif')}, "
                    f"{info.get('encoders', {}).get('x265', 'no x265')})")
    except Exception:  # noqa: BLE001
        pass
    return (f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__} with "
            f"{torch.get_num_threads()} thread(s), numpy {numpy.__version__}, Python "
            f"{platform.python_version()}, {platform.system()} {platform.release()}; " + "; ".join(libs))



COLUMNS = ["scheme", "MSE", "SSIM", "MS-SSIM", "PSNR", "bpp", "CR", "enc s", "dec s"]


def _fmt(v: float | None, spec: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return format(v, spec)


def scheme_label(s: Summary, native_name: dict[str, str] | None = None) -> str:
    """'jpeg q=50', 'jpegxl distance=2.5', 'wavelet @0.5 bpp' ..."""
    if s.target_bpp is not None:
        return f"{s.codec} @{s.target_bpp:g} bpp" + (f" ({s.missed} missed)" if s.missed else "")
    if s.quality is None:
        return s.codec
    name = (native_name or {}).get(s.codec, "quality")
    v = s.native if s.native is not None else s.quality
    return f"{s.codec} {'q' if name == 'quality' else name}={v:.3g}"


def table_rows(summaries: Sequence[Summary], native_name: dict[str, str] | None = None) -> list[list[str]]:
    """Rows in seed 000's layout: scheme, MSE, SSIM, MS-SSIM, PSNR, bpp, CR, enc s, dec s."""
    return [[scheme_label(s, native_name), _fmt(s.mse, ".2f"), _fmt(s.ssim, ".4f"),
             _fmt(s.ms_ssim, ".4f"), _fmt(s.psnr, ".2f"), _fmt(s.bpp, ".4f"), _fmt(s.cr, ".1f"),
             _fmt(s.enc_s, ".3g"), _fmt(s.dec_s, ".3g")] for s in summaries]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def bd_rows(matrix: dict[str, dict[str, float | None]], anchors: Sequence[str]) -> list[list[str]]:
    """Rows of a BD-rate table (percent, negative = fewer bits than the anchor)."""
    return [[name] + [(_fmt(m.get(a), "+.1f") + " %") if m.get(a) is not None else "n/a"
                      for a in anchors] for name, m in matrix.items()]


def _clean_json(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {k: _clean_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clean_json(x) for x in v]
    return v


def to_json(result: Result, extra: dict[str, Any] | None = None) -> str:
    """Strict JSON (NaN -> null): codecs, images, per-image rows and per-point summaries."""
    doc = {"images": result.images, "codecs": result.codecs, "target_bpp": result.target_bpp,
           "summaries": [asdict(s) for s in result.summaries],
           "rows": [asdict(r) for r in result.rows], "notes": result.notes}
    doc.update(extra or {})
    return json.dumps(_clean_json(doc), indent=1, allow_nan=False)


def to_csv(result: Result) -> str:
    """Per-image rows as CSV (one line per codec, image and point)."""
    buf = io.StringIO()
    names = list(Row.__dataclass_fields__)
    w = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    w.writeheader()
    for r in result.rows:
        w.writerow(asdict(r))
    return buf.getvalue()


def write_text(path: str | Path, text: str) -> None:
    """Write a text output file atomically, replacing an existing one."""
    from .imageio import write_output

    write_output(str(path), text.encode("utf-8"), force=True)


def markdown_report(result: Result, command: str, bd: dict[str, dict[str, dict[str, float | None]]],
                    bd_labels: dict[str, str], plot: str | None = None,
                    native_name: dict[str, str] | None = None) -> str:
    """A BENCHMARKS.md section for a compare run: command, machine, BD-rates, table, plot."""
    what = (f"target {result.target_bpp:g} bpp per image" if result.target_bpp is not None
            else "quality sweep")
    md = [f"## gancomp compare: {', '.join(c['name'] for c in result.codecs)} "
          f"({len(result.images)} images, {what})", "",
          f"Command: `{command}`", "", f"Machine: {machine()}.", "",
          f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Mean over images per "
          "point; bpp from the whole file; times are medians over images of one encode and one "
          "decode.", ""]
    for metric, title in (("psnr", "BD-rate, PSNR"), ("ms_ssim", "BD-rate, MS-SSIM in dB")):
        m = bd.get(metric) or {}
        names = list(next(iter(m.values()), {}))
        if names:
            md += [f"### {title} (negative = fewer bits than the anchor)", "",
                   markdown_table(["codec"] + [f"vs {bd_labels.get(a, a)}" for a in names],
                                  bd_rows(m, names)), ""]
    if plot:
        md += [f"![RD curves]({plot})", ""]
    md += ["### RD points", "", markdown_table(COLUMNS, table_rows(result.summaries, native_name))]
    return "\n".join(md)
