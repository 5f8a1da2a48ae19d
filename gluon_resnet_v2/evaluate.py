"""Test-set error of a trained network: top-1 (and top-5 for ImageNet).

    python -m gluon_resnet_v2.evaluate --run-dir runs/r110            # its final weights
    python -m gluon_resnet_v2.evaluate --run-dir runs/r200 --test-crop 320   # Table 5 style
    python -m gluon_resnet_v2.evaluate --params model-0000.params --model cifar_resnet110_v2

The default is the run's final checkpoint (checkpoint-latest.pkl), what a paper reports.
`--which best` takes the checkpoint with the lowest evaluation error instead: model
selection on the test set, unless the run held out a validation split (--val-size), on
which it was then selected. Every result names the checkpoint and iteration it comes from.

The networks are fully convolutional up to a global pool, so an ImageNet model trained on
224 crops is evaluated on any crop size (the paper's 320x320).
"""
import json
import os
from dataclasses import replace

import click

from .cli import config_field


WHICH_HELP = ("checkpoint: latest = the run's final weights (the last saved); best = the one "
              'with the lowest evaluation error, i.e. model selection on the test set unless '
              'the run held out a validation split (--val-size) [default: latest]')


def which_option(command):
    return click.option('--which', type=click.Choice(['latest', 'best']), default='latest',
                        help=WHICH_HELP)(command)


def load_run(run_dir, which, overrides, with_state=False):
    """(config, params[, the checkpoint's state]) of a run directory's checkpoint, data
    options overridden."""
    from . import checkpoint
    from .config import Config
    state = checkpoint.load(checkpoint.path(run_dir, which))
    cfg = Config.from_dict(state['config'])
    cfg = replace(cfg, data=replace(cfg.data, **{k: v for k, v in overrides.items()
                                                 if v is not None}))
    return (cfg, state['params'], state) if with_state else (cfg, state['params'])


def provenance(which, state):
    """Which checkpoint a number comes from: {checkpoint, iteration, selected_on}."""
    from . import checkpoint
    selected = None
    if which == 'best':
        selected = 'validation error' if (state.get('data') or {}).get('num_val') else \
            'test error (model selection on the test set)'
    return dict(checkpoint=os.path.basename(checkpoint.path('', which)),
                iteration=state['iteration'], selected_on=selected)


def describe(origin):
    text = '%s, iteration %d' % (origin['checkpoint'], origin['iteration'])
    return text + ('; selected on %s' % origin['selected_on'] if origin['selected_on'] else '')


def restore_net(cfg, params, ctxs, data_classes):
    """The run's network with `params` ({name: array}, or a .params path), hybridized."""
    from . import checkpoint
    from .factory import build_net
    net = build_net(cfg.model, cfg.data.dataset, data_classes)
    net.initialize(ctx=ctxs)
    if isinstance(params, str):
        load_params_file(net, params, ctxs)
    else:
        checkpoint.load_params_into(net, params, 'checkpoint')
    net.hybridize(static_alloc=True)
    return net


@click.command()
@click.option('--run-dir', default=None, help='run directory holding checkpoints')
@which_option
@click.option('--params', 'params_file', default=None,
              help='an MXNet .params file (net.save_parameters) instead of --run-dir')
@config_field('model', help='registry name of the --params network')
@config_field('dataset', help="dataset [default: the run's]")
@config_field('data_dir', help="dataset folder [default: the run's]")
@config_field('test_crop', help='ImageNet test crop, e.g. 320')
@config_field('batch_size', default=100, help='images per batch [default: 100]')
@config_field('cpus', default=1, help='CPU contexts [default: 1]')
@config_field('gpus', default='', help='GPU ids, e.g. 0,1')
@click.option('--json', 'as_json', is_flag=True, help='print the result as JSON')
def main(run_dir, which, params_file, model, dataset, data_dir, test_crop, batch_size, cpus,
         gpus, as_json):
    """Top-1 (and top-5) test error of a run's checkpoint or of a .params file."""
    from .config import Config, DataConfig, ModelConfig, RunConfig
    from .data import build_data
    from .devices import contexts
    from .engine import evaluate
    from .errors import UserError
    if bool(run_dir) == bool(params_file):
        raise UserError('give exactly one of --run-dir and --params')
    overrides = dict(dataset=dataset, data_dir=data_dir, test_crop=test_crop, num_workers=0)
    origin = dict(checkpoint=params_file, iteration=None, selected_on=None)
    if run_dir:
        cfg, params, state = load_run(run_dir, which, overrides, with_state=True)
        origin = provenance(which, state)
    else:
        if not model:
            raise UserError('--params needs --model NAME (the registry name it was trained as)')
        params = params_file
        cfg = Config(model=ModelConfig(model=model),
                     data=DataConfig(**{k: v for k, v in overrides.items() if v is not None}))
    ctxs = contexts(RunConfig(gpus=gpus or (), cpus=cpus))
    with build_data(cfg.data) as data:
        net = restore_net(cfg, params, ctxs, data.classes)
        loss, err1, err5 = evaluate(net, data, ctxs, batch_size)
        result = dict(dataset=cfg.data.dataset, images=data.num_test, test_loss=loss,
                      top1_err=err1, top5_err=err5, **origin)
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo('%s: top-1 error %.2f %%, top-5 error %.2f %%, loss %.4f on %d test images '
                   '(%s)' % (cfg.data.dataset, 100 * err1, 100 * err5, loss, result['images'],
                             describe(origin) if run_dir else params_file))


def load_params_file(net, path, ctxs):
    """Load a .params file into `net`: an export (arg:/aux: names), a
    `collect_params().save` file (parameter names) or a `save_parameters` file."""
    import mxnet as mx

    from . import checkpoint
    from .errors import UserError
    try:
        loaded = mx.nd.load(path)
    except Exception as e:  # MXNetError for a missing or foreign file
        raise UserError('cannot read %s as MXNet parameters (%s): check the path'
                        % (path, str(e).strip().splitlines()[-1][:120])) from None
    if not isinstance(loaded, dict):
        raise UserError('%s holds no named parameters: save it with net.save_parameters' % path)
    named = {k.split(':', 1)[-1]: v.asnumpy() for k, v in loaded.items()}
    if set(named) & set(net.collect_params()):
        checkpoint.load_params_into(net, named, path)
        return
    try:
        net.load_parameters(path, ctx=ctxs)
    except (AssertionError, ValueError, mx.base.MXNetError) as e:
        raise UserError('%s does not fit --model (%s): pass the registry name it was trained as'
                        % (path, str(e).strip().splitlines()[0][:160])) from None


def run():
    """The console entry point (grv-evaluate): one-line errors, exit codes."""
    from .cli import main_wrapper
    main_wrapper(main)()


if __name__ == '__main__':
    run()
