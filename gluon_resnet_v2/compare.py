"""`python -m gluon_resnet_v2.compare equivalence`: the Gluon nets against the mx.sym originals.

A click group, so further comparisons (train, speed, notes) are subcommands beside it.
"""
import sys

import click

from legacy_symbol import equivalence


def _check_cases(ctx, param, values):
    """Parse each --model now, so a bad name fails with the list of valid ones."""
    import gluon_resnet_v2 as grv
    for text in values:
        name, overrides = equivalence.parse_case(text)
        try:
            grv.get_model(name, **overrides)
        except (ValueError, TypeError) as e:
            raise click.BadParameter(str(e))
    return values


@click.group()
def cli():
    """Compare the Gluon ResNets with the legacy mx.sym / Module code."""


@cli.command('equivalence')
@click.option('--model', 'models', multiple=True, callback=_check_cases, metavar='NAME[:K=V,...]',
              help='registry name with get_model overrides, e.g. cifar_resnet110_v2 or '
                   'cifar_resnet20_v1:block=bottleneck,shortcut=gate_exclusive; repeatable. '
                   'Default: %s.' % ', '.join(equivalence.DEFAULT_CASES))
@click.option('--batch', default=8, show_default=True, help='images in the one compared batch')
@click.option('--seed', default=0, show_default=True, help='seed of weights, BN statistics, batch')
@click.option('--mkldnn/--no-mkldnn', default=True, show_default=True,
              help='also run the Module with the default MKLDNN subgraph backend (subprocess)')
@click.option('--out', type=click.Path(dir_okay=False), default=None,
              help='write the report as JSON here')
def equivalence_cmd(models, batch, seed, mkldnn, out):
    """Same weights, same batch: outputs, every gradient and BN statistics, Gluon vs Module.

    Exit status 1 if Module (MXNET_SUBGRAPH_BACKEND=NONE) and Gluon disagree; an MKLDNN
    disagreement is reported as a finding."""
    report = equivalence.run_equivalence(models or equivalence.DEFAULT_CASES, batch, seed, mkldnn)
    click.echo(equivalence.format_report(report))
    if out:
        equivalence.write_json(report, out)
        click.echo('report written to %s' % out)
    sys.exit(0 if report['passed'] else 1)


from gluon_resnet_v2.bench_speed import speed_cmd; cli.add_command(speed_cmd)  # noqa: E402,E702
from legacy_symbol.notes_vs_paper import notes_cmd; cli.add_command(notes_cmd)  # noqa: E402,E702
from gluon_resnet_v2.compare_train import train_cmd; cli.add_command(train_cmd)  # noqa: E402,E702

if __name__ == '__main__':
    cli()
