"""``gancomp train``: train a hyperprior model from a config, then optionally export it;
``gancomp train ae ...``: the ``ae`` family's trainer (:mod:`gancomp.train.ae`)."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]},
             invoke_without_command=True)
@click.option("--config", "config",
              help="Config name (tiny, cpu) from gancomp/train/configs/ or a JSON path "
                   "(required for the hyperprior).")
@click.option("--data", help="Image folder of training photos (never Kodak).")
@click.option("--run-dir", help="Folder for checkpoint, crop cache and loss.csv.")
@click.option("--steps", type=int, help="Stop after this many steps in total.")
@click.option("--minutes", type=float, help="Stop after this many minutes of this run.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Where to train.")
@click.option("--fresh", is_flag=True, help="Ignore an existing checkpoint.")
@click.option("--export", "export_name", help="After training, export to models/ under this id.")
@click.option("--models-dir", default="models", show_default=True, help="Export folder.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def train(ctx: click.Context, config: str | None, data: str | None, run_dir: str | None,
          steps: int | None, minutes: float | None, device: str | None, fresh: bool,
          export_name: str | None, models_dir: str, quiet: bool) -> None:
    """Rate-distortion training with checkpoints (resumes by default) and a CSV loss log.

    Without a subcommand: the hyperprior codec (--config required). `gancomp train ae -h`:
    the ae family (seed 001 block autoencoders)."""
    from pathlib import Path

    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        raise click.UsageError("Missing option '--config' (or a family: gancomp train ae ...).")
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



@train.command("ae", context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                       "help_option_names": []}, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def train_ae(args: tuple[str, ...]) -> None:
    """The ae family: base CNN-AE, upsampling generator, residual AE, GAN decoder (all
    options: gancomp train ae -h)."""
    from ..train.ae import main

    main(list(args), prog="gancomp train ae")
