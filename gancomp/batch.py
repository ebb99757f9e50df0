"""Batch encoding and decoding of whole folders: plan, skip what is done, run on worker
processes or on Ray, write every output atomically, and report.

One function, :func:`process_bytes`, does the work of one file (input bytes in, output bytes
out); the local process pool and Ray both call it, and only the driver touches the file
system. So a Ray cluster needs no shared storage, the two engines write identical bytes, and a
crash or Ctrl-C loses only the files in flight: outputs are written to a temporary file and
renamed (:func:`gancomp.imageio.write_output`), and a rerun skips every output whose
container checksum (or image) verifies.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .errors import GanCompError, InputError

ENCODE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".ppm", ".pgm",
                   ".pbm", ".pnm", ".gif", ".avif", ".heic", ".heif"}
DECODE_SUFFIXES = {".gcz"}


@dataclass(frozen=True)
class Settings:
    """What to do with every file (picklable: it travels to workers and Ray tasks)."""

    mode: str = "encode"                  # "encode" (image -> .gcz) or "decode" (.gcz -> image)
    codec: str = "default"
    quality: float | None = None
    target_bpp: float | None = None
    target_psnr: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    metadata: str = "icc"                 # none | icc | all
    fmt: str = "png"                      # decode output format
    psnr: bool = False                    # measure PSNR of each encoded file (one more decode)

    def out_suffix(self) -> str:
        return ".gcz" if self.mode == "encode" else "." + self.fmt


@dataclass
class Job:
    """One input file and where its output goes; ``rel`` names it in reports."""

    rel: str
    src: Path
    dst: Path
    error: str | None = None              # set when the job is refused before running


@dataclass
class Outcome:
    """What happened to one file."""

    rel: str
    status: str                           # done | skipped | failed
    src: str
    dst: str
    in_bytes: int = 0
    out_bytes: int = 0
    width: int = 0
    height: int = 0
    bpp: float | None = None              # of the .gcz (encoded output, or decoded input)
    psnr: float | None = None
    quality: float | None = None
    seconds: float = 0.0                  # worker time for this file
    error: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Report:
    """A whole batch: per-file outcomes and totals."""

    mode: str
    engine: str
    workers: int
    settings: dict[str, Any]
    files: list[Outcome]
    wall_s: float
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.files)

    def totals(self) -> dict[str, Any]:
        """Bytes before/after over the files that have an output (done or skipped)."""
        have = [o for o in self.files if o.status in ("done", "skipped")]
        done = [o for o in self.files if o.status == "done"]
        before = sum(o.in_bytes for o in have)
        after = sum(o.out_bytes for o in have)
        pix = sum(o.width * o.height for o in have if o.bpp is not None)
        gcz = sum((o.out_bytes if self.mode == "encode" else o.in_bytes)
                  for o in have if o.bpp is not None)
        ps = [o.psnr for o in done if o.psnr is not None]
        return {"files": len(self.files), "done": len(done), "skipped": self.count("skipped"),
                "failed": self.count("failed"), "bytes_before": before, "bytes_after": after,
                "bytes_saved": before - after,
                "bpp": gcz * 8 / pix if pix else None,
                "psnr_mean": sum(ps) / len(ps) if ps else None,
                "worker_s": sum(o.seconds for o in done), "wall_s": self.wall_s,
                "files_per_s": len(done) / self.wall_s if self.wall_s > 0 else None}

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "engine": self.engine, "workers": self.workers,
                "settings": self.settings, "interrupted": self.interrupted,
                "totals": self.totals(), "files": [asdict(o) for o in self.files]}


# ---------------------------------------------------------------------------- planning

def _walk(root: Path, suffixes: set[str], exclude: Path | None) -> list[Path]:
    """Files under root with one of the suffixes, sorted; hidden entries and the output
    folder (when it lies inside the input folder) are left out."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        dirnames[:] = sorted(n for n in dirnames if not n.startswith(".")
                             and not (exclude is not None and _same(d / n, exclude)))
        out.extend(d / n for n in sorted(filenames)
                   if not n.startswith(".") and Path(n).suffix.lower() in suffixes)
    return out


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def read_list(source: str) -> list[str]:
    """Paths from stdin ('-') or a list file ('@FILE'), one per line; blank lines and lines
    starting with '#' are ignored."""
    if source == "-":
        text = sys.stdin.read()
    else:
        p = Path(source[1:])
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{source[1:]}: cannot read the file list ({exc.strerror})") from None
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def plan(source: str, out_dir: str | Path, settings: Settings) -> list[Job]:
    """The jobs for SOURCE: a folder (mirrored recursively), '-' (paths on stdin) or '@FILE'
    (a list file). Listed paths are mirrored relative to their common folder. Two inputs that
    would write the same output are refused (the second one fails, the batch goes on)."""
    out_root = Path(out_dir)
    if out_root.exists() and not out_root.is_dir():
        raise InputError(f"{out_dir}: exists and is not a folder")
    suffixes = ENCODE_SUFFIXES if settings.mode == "encode" else DECODE_SUFFIXES
    if source == "-" or source.startswith("@"):
        listed = [Path(p) for p in read_list(source)]
        if not listed:
            raise InputError("the file list is empty")
        absolute = [Path(os.path.abspath(p)) for p in listed]
        base = Path(os.path.commonpath([str(p.parent) for p in absolute]))
        pairs = [(p, a.relative_to(base)) for p, a in zip(listed, absolute)]
    else:
        root = Path(source)
        if root.is_file():
            pairs = [(root, Path(root.name))]
        elif root.is_dir():
            found = _walk(root, suffixes, out_root)
            if not found:
                raise InputError(f"{source}: no {'images' if settings.mode == 'encode' else '.gcz files'} "
                                 f"in this folder ({', '.join(sorted(suffixes))})")
            pairs = [(p, p.relative_to(root)) for p in found]
        else:
            raise InputError(f"{source}: no such file or folder")
    jobs: list[Job] = []
    seen: dict[Path, str] = {}
    for src, rel in pairs:
        dst = out_root / rel.with_suffix(settings.out_suffix())
        job = Job(rel.as_posix(), src, dst)
        if dst in seen:
            job.error = f"output {dst} would also be written by {seen[dst]}"
        else:
            seen[dst] = job.rel
        jobs.append(job)
    return jobs


