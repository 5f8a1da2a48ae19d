"""Export a run's network for deployment: `PREFIX-symbol.json` + `PREFIX-0000.params`.

    python -m gluon_resnet_v2.export --run-dir runs/r110 [--which best] [--out deploy/r110]

The files load without this package: `gluon.SymbolBlock.imports(json, ['data'], params)`
or `mx.mod.Module` with `mx.model.load_checkpoint`.
"""
import os

import click


@click.command()
@click.option('--run-dir', required=True, help='run directory holding checkpoints')
@click.option('--which', type=click.Choice(['best', 'latest']), default='best',
              help='checkpoint to export [default: best]')
@click.option('--out', default=None, help='output prefix [default: RUN_DIR/export/model]')
def main(run_dir, which, out):
    """Write symbol JSON + params of a run's checkpoint."""
    import mxnet as mx

    from .data import dataset_spec
    from .errors import UserError
    from .evaluate import load_run, restore_net
    cfg, params = load_run(run_dir, which, {})
    out = out or os.path.join(run_dir, 'export', 'model')
    if os.path.exists(out + '-symbol.json'):
        raise UserError('%s-symbol.json exists: choose another --out (nothing was overwritten)'
                        % out)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    classes = params['fc_weight'].shape[0]
    net = restore_net(cfg, params, [mx.cpu()], classes)
    size = dataset_spec(cfg.data.dataset).input_size(cfg.data) or 32   # any size works
    net(mx.nd.zeros((1, 3, size, size)))                   # trace the graph once
    net.export(out, epoch=0)
    click.echo('wrote %s-symbol.json and %s-0000.params (%s, %d classes, input 3x%dx%d or any '
               'size for the fully convolutional nets)' % (out, out, which, classes, size, size))


if __name__ == '__main__':
    from .cli import main_wrapper
    main_wrapper(main)()
