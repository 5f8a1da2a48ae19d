"""Train with `mx.mod.Module`, the notes' API, on the Gluon trainer's data, recipe and logs.

    python -m legacy_symbol.train --cpus 2 --depth 110                        # paper symbol
    python -m legacy_symbol.train --net notes --dataset cifar10-sample --max-iters 500
    python -m legacy_symbol.train --mirror --gpus 0,1 --model cifar_resnet1001_v2

Every option of `python -m gluon_resnet_v2.train` is here under the same name (they are
the same config fields, gluon_resnet_v2.cli), plus --net and --mirror. The run directory
gets the same config.yaml, log.jsonl and curves.png, so `python -m gluon_resnet_v2.plotting
runs/gluon runs/module` overlays a Gluon and a Module run.
"""
import click

from gluon_resnet_v2.cli import build_config, config_options, main_wrapper
from gluon_resnet_v2.config import ModelConfig
from gluon_resnet_v2.errors import UserError

from .fit import NETS
from .mirror import POLICIES


def _model_flags(values):
    return sorted('--' + f.replace('_', '-') for f in ModelConfig.__dataclass_fields__
                  if values.get(f) is not None)


@click.command(context_settings={'max_content_width': 120})
@click.option('--net', type=click.Choice(NETS), default='paper', show_default=True,
              help='paper: legacy_symbol.paper, the Gluon model of --depth/--model/--version '
                   'as a symbol; notes: the notes\' fixed ResNet(12, [64, 128, 256]) (CIFAR-10, '
                   'quirks included; takes no model options)')
@click.option('--mirror/--no-mirror', default=False, show_default=True,
              help='memory mirroring: the graph executor recomputes forward results in the '
                   'backward pass instead of keeping them (same numbers, one more forward pass '
                   'per step; legacy_symbol/mirror.py)')
@click.option('--mirror-policy', type=click.Choice(POLICIES), default=None,
              help='with --mirror (default segments): segments = keep a few residual-stream '
                   'tensors, recompute the rest, convolutions included (ResNet-110 batch 128: '
                   'executor plan 1,038 -> 288 MB); env = MXNET_BACKWARD_DO_MIRROR=1 alone, '
                   'MXNet\'s own choice (recomputes BN, ReLU and additions; saves nothing on '
                   'MXNet 1.9.1)')
@config_options
def main(config_file, net, mirror, mirror_policy, **values):
    """Train one run with mx.mod.Module (bind, init_params, init_optimizer, forward/backward/
    update). No checkpoints and no resume: --run-dir must be new or empty; --resume,
    --checkpoint-interval and --hybridize (a bound symbol is always a static graph) do not
    apply. The final weights are saved as a Module checkpoint (module-NNNN.params)."""
    from gluon_resnet_v2.train import summary_line

    from .fit import fit_module
    if net == 'notes' and _model_flags(values):
        raise UserError('--net notes is a fixed network: drop %s, or use --net paper'
                        % ', '.join(_model_flags(values)))
    if values.get('resume'):
        raise UserError('--resume: the Module trainer writes no checkpoints; use the Gluon '
                        'trainer (python -m gluon_resnet_v2.train) for resumable runs')
    if mirror_policy and not mirror:
        raise UserError('--mirror-policy %s has no effect without --mirror: add --mirror'
                        % mirror_policy)
    cfg = build_config(config_file, values)
    summary = fit_module(cfg, net=net, mirror=(mirror_policy or 'segments') if mirror else None,
                         echo=click.echo)
    click.echo(summary_line(summary))
    return summary


if __name__ == '__main__':
    main_wrapper(main)()