# ---------------------------------------------------------------------------- the work

def init_worker(threads: int = 1) -> None:
    """Make a worker process use one torch thread (many processes beat many threads here)
    and leave Ctrl-C to the driver, which stops the workers itself."""
    import signal

    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread (some Ray setups)
        pass
    import torch

    torch.set_num_threads(threads)


def process_bytes(data: bytes, name: str, settings: Settings) -> tuple[bytes, dict[str, Any]]:
    """Encode (image bytes -> .gcz bytes) or decode (.gcz bytes -> image bytes) one file.
    Raises GanCompError for a bad file."""
    from . import api, imageio
    from .metrics import psnr

    if settings.mode == "encode":
        img = imageio.decode_image_bytes(data, name)
        res = api.encode_array_ex(
            img.pixels, settings.codec, settings.quality, target_bpp=settings.target_bpp,
            target_psnr=settings.target_psnr,
            icc=img.icc if settings.metadata != "none" else None,
            exif=img.exif if settings.metadata == "all" else None,
            bit_depth=img.bit_depth, **settings.options)
        h, w, c = img.pixels.shape
        info: dict[str, Any] = {"width": w, "height": h, "quality": res.quality,
                                "bpp": len(res.data) * 8 / (w * h), "notes": img.notes + res.notes}
        if settings.psnr:
            rec = api.decode_array(res.data)
            color = c - (1 if c in (2, 4) else 0)
            info["psnr"] = psnr(img.pixels[:, :, :color], rec[:, :, :color])
        return res.data, info
    dec = api.decode(data, **settings.options)
    out = imageio.encode_image_bytes(dec.pixels, settings.fmt, dec.icc, dec.exif)
    h = dec.header
    return out, {"width": h.width, "height": h.height, "bpp": len(data) * 8 / (h.width * h.height),
                 "notes": [], "quality": None}


def work(data: bytes, name: str, settings: Settings) -> dict[str, Any]:
    """:func:`process_bytes` that never raises: the unit a worker or Ray task runs."""
    t0 = time.perf_counter()
    try:
        out, info = process_bytes(data, name, settings)
        info["data"] = out
    except GanCompError as exc:
        info = {"error": str(exc)}
    except MemoryError:
        info = {"error": "out of memory"}
    except Exception as exc:  # a codec bug must fail one file, not the batch  # noqa: BLE001
        info = {"error": f"internal error ({type(exc).__name__}: {exc})"}
    info["seconds"] = time.perf_counter() - t0
    return info


def _worker_task(data: bytes, name: str, settings: Settings) -> dict[str, Any]:
    return work(data, name, settings)


# ---------------------------------------------------------------------------- resuming

