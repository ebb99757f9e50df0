"""The ``gancomp`` command: a thin Click layer over the library.

Subcommands live one per module in this package and are imported only when run, so
``gancomp --help`` never imports torch. Add a subcommand by adding it to COMMANDS.
"""

from __future__ import annotations

import importlib
import sys

import click

from .. import __version__

# name -> (module, function, one-line help shown by `gancomp --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "encode": ("encode", "encode", "Compress an image to .gcz."),
    "decode": ("decode", "decode", "Decompress a .gcz file to an image."),
    "info": ("info", "info", "Show the header of .gcz files."),
    "models": ("models", "models", "List installed models."),
    "codecs": ("models", "codecs", "List available codecs."),
    "compare": ("compare", "compare", "Compare codecs on images: RD table, BD-rates, plots."),
    "bench": ("bench", "bench", "Run a benchmark suite and write docs/BENCHMARKS.md."),
    "train": ("train", "train", "Train a learned codec from a config."),
    "batch": ("batch", "batch", "Encode or decode whole folders on all cores or on Ray."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        mod, fn, _ = COMMANDS[name]
        return getattr(importlib.import_module(f"{__name__}.{mod}"), fn)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


EXIT_CODES = """\b
Exit codes:
  0  success
  1  unexpected failure (a bug: please report it)
  2  bad input image or options (also: refusing a terminal as binary stdin/stdout)
  3  corrupt or unsupported .gcz file
  4  model missing or not the one the file needs
  5  output cannot be written (permission, read-only file system, disk full)
  130 interrupted; 141 broken pipe"""


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=EXIT_CODES, invoke_without_command=True)
@click.version_option(__version__, prog_name="gancomp")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """gancomp: learned and generative image compression (.gcz).

    \b
      gancomp encode photo.png photo.gcz
      gancomp decode photo.gcz photo.png
      cat a.png | gancomp encode - - | gancomp decode - - > b.png
      gancomp compare kodim23.png --codecs default,jpeg,webp --plot rd.png
    """
    if ctx.invoked_subcommand is None:  # bare `gancomp`: the help, not an error (exit 0)
        click.echo(ctx.get_help())


def main() -> None:
    """Console entry point: run the CLI, turning library errors into one line on stderr."""
    from ..errors import GanCompError

    try:
        cli.main(standalone_mode=False)
    except GanCompError as exc:
        click.echo(f"gancomp: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("gancomp: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"gancomp: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("gancomp: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(141)
    except MemoryError:
        click.echo("gancomp: error: out of memory", err=True)
        sys.exit(1)
