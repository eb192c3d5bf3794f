"""The ``mmea`` click group. Each command lives in its own module of this package."""

from __future__ import annotations

import os
import sys

import click

from mmea_pyg import __version__
from mmea_pyg.errors import MMEAError

#: Exit status of an error in the input (a file, a value, a run): :class:`MMEAError`.
EXIT_ERROR = 1
#: Exit status of a command line click cannot parse or whose option values are out of range.
EXIT_USAGE = 2


class OneLineUsageError(click.ClickException):
    """A click usage error told in one line (``Error: ...``, no usage block), exit status
    :data:`EXIT_USAGE`."""

    exit_code = EXIT_USAGE

    @classmethod
    def of(cls, exc: click.UsageError) -> OneLineUsageError:
        """The one-line form of ``exc``: the command, the message and where to read the options."""
        ctx = exc.ctx
        if ctx is None:
            return cls(exc.format_message())
        message = exc.format_message().rstrip(".")
        return cls(f"{ctx.command_path}: {message} (see '{ctx.command_path} --help')")


class _Group(click.Group):
    """Turns :class:`~mmea_pyg.errors.MMEAError` into a one-line message and exit status
    :data:`EXIT_ERROR`, and click's usage errors into one line and exit status :data:`EXIT_USAGE`."""

    def make_context(self, info_name, args, parent=None, **extra) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.exceptions.NoArgsIsHelpError:  # `mmea` alone: the help page, as click shows it
            raise
        except click.UsageError as exc:
            raise OneLineUsageError.of(exc) from None

    def invoke(self, ctx: click.Context):
        from mmea_pyg.distributed import leave_group

        if int(os.environ.get("RANK", "0")) > 0:  # under torchrun, rank 0 prints the summary (errors: all)
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:  # a command's own options, or an unknown command
            raise OneLineUsageError.of(exc) from None
        except MMEAError as exc:
            click.secho(f"Error: {exc}", fg="red", err=True)
            sys.exit(EXIT_ERROR)
        finally:
            leave_group()  # the models of the command are gone: the process group goes last


@click.group("mmea", cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mmea")
def cli() -> None:
    """Multimodal entity alignment on PyTorch Geometric."""


#: The command modules; each exposes ``COMMANDS``.
COMMAND_MODULES = (
    "cmd_download",
    "cmd_info",
    "cmd_featurize",
    "cmd_train",
    "cmd_eval",
    "cmd_report",
    "cmd_align",
)


def _register() -> None:
    """Attach every command module's command(s) to the group."""
    import importlib

    for name in COMMAND_MODULES:
        module = importlib.import_module(f"mmea_pyg.cli.{name}")
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    cli()
