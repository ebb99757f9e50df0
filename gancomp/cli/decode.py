"""``gancomp decode``: .gcz -> image."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .common import describe_channels, note


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("input", metavar="INPUT")
@click.argument("output", metavar="[OUTPUT]", required=False)
@click.option("--format", "fmt", type=click.Choice(["png", "jpeg", "tiff", "bmp", "ppm", "webp"]),
              default=None, help="Output format (default: from OUTPUT's suffix; PNG on stdout, "
                                 "for a name without suffix and for devices/pipes).")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, show_default=True,
              help="Quality of JPEG output (.jpg/.jpeg or --format jpeg).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="Where learned codecs run their synthesis (default auto).")
@click.option("--passes", type=click.IntRange(1, 8), default=None,
              help="Progressive files (ae passes=K): decode only the first k passes.")
@click.option("--decoder", type=click.Choice(["gan", "mse"]), default=None,
              help="generative: GAN synthesis (default) or the MSE synthesis of the same latent.")
@click.option("-f", "--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@click.option("-v", "--verbose", is_flag=True, help="Report codec and time on stderr.")
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
def decode(input: str, output: str | None, fmt: str | None, jpeg_quality: int,
           device: str | None, passes: int | None, decoder: str | None, force: bool,
           verbose: bool, quiet: bool) -> None:
    """Decompress INPUT (.gcz; '-' = stdin) to OUTPUT ('-' = stdout).

    OUTPUT defaults to INPUT with the suffix .png.
    """
    from .. import api, imageio, progress
    from .common import keep_freed_memory

    keep_freed_memory()

    if output is None:
        output = "-" if input == "-" else str(Path(input).with_suffix(".png"))
    # everything that can fail cheaply fails before the (possibly slow) decode
    imageio.check_output(output, force=force, protect=input)
    fmt = imageio.output_format(output, fmt)
    t0 = time.perf_counter()
    data = imageio.read_input_bytes(input)
    options = {"device": device} if device else {}
    if passes is not None:
        options["passes"] = passes
    if decoder:
        options["decoder"] = decoder
    with progress.bar("decoding…", not quiet):
        dec = api.decode(data, **options)
    h = dec.header
    if h.bit_depth > 8:
        note(f"{input}: source was {h.bit_depth}-bit; decoded image is 8-bit", quiet)
    out = imageio.encode_image_bytes(dec.pixels, fmt, dec.icc, dec.exif, jpeg_quality)
    imageio.write_output(output, out, force=force, protect=input)
    if verbose and not quiet:
        note(f"{input} ({h.width}x{h.height} {describe_channels(h.channels)}, codec "
             f"{dec.codec_name}) -> {output} ({fmt}), {time.perf_counter() - t0:.2f} s")
