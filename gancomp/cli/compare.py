"""``gancomp compare``: rate-distortion table, BD-rates and plots for codecs on images."""

from __future__ import annotations

import click

from .common import note

BD_ANCHORS = "jpeg,webp"


def print_table(title: str, header: list[str], rows: list[list[str]], markdown: bool,
                err: bool = False) -> None:
    """Print a table with rich (or as GitHub markdown) on stdout, or on stderr when ``err``
    (standard output carries --json/--csv data)."""
    from ..compare import markdown_table

    if markdown:
        click.echo(f"\n**{title}**\n\n" + markdown_table(header, rows), err=err)
        return
    from rich.console import Console
    from rich.table import Table

    import sys

    t = Table(title=title, title_justify="left")
    for i, h in enumerate(header):
        t.add_column(h, justify="left" if i == 0 else "right", no_wrap=True)
    for r in rows:
        t.add_row(*r)
    stream = sys.stderr if err else sys.stdout
    Console(file=stream, width=None if stream.isatty() else 200).print(t)


def codec_listing() -> list[tuple[str, str, str]]:
    """(name, kind, status/description) for every codec compare can run."""
    from .. import baselines
    from ..codecs import DEFAULT_CODEC, available

    out = [(n, "gancomp", ("[default] " if n == DEFAULT_CODEC else "") + c.description)
           for n, c in available().items()]
    for n, why in baselines.availability().items():
        out.append((n, "classical", f"MISSING: {why}" if why else baselines.CLASSICAL[n].description))
    return out


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("images", nargs=-1, metavar="IMAGES|DIR...")
@click.option("--codecs", default="default,jpeg,webp", show_default=True,
              help="Comma list: gancomp codecs (default, wavelet, ...) and jpeg, webp, jpeg2000, "
                   "avif, jpegxl, heic.")
@click.option("-q", "--quality", "quality", multiple=True, metavar="LIST",
              help="Qualities to sweep: '10,50,90' for every codec or 'jpeg:5,10,20' for one "
                   "(repeatable). Default: each codec's own sweep.")
@click.option("--target-bpp", type=float, default=None,
              help="Instead of a sweep, match this bpp per image (bisection over quality).")
@click.option("--json", "json_path", metavar="FILE", help="Write all measurements as JSON.")
@click.option("--csv", "csv_path", metavar="FILE", help="Write per-image rows as CSV.")
@click.option("--markdown", is_flag=True, help="Print tables as GitHub markdown.")
@click.option("--plot", "plot_path", metavar="FILE.png", help="Write RD curves (PSNR, MS-SSIM).")
@click.option("--anchors", "anchors_path", metavar="FILE",
              help="Overlay published curves from a CSV (e.g. compressai_kodak_rd.csv).")
@click.option("--anchor-methods", default=None, metavar="LIST",
              help="Methods of --anchors to show (default bmshj2018-hyperprior, mbt2018-mean).")
