"""Whole-process CPU seconds of `gancomp encode`/`decode` (wavelet2) for two source trees and an
AVIF speed-6 encode, interleaved on the same images in one run (issue 10, item 6):

    python scripts/w2_speed_ab.py OLD_TREE NEW_TREE IMAGES... [--repeat 3] [--q 32]

Each tree runs as `python -m gancomp` with PYTHONPATH=TREE and TREE as working directory
(`python -m` puts the working directory first on sys.path: before session 5 both sides ran the
tree the script was started in) (OMP_NUM_THREADS=1); CPU = user + sys
of the child (getrusage). Prints per-image medians and the median over images; minor page
faults beside."""
import argparse, os, resource, statistics, subprocess, sys, tempfile

AV = ("import sys, numpy as np, imagecodecs\nfrom PIL import Image\n"
      "im = np.asarray(Image.open(sys.argv[1]).convert('RGB'))\n"
      "open(sys.argv[2], 'wb').write(imagecodecs.avif_encode(im, level=50, speed=6, "
      "pixelformat='yuv420', numthreads=1))\n")


def timed(cmd, env, cwd=None):
    a = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, env=env, capture_output=True, cwd=cwd)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return b.ru_utime - a.ru_utime + b.ru_stime - a.ru_stime, b.ru_minflt - a.ru_minflt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old"); ap.add_argument("new"); ap.add_argument("images", nargs="+")
    ap.add_argument("--repeat", type=int, default=3); ap.add_argument("--q", default="32")
    a = ap.parse_args()
    a.images = [os.path.abspath(i) for i in a.images]
    py = sys.executable
    res = {}
    with tempfile.TemporaryDirectory() as td:
        for img in a.images:
            per = {}
            for _ in range(a.repeat):
                for tag, tree in (("old", a.old), ("new", a.new)):
                    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.path.abspath(tree))
                    f, o = f"{td}/{tag}.gcz", f"{td}/{tag}.png"
                    per.setdefault(f"{tag} encode", []).append(timed(
                        [py, "-m", "gancomp", "encode", img, f, "-c", "wavelet2", "-q", a.q, "-f"], env,
                        tree))
                    per.setdefault(f"{tag} decode", []).append(timed(
                        [py, "-m", "gancomp", "decode", f, o, "-f"], env, tree))
                per.setdefault("AVIF s6 q50 encode", []).append(timed(
                    [py, "-c", AV, img, f"{td}/a.avif"], dict(os.environ, OMP_NUM_THREADS="1")))
            for k, v in per.items():
                res.setdefault(k, []).append((statistics.median(c for c, _ in v),
                                              statistics.median(m for _, m in v)))
            print(os.path.basename(img), {k: round(v[-1][0], 3) for k, v in res.items()}, flush=True)
    print("| command | CPU s (median of images) | minor faults |\n|---|---:|---:|")
    for k, v in res.items():
        print(f"| {k} | {statistics.median(c for c, _ in v):.3f} | "
              f"{statistics.median(m for _, m in v):.0f} |")


if __name__ == "__main__":
    main()
