"""`python -m legacy_symbol.compare notes`: the notes' network next to the paper's ResNet-110.

Both are trained the notes' way, through `mx.mod.Module` (bind, init_params, forward /
backward / update; MXNET_SUBGRAPH_BACKEND=NONE, see legacy_symbol/README.md), at the same
budget: the same embedded real CIFAR-10 sample (gluon_resnet_v2.data, 5,000 training and
1,000 test images, the paper's pad/crop/flip augmentation, numpy batches wrapped in
mx.io.DataBatch), the same batches in the same order, the same number of iterations and
the same schedule. Each network is one Module run of legacy_symbol.train's kind: the
engine's one training loop (gluon_resnet_v2.engine.Loop) with the Module backend
(legacy_symbol.fit), its log.jsonl written to a temporary folder and read back. Reported
per network: parameters (the symbol's weight arguments), multiply-adds per image
(flops.py, from the symbol's inferred shapes), training img/s (from the log; data
pipeline included, the first log interval, a tenth of the run, excluded as warm-up),
training loss/error of the last log interval (the last tenth of the run), and the test
error at the end.

The schedule is the paper's shape scaled to the run: warm-up at lr 0.01 for the first
tenth of the iterations (the paper's 400 iterations bring the training error under 80 %
on CIFAR-10; a tenth of a short run does the same here), then 0.1, divided by 10 at 50 %
and 75 % (the paper's 32k and 48k of 64k). NAG, momentum 0.9, weight decay 1e-4 on every
parameter (the paper's Torch code and the Gluon Trainer; `init_optimizer('nag')` by name
would exempt biases and BN betas), He initialisation (the notes' Xavier(gaussian, in, 2)).
"""
import json
import os
import tempfile

import click
import numpy as np

from gluon_resnet_v2.cli import output_file
from gluon_resnet_v2.models import list_models

from . import flops

PAPER_MODEL = 'cifar_resnet110_v2'
INPUT_SHAPE = (3, 32, 32)


def networks(paper_model=PAPER_MODEL):
    """(key, label, training symbol) of the two networks compared."""
    from legacy_symbol import notes, paper
    return (('notes', 'notes: ResNet(%d, %s)' % (notes.NOTES_UNITS, list(notes.NOTES_WIDTHS)),
             notes.notes_network()),
            ('paper', 'paper: %s' % paper_model, paper.get_training_symbol(paper_model)))


def describe(symbol):
    """Parameters (weight arguments, as the symbol declares them), running statistics and
    multiply-adds per 32x32 image."""
    from legacy_symbol import weights
    args, aux = weights.symbol_shapes(symbol, (1,) + INPUT_SHAPE)
    return {'params': sum(int(np.prod(s)) for s in args.values()),
            'aux': sum(int(np.prod(s)) for s in aux.values()),
            'macs': flops.count_macs(symbol, (1,) + INPUT_SHAPE),
            'conv_fc_layers': len(flops.layer_macs(symbol, (1,) + INPUT_SHAPE))}


