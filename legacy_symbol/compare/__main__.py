"""`python -m legacy_symbol.compare equivalence|train|speed|notes` (the group: cli.py)."""
from gluon_resnet_v2.cli import main_wrapper
from legacy_symbol.compare.cli import cli


def run():
    """The console entry point (grv-compare)."""
    main_wrapper(cli)()


if __name__ == '__main__':
    run()