@click.option("--bd-anchors", default=BD_ANCHORS, show_default=True, metavar="LIST",
              help="Codecs to report BD-rates against.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="Where learned codecs run their transforms.")
@click.option("--threads", type=click.IntRange(1, 256), default=None,
              help="torch CPU threads (default: torch's choice).")
@click.option("--section", default=None, metavar="KEY",
              help="Also write the results as section KEY of --report (docs/BENCHMARKS.md).")
@click.option("--report", "report_path", default="docs/BENCHMARKS.md", show_default=True,
              metavar="FILE", help="Markdown file for --section.")
@click.option("--html", "html_path", metavar="FILE.html",
              help="Write a self-contained page: RD plots, tables, side-by-side viewer.")
@click.option("-w", "--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Measure images in this many processes (one torch thread each).")
@click.option("--list-codecs", is_flag=True, help="List the codecs compare can run and exit.")
@click.option("--quiet", is_flag=True, help="No progress bar or notes.")
def compare(images: tuple[str, ...], codecs: str, quality: tuple[str, ...], target_bpp: float | None,
            json_path: str | None, csv_path: str | None, markdown: bool, plot_path: str | None,
            anchors_path: str | None, anchor_methods: str | None, bd_anchors: str,
            device: str | None, threads: int | None, section: str | None, report_path: str,
            list_codecs: bool, quiet: bool, html_path: str | None = None, workers: int = 1) -> None:
    """Compare codecs on IMAGES (files or folders): a table in the layout of seed 000
    (scheme, MSE, SSIM, MS-SSIM, PSNR, bpp, CR, encode/decode seconds), BD-rates against
    JPEG and WebP, and optionally JSON, CSV and an RD plot.

    \b
      gancomp compare kodim23.png --codecs default,jpeg,webp,avif --plot rd.png
      gancomp compare kodak/ --codecs wavelet,jpeg -q jpeg:5,10,20,40 --json rd.json
      gancomp compare kodak/ --codecs wavelet,webp --target-bpp 0.5
    """
    from .. import compare as cmp
    from ..errors import InputError

    if section:  # fail before the run, not after it
        from ..report import _markers

        try:
            _markers(section)
        except ValueError:
            raise InputError(f"bad --section key {section!r} (letters, digits, . _ -)") from None

    if list_codecs:
        for name, kind, desc in codec_listing():
            click.echo(f"{name:<14} {kind:<9} {desc}")
        return
    if not images:
        raise InputError("give images or a folder (see gancomp compare --help)")
    if quality and target_bpp is not None:
        raise InputError("give either --quality or --target-bpp, not both")
    from pathlib import Path

    if json_path == "-" and csv_path == "-":
        raise InputError("--json - and --csv - cannot share standard output")
    for opt, f in (("--plot", plot_path), ("--report", report_path if section else None)):
        if f == "-":
            raise InputError(f"{opt} needs a file name, not -")
    from ..imageio import check_output

    for opt, f in (("--json", json_path), ("--csv", csv_path), ("--plot", plot_path),
                   ("--html", html_path),
                   ("--report", report_path if section else None)):
        if f:  # fail before the run, not after it
            try:
                check_output(f, force=True, binary=False)
            except InputError as exc:
                raise InputError(f"{opt} {exc}") from None
    data_on_stdout = "-" in (json_path, csv_path)  # then tables go to stderr
    paths = cmp.image_paths(images)
    runners = cmp.resolve_codecs(codecs.split(","), {"device": device})
    common, per = cmp.parse_qualities(quality)
    anchor_curves = {}
    if anchors_path:
        from .. import anchors

        anchor_curves = anchors.load(anchors_path, anchor_methods.split(",") if anchor_methods else None)
    if threads:
        import torch

        torch.set_num_threads(threads)
    kept: dict | None = {} if html_path else None
    result = cmp.run(paths, runners, qualities=common, per_codec=per, target_bpp=target_bpp,
                     progress=not quiet, log=None if quiet else note, keep=kept, workers=workers)
    native = {r.name: r.native_name for r in runners}
    what = f"target {target_bpp:g} bpp" if target_bpp is not None else "quality sweep"
    print_table(f"{len(paths)} image(s), {what}; mean over images, median seconds per image",
                cmp.COLUMNS, cmp.table_rows(result.summaries, native), markdown, data_on_stdout)
    curves = cmp.curves(result.summaries)
    extra = {}
    if target_bpp is None:
        allc = dict(curves, **anchor_curves)
        bd_names = [a.strip() for a in bd_anchors.split(",") if a.strip()] + list(anchor_curves)
        extra["bd_rate_psnr"] = cmp.bd_matrix(allc, bd_names, "psnr")
        extra["bd_rate_ms_ssim"] = cmp.bd_matrix(allc, bd_names, "ms_ssim")
        present = [a for a in bd_names if a in allc]
        if present:
            from ..anchors import label

            hdr = ["codec"] + [f"vs {label(a) if a in anchor_curves else a}" for a in present]
            print_table("BD-rate, PSNR (negative = fewer bits for the same quality)", hdr,
                        cmp.bd_rows(extra["bd_rate_psnr"], present), markdown, data_on_stdout)
            if any(v is not None for m in extra["bd_rate_ms_ssim"].values() for v in m.values()):
                print_table("BD-rate, MS-SSIM (dB)", hdr,
                            cmp.bd_rows(extra["bd_rate_ms_ssim"], present), markdown,
                            data_on_stdout)
        elif not quiet:
            note(f"no BD-rates: none of {bd_anchors} was compared")
    if json_path:
        cmp.write_text(json_path, cmp.to_json(result, extra))
    if csv_path:
        cmp.write_text(csv_path, cmp.to_csv(result))
    if plot_path:
        from ..rdplot import plot

        plot(dict(curves, **anchor_curves), plot_path,
             title=f"{len(paths)} image(s): {', '.join(r.name for r in runners)}")
    if html_path:
        import shlex
        import sys

        from ..htmlreport import build

        build(result, runners, paths, kept, html_path, command=shlex.join(["gancomp", *sys.argv[1:]]),
              bd={"psnr": extra.get("bd_rate_psnr"), "ms_ssim": extra.get("bd_rate_ms_ssim")},
              native_name=native, log=None if quiet else note)
    if section:
        import os
        import shlex
        import sys

        from ..anchors import label
        from ..report import write_section

        rel = None
        if plot_path:
            rel = os.path.relpath(Path(plot_path).resolve(), Path(report_path).resolve().parent)
        text = cmp.markdown_report(
            result, shlex.join(["gancomp", *sys.argv[1:]]),
            {"psnr": extra.get("bd_rate_psnr"), "ms_ssim": extra.get("bd_rate_ms_ssim")},
            {a: label(a) for a in anchor_curves}, rel, native)
        write_section(report_path, section, text)
