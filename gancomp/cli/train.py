"""``gancomp train``: train a hyperprior model from a config, then optionally export it."""

from __future__ import annotations

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", required=True,
              help="Config name (tiny, cpu) from gancomp/train/configs/ or a JSON path.")
@click.option("--data", help="Image folder of training photos (never Kodak).")
@click.option("--run-dir", help="Folder for checkpoint, crop cache and loss.csv.")
@click.option("--steps", type=int, help="Stop after this many steps in total.")
@click.option("--minutes", type=float, help="Stop after this many minutes of this run.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Where to train.")
@click.option("--fresh", is_flag=True, help="Ignore an existing checkpoint.")
@click.option("--export", "export_name", help="After training, export to models/ under this id.")
@click.option("--models-dir", default="models", show_default=True, help="Export folder.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def train(config: str, data: str | None, run_dir: str | None, steps: int | None,
          minutes: float | None, device: str | None, fresh: bool, export_name: str | None,
          models_dir: str, quiet: bool) -> None:
    """Rate-distortion training with checkpoints (resumes by default) and a CSV loss log."""
    from pathlib import Path

    from ..train.loop import load_config
    from ..train.loop import train as run_train

    cfg = load_config(config, data=data, run_dir=run_dir, steps=steps, minutes=minutes,
                      device=device)
    ckpt = run_train(cfg, resume=not fresh, progress=not quiet)
    click.echo(f"checkpoint: {ckpt}", err=True)
    if export_name:
        from ..train.export import export

        path = export(ckpt, export_name, Path(models_dir))
        click.echo(f"exported: {path}", err=True)