def finished(dst: Path, settings: Settings) -> bool:
    """Is ``dst`` a complete output? A .gcz must pass its CRC-32 check and name the codec
    asked for; an image must decode fully. Anything else is redone."""
    try:
        data = dst.read_bytes()
    except OSError:
        return False
    if settings.mode == "encode":
        from .codecs import get_codec
        from .container import unpack

        try:
            h = unpack(data)
            return h.codec_id == get_codec(settings.codec).codec_id
        except GanCompError:
            return False
    from .imageio import decode_image_bytes

    try:
        decode_image_bytes(data, str(dst))
        return True
    except GanCompError:
        return False


def _remove_stale_temps(dst: Path) -> None:
    """Delete temp files a killed run left for this output (write_output's naming)."""
    try:
        for t in dst.parent.glob(f".{dst.name}.*.tmp"):
            t.unlink()
    except OSError:
        pass


# ---------------------------------------------------------------------------- engines

Task = tuple[Job, bytes]
Done = tuple[Job, dict[str, Any]]


class LocalEngine:
    """``workers`` processes (spawned, one torch thread each); 1 runs in this process."""

    name = "local"

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def run(self, tasks: Iterator[Task], settings: Settings) -> Iterator[Done]:
        if self.workers == 1:
            init_threads_here()
            for job, data in tasks:
                yield job, work(data, job.rel, settings)
            return
        yield from self._pool(tasks, settings)

    def _pool(self, tasks: Iterator[Task], settings: Settings) -> Iterator[Done]:
        import multiprocessing as mp
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        ctx = mp.get_context("spawn")  # no forked torch state
        pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=init_worker)
        inflight: dict[Any, Task] = {}
        retried: set[str] = set()
        retry: list[Task] = []
        exhausted = False
        try:
            while True:
                while len(inflight) < 2 * self.workers and (retry or not exhausted):
                    if retry:
                        t = retry.pop()
                    else:
                        t = next(tasks, None)
                        if t is None:
                            exhausted = True
                            break
                    inflight[pool.submit(_worker_task, t[1], t[0].rel, settings)] = t
                if not inflight:
                    return
                ready, _ = wait(inflight, return_when=FIRST_COMPLETED)
                broken = False
                for f in ready:
                    t = inflight.pop(f)
                    try:
                        yield t[0], f.result()
                    except BrokenProcessPool:
                        broken = True
                        if t[0].rel in retried:
                            yield t[0], {"error": "the worker process died on this file", "seconds": 0.0}
                        else:
                            retried.add(t[0].rel)
                            retry.append(t)
                if broken:  # a worker died (crash, out of memory): new pool, retry once
                    for f, t in list(inflight.items()):
                        retry.append(t)
                        retried.add(t[0].rel)
                    inflight.clear()
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=init_worker)
        finally:
            _stop_pool(pool)


def _stop_pool(pool: Any) -> None:
    """Shut a process pool down now, killing workers still busy (on Ctrl-C or an error)."""
    procs = list(getattr(pool, "_processes", {}).values())  # no public API before 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=5)


def init_threads_here() -> None:
    import torch

    torch.set_num_threads(1)


