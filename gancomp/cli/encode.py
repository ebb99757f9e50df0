"""``gancomp encode``: image -> .gcz."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from .common import CodecOptionsCommand, describe_channels, note, parse_extra


@click.command(cls=CodecOptionsCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("input", metavar="INPUT")
@click.argument("output", metavar="[OUTPUT]", required=False)
@click.option("-c", "--codec", default="default", show_default=True,
              help="Codec name (see `gancomp codecs`).")
@click.option("-q", "--quality", type=float, default=None,
              help="Quality 0..100, higher is better (codec default if omitted).")
@click.option("--target-bpp", type=float, default=None,
              help="Find the highest quality whose file is at most this many bits per pixel.")
@click.option("--target-psnr", type=float, default=None,
              help="Find the lowest quality that reaches this PSNR (dB).")
@click.option("--ratio", type=float, default=None,
              help="Compression ratio for codecs that take one (wavelet, gan-inversion).")
@click.option("--colors", type=int, default=None, help="Palette size for the kmeans codec.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="Where learned codecs run their transforms (default auto).")
@click.option("--resize", is_flag=True, default=False,
              help="Let fixed-size codecs (gan-inversion: 64x64) scale the image; decoding "
                   "scales back to the original size.")
@click.option("--entropy", type=click.Choice(["adaptive", "huffman"]), default=None,
              help="Entropy coder of the lossless codec (huffman: the seed's variant).")
@click.option("--finetune", is_flag=True, default=False,
              help="lossless: fit the predictor's output layer to the image when it pays; "
                   "ae: refit the decoder's last layer + a loop filter (CNN-AE-FT).")
@click.option("--adapt", is_flag=True, default=False,
              help="hyperprior: per-image least-squares refit of g_s's last layer + a loop "
                   "filter, coded in the file when it pays.")
@click.option("--effort", type=int, default=None,
              help="overfit: fitting effort 1 (fast) .. 9 (best, slowest).")
@click.option("--seed", type=int, default=None, help="Random seed of codecs that fit at encode time.")
@click.option("--best", is_flag=True, default=False,
              help="Best compression, very slow: -c overfit --effort 9 (about 1.3-1.5 CPU "
                   "hours for a 768x512 photo on one core).")
@click.option("--keep-mask", default=None, metavar="MASK.png",
              help="generative: PNG mask, white = code these regions at high fidelity.")
@click.option("--keep", type=click.Choice(["auto"]), default=None,
              help="generative: keep the blocks with the most edges (see -x keep_fraction=).")
@click.option("-x", "--opt", "extra", multiple=True, metavar="KEY=VALUE",
              help="Codec-specific option (repeatable), e.g. -x loss=mse.")
@click.option("--metadata", type=click.Choice(["none", "icc", "all"]), default="icc",
              show_default=True, help="Metadata to keep: ICC profile, or ICC and EXIF.")
@click.option("-f", "--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@click.option("-v", "--verbose", is_flag=True, help="Report size, bpp and time on stderr.")
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
def encode(input: str, output: str | None, codec: str, quality: float | None,
           target_bpp: float | None, target_psnr: float | None, ratio: float | None,
           colors: int | None, device: str | None, resize: bool, entropy: str | None,
           finetune: bool, adapt: bool, effort: int | None, seed: int | None, best: bool,
           keep_mask: str | None,
           keep: str | None, extra: tuple[str, ...],
           metadata: str,
           force: bool, verbose: bool, quiet: bool) -> None:
    """Compress INPUT (PNG, JPEG, WebP, TIFF, BMP, PPM/PGM; '-' = stdin) to OUTPUT.

    OUTPUT defaults to INPUT with the suffix .gcz; '-' writes to stdout.
    """
    from .. import api, imageio, progress
    from ..errors import InputError
    from .common import keep_freed_memory

    keep_freed_memory()

    if output is None:
        if input == "-":
            output = "-"
        else:
            output = str(Path(input).with_suffix(".gcz"))
    t0 = time.perf_counter()
    if best:
        if codec not in ("default", "overfit") or (effort is not None and effort != 9):
            raise InputError("--best means -c overfit --effort 9; give either --best or -c/--effort")
        codec, effort = "overfit", 9
    # everything that can fail cheaply fails before the (possibly slow) encode
    extra_opts = parse_extra(extra)
    named = {"ratio": ratio, "colors": colors, "device": device, "resize": resize or None,
             "entropy": entropy, "finetune": finetune or None, "adapt": adapt or None, "effort": effort, "seed": seed,
             "keep_mask": keep_mask, "keep": keep}  # named flags = declared options
    both = [k for k, v in named.items() if v is not None and k in extra_opts]
    if both:
        raise InputError(f"give --{both[0]} or -x {both[0]}=…, not both")
    options = dict(extra_opts, **{k: v for k, v in named.items() if v is not None})
    api.check_encode_options(codec, **options)
    imageio.check_output(output, force=force, protect=input)
    if output != "-" and imageio.suffix(output) in imageio.IMAGE_SUFFIXES \
            and not imageio.is_special(output):
        raise InputError(f"{output}: encode writes a .gcz file, not .{imageio.suffix(output)} "
                         f"(name it .gcz; `gancomp decode` writes images)")
    img = imageio.load_image(input)
    fits = codec == "overfit"  # draws its own bar with ETA over the fitting iterations
    if fits and not quiet and sys.stderr.isatty():
        options["progress"] = True
    with progress.bar(f"encoding with {codec}…", not quiet and not fits):
        res = api.encode_array_ex(
            img.pixels, codec, quality, target_bpp=target_bpp, target_psnr=target_psnr,
            icc=img.icc if metadata != "none" else None,
            exif=img.exif if metadata == "all" else None,
            bit_depth=img.bit_depth, **options)
    imageio.write_output(output, res.data, force=force, protect=input)
    for n in img.notes:  # after success, so a refusal is one line
        note(f"{input}: {n}", quiet)
    if verbose and not quiet:
        h, w, c = img.pixels.shape
        bpp = len(res.data) * 8 / (w * h)
        q = f", quality {res.quality:.2f}" if res.quality is not None else ""
        for n in res.notes:
            note(n)
        note(f"{input} ({w}x{h} {describe_channels(c)}) -> {output}: {len(res.data)} bytes, "
             f"{bpp:.4f} bpp{q}, {time.perf_counter() - t0:.2f} s")
