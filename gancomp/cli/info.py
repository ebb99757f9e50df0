"""``gancomp info``: dump .gcz headers."""

from __future__ import annotations

import json

import click


def header_dict(path: str, data: bytes) -> dict:
    """The header of one file as a JSON-friendly dict."""
    from ..api import read_header
    from ..codecs import codec_by_id
    from ..container import KNOWN_SECTIONS

    h = read_header(data)
    cls = codec_by_id(h.codec_id)
    eff = dict(h.params)
    if cls is not None and h.version >= (1, 1):  # 1.1 leaves the codec's defaults out
        eff = {**cls().file_defaults(h.codec_version), **h.params}
    params = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in eff.items()}
    return {
        "file": path, "bytes": len(data), "format": f"{h.version[0]}.{h.version[1]}",
        "codec": cls.name if cls else f"unknown id {h.codec_id}", "codec_version": h.codec_version,
        "width": h.width, "height": h.height, "channels": h.channels, "bit_depth": h.bit_depth,
        "bpp": round(len(data) * 8 / (h.width * h.height), 6),
        "model": h.model_id or None, "model_sha256_prefix": h.model_sha256_prefix or None,
        "params": params, "params_stored": sorted(h.params), "streams": [len(s) for s in h.streams],
        "header_bytes": len(data) - sum(len(s) for s in h.streams),
        "sections": {KNOWN_SECTIONS.get(t, hex(t)): len(b) for t, b in h.sections.items()},
    }


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def info(files: tuple[str, ...], as_json: bool) -> None:
    """Show the header of each .gcz FILE ('-' = stdin); the checksum is verified.

    Every file is reported; a bad one is one line on stderr, and the exit code is then that
    of the first failure (3 for a corrupt file, 2 for a missing one). With --json, standard
    output holds only the JSON (an object for one file, a list for several: the good ones).
    """
    from ..errors import GanCompError
    from ..imageio import read_input_bytes

    rows, first_error = [], None
    for f in files:
        try:
            row = header_dict(f, read_input_bytes(f))
        except GanCompError as exc:
            msg = str(exc) if str(exc).startswith(f"{f}:") else f"{f}: {exc}"
            click.echo(f"gancomp: error: {msg}", err=True)
            first_error = first_error or exc
            continue
        rows.append(row)
        if not as_json:
            _print_row(row)
    if as_json and rows:
        click.echo(json.dumps(rows if len(files) > 1 else rows[0], indent=2))
    if first_error is not None:
        raise SystemExit(first_error.exit_code)


def _print_row(r: dict) -> None:
    click.echo(f"{r['file']}: .gcz {r['format']}, {r['bytes']} bytes, {r['bpp']} bpp")
    for key in ("codec", "codec_version", "width", "height", "channels", "bit_depth",
                "model", "model_sha256_prefix", "params", "params_stored", "streams",
                "header_bytes", "sections"):
        if r[key] not in (None, {}, []):
            click.echo(f"  {key:<20} {r[key]}")
