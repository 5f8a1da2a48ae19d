"""The `python -m legacy_symbol.compare` group: each comparison module defines its own
subcommand, this module puts them side by side (importable for in-process tests)."""
import click

from .equivalence import equivalence_cmd
from .notes_vs_paper import notes_cmd
from .speed import speed_cmd
from .train import train_cmd


@click.group()
def cli():
    """Compare the Gluon ResNets with the legacy mx.sym / Module code."""


for command in (equivalence_cmd, train_cmd, speed_cmd, notes_cmd):
    cli.add_command(command)
