"""The ``mmea`` click group. Each command lives in its own module of this package."""

from __future__ import annotations

import sys

import click

from mmea_pyg import __version__
from mmea_pyg.errors import MMEAError


class _Group(click.Group):
    """Turns :class:`~mmea_pyg.errors.MMEAError` into a one-line message and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MMEAError as exc:
            click.secho(f"Error: {exc}", fg="red", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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