class RayEngine:
    """Ray tasks, one CPU and one torch thread each. Input and output bytes travel through
    Ray's object store, so workers need no shared file system; the driver writes outputs.
    Without an address a local Ray instance with ``workers`` CPUs is started."""

    name = "ray"

    def __init__(self, address: str | None, workers: int) -> None:
        self.address = address
        self.workers = workers

    def run(self, tasks: Iterator[Task], settings: Settings) -> Iterator[Done]:
        try:
            import ray
        except ImportError:
            raise InputError("--ray needs Ray: pip install 'gancomp[ray]'") from None
        env = {"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}}
        started = not ray.is_initialized()
        if started:
            if self.address:
                ray.init(address=self.address, runtime_env=env, log_to_driver=False)
            else:
                ray.init(num_cpus=self.workers, include_dashboard=False, runtime_env=env,
                         log_to_driver=False, configure_logging=False)
        try:
            remote = ray.remote(num_cpus=1, max_retries=1)(_ray_task)
            window = 2 * max(self.workers, int(ray.cluster_resources().get("CPU", 1)))
            inflight: dict[Any, Job] = {}
            exhausted = False
            while True:
                while not exhausted and len(inflight) < window:
                    t = next(tasks, None)
                    if t is None:
                        exhausted = True
                        break
                    inflight[remote.remote(t[1], t[0].rel, settings)] = t[0]
                if not inflight:
                    return
                ready, _ = ray.wait(list(inflight), num_returns=1)
                for ref in ready:
                    job = inflight.pop(ref)
                    try:
                        res = ray.get(ref)
                    except Exception as exc:  # worker died, node lost  # noqa: BLE001
                        res = {"error": f"Ray task failed ({type(exc).__name__})", "seconds": 0.0}
                    yield job, res
        finally:
            for ref in list(locals().get("inflight", {})):
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001
                    pass
            if started:
                ray.shutdown()


def _ray_task(data: bytes, name: str, settings: Settings) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    return work(data, name, settings)


# ---------------------------------------------------------------------------- driver

Event = Callable[[Outcome, int, int], None]


def run(jobs: Sequence[Job], settings: Settings, *, workers: int = 1, ray: str | None = None,
        force: bool = False, on_outcome: Event | None = None,
        on_start: Callable[[int, int], None] | None = None) -> Report:
    """Run the jobs: skip finished outputs (unless ``force``), process the rest on the local
    engine (``ray=None``) or on Ray (``ray="local"`` or a cluster address), write each output
    atomically, and report. ``on_start(total, todo)`` is called once, ``on_outcome(outcome,
    done_so_far, total)`` after every file."""
    if workers < 1:
        raise InputError("--workers must be at least 1")
    if settings.mode == "encode":
        from .codecs import get_codec

        get_codec(settings.codec)  # an unknown codec is a usage error, not N failures
    t0 = time.perf_counter()
    outcomes: dict[str, Outcome] = {}
    todo: list[Job] = []
    for job in jobs:
        base = Outcome(job.rel, "failed", str(job.src), str(job.dst))
        if job.error:
            base.error = job.error
            outcomes[job.rel] = base
        elif not force and job.dst.exists() and finished(job.dst, settings):
            base.status = "skipped"
            _fill_skipped(base, job, settings)
            outcomes[job.rel] = base
        else:
            todo.append(job)
    if ray is None:  # no more processes than files to do
        workers = max(1, min(workers, len(todo)))
    engine: LocalEngine | RayEngine = (LocalEngine(workers) if ray is None else
                                       RayEngine(None if ray == "local" else ray, workers))
    total = len(jobs)
    count = [0]
    if on_start:
        on_start(total, len(todo))

    def emit(o: Outcome) -> None:
        count[0] += 1
        if on_outcome:
            on_outcome(o, count[0], total)

    for o in list(outcomes.values()):
        emit(o)

    def tasks() -> Iterator[Task]:
        for job in todo:
            try:
                data = job.src.read_bytes()
            except OSError as exc:
                o = Outcome(job.rel, "failed", str(job.src), str(job.dst),
                            error=f"{job.src}: cannot read ({exc.strerror})")
                outcomes[job.rel] = o
                emit(o)
                continue
            outcomes[job.rel] = Outcome(job.rel, "failed", str(job.src), str(job.dst),
                                        in_bytes=len(data), error="interrupted")
            yield job, data

    interrupted = False
    results = engine.run(tasks(), settings)
    try:
        for job, res in results:
            o = outcomes[job.rel]
            o.seconds = res.get("seconds", 0.0)
            if "error" in res:
                o.error = res["error"]
            else:
                try:
                    job.dst.parent.mkdir(parents=True, exist_ok=True)
                    _remove_stale_temps(job.dst)
                    from .imageio import write_output

                    write_output(str(job.dst), res["data"], force=True, protect=str(job.src))
                    o.status, o.error = "done", None
                    o.out_bytes = len(res["data"])
                    for k in ("width", "height", "bpp", "psnr", "quality", "notes"):
                        if k in res:
                            setattr(o, k, res[k])
                except GanCompError as exc:
                    o.error = str(exc)
                except OSError as exc:
                    o.error = f"{job.dst}: cannot write ({exc.strerror})"
            emit(o)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        results.close()  # stops workers still busy
    files = [outcomes[j.rel] for j in jobs if j.rel in outcomes]
    if interrupted:  # files never started are not outcomes; in-flight ones say "interrupted"
        files = [o for o in files if not (o.status == "failed" and o.error == "interrupted")]
    s = asdict(settings)
    return Report(settings.mode, engine.name, workers, s, files, time.perf_counter() - t0,
                  interrupted)


def _fill_skipped(o: Outcome, job: Job, settings: Settings) -> None:
    """Sizes (and bpp) of an already finished output, for the totals."""
    try:
        o.in_bytes = job.src.stat().st_size
        o.out_bytes = job.dst.stat().st_size
        if settings.mode == "encode":
            from .container import unpack

            h = unpack(job.dst.read_bytes())
            o.width, o.height = h.width, h.height
            o.bpp = o.out_bytes * 8 / (h.width * h.height)
    except (OSError, GanCompError):
        pass
