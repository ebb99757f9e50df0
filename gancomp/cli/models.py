"""``gancomp models`` and ``gancomp codecs``: what is installed."""

from __future__ import annotations

import json

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--verify", is_flag=True, help="Also check every weights file's SHA-256.")
def models(as_json: bool, verify: bool) -> None:
    """List installed models: id, codec, SHA-256, size and training data."""
    from ..weights import list_models, sha256_file

    rows = []
    for m in list_models():
        row = {"id": m.id, "codec": m.codec, "sha256": m.sha256, "bytes": m.size,
               "data": m.card.get("data"), "steps": m.card.get("steps"), "path": str(m.path)}
        if verify:
            row["verified"] = sha256_file(m.path) == m.sha256
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no models installed")
        return
    for r in rows:
        data = r["data"] if isinstance(r["data"], str) else json.dumps(r["data"])
        ok = "" if not verify else ("  ok" if r["verified"] else "  SHA-256 MISMATCH")
        click.echo(f"{r['id']:<16} {r['codec']:<14} {r['sha256'][:16]}  {r['bytes'] / 1e6:6.2f} MB  "
                   f"steps {r['steps']}  data: {data}{ok}")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Also list each codec's options.")
def codecs(verbose: bool) -> None:
    """List available codecs (the default is marked with *)."""
    from ..codecs import DEFAULT_CODEC, available
    from .common import codec_options_help

    for name, cls in available().items():
        mark = "*" if name == DEFAULT_CODEC else " "
        kind = "lossless" if cls.lossless else "lossy"
        click.echo(f"{mark} {name:<14} id {cls.codec_id:<3} {kind:<8} {cls.description}")
    if verbose:
        click.echo("\nOptions (-x NAME=VALUE, or the named flag of `gancomp encode`):")
        for line in codec_options_help():
            click.echo(line)
