"""`python -m legacy_symbol.compare equivalence|train|speed|notes` (the group: cli.py)."""
from gluon_resnet_v2.cli import main_wrapper
from legacy_symbol.compare.cli import cli

if __name__ == '__main__':
    main_wrapper(cli)()
