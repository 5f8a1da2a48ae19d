"""Export a run's network for deployment: `PREFIX-symbol.json`, `PREFIX-0000.params` and
`PREFIX-preprocess.json`, everything needed to use it.

    python -m gluon_resnet_v2.export --run-dir runs/r110 [--which latest] [--out deploy/r110]

The network files load without this package: `gluon.SymbolBlock.imports(json, ['data'],
params)` or `mx.mod.Module` with `mx.model.load_checkpoint`. The preprocess file says how
raw pixels become the network's input (the training split's per-channel mean and std, the
input size, channel order and layout), the classes and names, and which checkpoint
(default: the final one; see evaluate.py for --which best).
"""
import json
import os

import click

from .evaluate import which_option


@click.command()
@click.option('--run-dir', required=True, help='run directory holding checkpoints')
@which_option
@click.option('--out', default=None, help='output prefix [default: RUN_DIR/export/model]')
def main(run_dir, which, out):
    """Write symbol JSON, params and preprocessing of a run's checkpoint."""
    import mxnet as mx

    from .errors import UserError
    from .evaluate import describe, load_run, provenance, restore_net
    from .cli import check_output_dir
    cfg, params, state = load_run(run_dir, which, {}, with_state=True)
    out = out or os.path.join(run_dir, 'export', 'model')
    check_output_dir(os.path.dirname(os.path.abspath(out)), '--out')
    if os.path.exists(out + '-symbol.json'):
        raise UserError('%s-symbol.json exists: choose another --out (nothing was overwritten)'
                        % out)
    data = state.get('data') or measured_data(cfg)
    prep = preprocessing(cfg, data, provenance(which, state))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    classes = params['fc_weight'].shape[0]
    net = restore_net(cfg, params, [mx.cpu()], classes)
    size = prep['input']['height']
    net(mx.nd.zeros((1, 3, size, size)))                   # trace the graph once
    net.export(out, epoch=0)
    with open(out + '-preprocess.json', 'w') as f:
        json.dump(prep, f, indent=1)
    click.echo('wrote %s-symbol.json, %s-0000.params and %s-preprocess.json (%s; %d classes, '
               'input 3x%dx%d, or any size for the fully convolutional nets)'
               % (out, out, out, describe(prep['source']), classes, size, size))


def measured_data(cfg):
    """The data statistics of a checkpoint written before checkpoints recorded them."""
    from .data import build_data
    from .engine import data_fingerprint
    with build_data(cfg.data) as data:
        return data_fingerprint(data)


def preprocessing(cfg, data, source):
    """How raw pixels become the network's input, as the run's test images did."""
    from .data import dataset_spec
    imagenet = dataset_spec(cfg.data.dataset).family == 'imagenet'
    size = cfg.data.test_crop if imagenet else (dataset_spec(cfg.data.dataset).input_size(
        cfg.data) or 32)
    return dict(
        source=source, dataset=cfg.data.dataset, model=cfg.model.model or cfg.model.depth,
        classes=data['classes'], class_names=data.get('class_names'),
        input=dict(layout='NCHW', channel_order='RGB', dtype='float32', height=size,
                   width=size, resize_shorter_side_to=cfg.data.test_crop if imagenet else None,
                   center_crop=cfg.data.test_crop if imagenet else None,
                   scale=1.0 / 255, mean=data['mean'], std=data['std'],
                   formula='x = (rgb_uint8 * scale - mean) / std, per channel, then NHWC -> '
                           'NCHW'))


def run():
    """The console entry point (grv-export): one-line errors, exit codes."""
    from .cli import main_wrapper
    main_wrapper(main)()


if __name__ == '__main__':
    run()