def recipe(iters, batch, warmup_iters=None):
    """The OptimConfig of the scaled schedule (see the module docstring)."""
    from gluon_resnet_v2.config import OptimConfig
    steps = tuple(sorted({s for s in (iters // 2, iters * 3 // 4) if 0 < s < iters}))
    warmup = iters // 10 if warmup_iters is None else warmup_iters
    return OptimConfig(batch_size=batch, max_iters=iters, warmup_iters=warmup, lr_steps=steps)


def train_module(key, paper_model, optim, seed, num_workers, test_images, run_dir):
    """One network's Module run through the engine's loop; its log records."""
    from gluon_resnet_v2.config import Config, DataConfig, ModelConfig, RunConfig
    from gluon_resnet_v2.runlog import read_log
    from legacy_symbol.fit import module_run
    cfg = Config(model=ModelConfig(model=paper_model),
                 data=DataConfig(dataset='cifar10-sample', num_workers=num_workers),
                 optim=optim, run=RunConfig(run_dir=run_dir, seed=seed, eval_interval=0,
                                            log_interval=window(optim.max_iters),
                                            checkpoint_interval=0))
    run, _, loop = module_run(cfg, net=key, progress=False)
    if test_images:      # evaluate on the first N test images (the split's fixed order)
        run.data.num_test = min(test_images, run.data.num_test)
    images = run.data.num_test
    loop.train()
    return read_log(run_dir), images


def window(iters):
    """Iterations of a log interval: a tenth of the run."""
    return max(1, iters // 10)


def measured(records, batch):
    """img/s over the log intervals after the first (warm-up: binding, caches), and the
    training loss / error of the last interval, from a run's log records."""
    train = [r for r in records if r['train_loss'] is not None]
    test = [r for r in records if r['test_err'] is not None][-1]
    steps = np.diff([0] + [r['iteration'] for r in train])
    timed = list(zip(steps, train))[1:] or list(zip(steps, train))
    seconds = sum(n * batch / r['img_per_sec'] for n, r in timed)
    return {'img_per_sec': sum(n for n, _ in timed) * batch / seconds,
            'train_loss': train[-1]['train_loss'], 'train_err': train[-1]['train_err'],
            'train_window': int(steps[-1]), 'test_loss': test['test_loss'],
            'test_err': test['test_err']}


def run_comparison(iters=300, batch=128, seed=0, warmup_iters=None, test_images=None,
                   paper_model=PAPER_MODEL, num_workers=1, echo=print):
    """Both networks at the same budget: a JSON-able report."""
    import mxnet as mx
    optim = recipe(iters, batch, warmup_iters)
    rows = []
    with tempfile.TemporaryDirectory(prefix='compare-notes-') as tmp:
        for key, label, symbol in networks(paper_model):
            records, images = train_module(key, paper_model, optim, seed, num_workers,
                                           test_images, os.path.join(tmp, key))
            row = dict(describe(symbol), net=key, label=label, test_images=images,
                       **measured(records, batch))
            echo('%-32s %.1f img/s, test error %.2f %%' % (label, row['img_per_sec'],
                                                          100 * row['test_err']))
            rows.append(row)
    config = dict(dataset='cifar10-sample (embedded real CIFAR-10: 5000 train / 1000 test '
                  'images)', iters=iters, batch=batch, seed=seed,
                  optimizer='nag', lr=optim.lr, momentum=optim.momentum, wd=optim.wd,
                  warmup_iters=optim.warmup_iters, warmup_lr=optim.warmup_lr,
                  lr_steps=list(optim.lr_steps), num_workers=num_workers,
                  omp_num_threads=os.environ.get('OMP_NUM_THREADS'), mxnet=mx.__version__)
    return {'config': config, 'nets': rows}


def format_markdown(report):
    """One table, a row per network, and the set-up under it."""
    cfg, nets = report['config'], report['nets']
    lines = ['| network | conv/FC layers | parameters | mult-adds / image | training img/s | '
             'train loss (last %d it.) | train error | test error |' % nets[0]['train_window'],
             '|---|---:|---:|---:|---:|---:|---:|---:|']
    for r in nets:
        lines.append('| %s | %d | %s | %.1fM | %.1f | %.3f | %.1f %% | %.1f %% |' % (
            r['label'], r['conv_fc_layers'], format(r['params'], ','), r['macs'] / 1e6,
            r['img_per_sec'], r['train_loss'], 100 * r['train_err'], 100 * r['test_err']))
    lines += ['', '%s; %d iterations of batch %d through mx.mod.Module '
              '(MXNET_SUBGRAPH_BACKEND=NONE), NAG lr %g (warm-up %g for %d it., /10 at %s), '
              'momentum %g, wd %g; test error on %d test images; mult-adds of conv/FC layers '
              '(legacy_symbol.compare.flops); img/s includes the data pipeline '
              '(%d worker thread(s)), OMP_NUM_THREADS=%s, MXNet %s.'
              % (cfg['dataset'], cfg['iters'], cfg['batch'], cfg['lr'], cfg['warmup_lr'],
                 cfg['warmup_iters'], ', '.join(map(str, cfg['lr_steps'])) or 'never',
                 cfg['momentum'], cfg['wd'], nets[0]['test_images'], cfg['num_workers'],
                 cfg['omp_num_threads'], cfg['mxnet'])]
    return '\n'.join(lines) + '\n'


@click.command('notes')
@click.option('--max-iters', 'iters', default=300, show_default=True, type=click.IntRange(1),
              help='training iterations of each network')
@click.option('--batch-size', 'batch', default=128, show_default=True, type=click.IntRange(1),
              help='images per iteration')
@click.option('--warmup-iters', default=None, type=click.IntRange(0),
              help='iterations at lr 0.01 before 0.1  [default: a tenth of --iters]')
@click.option('--test-images', default=None, type=click.IntRange(1),
              help='evaluate on the first N of the 1,000 test images  [default: all]')
@click.option('--paper-model', default=PAPER_MODEL, show_default=True,
              type=click.Choice([n for n in list_models() if n.startswith("cifar_")]),
              help='the registry network set beside the notes\' one')
@click.option('--seed', default=0, show_default=True,
              help='seed of weights, data order, augmentation')
@click.option('--num-workers', default=1, show_default=True, type=click.IntRange(0),
              help='data threads (pad/crop/flip)')
@click.option('--out', default=None, callback=output_file, help='write JSON here')
@click.option('--markdown', default=None, callback=output_file,
              help='write the Markdown table here')
def notes_cmd(iters, batch, warmup_iters, test_images, paper_model, seed, num_workers, out,
              markdown):
    """The notes' network vs the paper's ResNet-110: parameters, mult-adds, img/s, test error."""
    report = run_comparison(iters, batch, seed, warmup_iters, test_images, paper_model,
                            num_workers, echo=click.echo)
    text = format_markdown(report)
    click.echo('\n' + text)
    if out:
        with open(out, 'w') as f:
            json.dump(report, f, indent=1, sort_keys=True)
    if markdown:
        with open(markdown, 'w') as f:
            f.write(text)
