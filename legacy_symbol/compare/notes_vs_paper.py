"""`python -m legacy_symbol.compare notes`: the notes' network next to the paper's ResNet-110.

Both are trained the notes' way, through `mx.mod.Module` (bind, init_params, forward /
backward / update; MXNET_SUBGRAPH_BACKEND=NONE, see legacy_symbol/README.md), at the same
budget: the same embedded real CIFAR-10 sample (gluon_resnet_v2.data, 5,000 training and
1,000 test images, the paper's pad/crop/flip augmentation, numpy batches wrapped in
mx.io.DataBatch), the same batches in the same order, the same number of iterations and
the same schedule. Reported per network: parameters (the symbol's weight arguments),
multiply-adds per image (flops.py, from the symbol's inferred shapes), training img/s
(data pipeline included, first iterations excluded), training loss/error over the last
tenth of the run, and the test error at the end.

The schedule is the paper's shape scaled to the run: warm-up at lr 0.01 for the first
tenth of the iterations (the paper's 400 iterations bring the training error under 80 %
on CIFAR-10; a tenth of a short run does the same here), then 0.1, divided by 10 at 50 %
and 75 % (the paper's 32k and 48k of 64k). NAG, momentum 0.9, weight decay 1e-4 on every
parameter (the paper's Torch code and the Gluon Trainer; `init_optimizer('nag')` by name
would exempt biases and BN betas), He initialisation (the notes' Xavier(gaussian, in, 2)).
"""
import contextlib
import json
import os
import time

import click
import mxnet as mx
import numpy as np

import gluon_resnet_v2 as grv

from legacy_symbol import notes, paper, weights

from . import flops
from .equivalence import subgraph_backend

PAPER_MODEL = 'cifar_resnet110_v2'
INPUT_SHAPE = (3, 32, 32)
TIMING_SKIP = 5          # iterations before the clock starts (bind-time allocation, caches)


def networks(paper_model=PAPER_MODEL):
    """(key, label, training symbol) of the two networks compared."""
    return (('notes', 'notes: ResNet(%d, %s)' % (notes.NOTES_UNITS, list(notes.NOTES_WIDTHS)),
             notes.notes_network()),
            ('paper', 'paper: %s' % paper_model, paper.get_training_symbol(paper_model)))


def describe(symbol):
    """Parameters (weight arguments, as the symbol declares them), running statistics and
    multiply-adds per 32x32 image."""
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


def bind(symbol, batch, optim, seed):
    """A Module bound for training, He-initialised, with the NAG optimizer of `optim`."""
    from gluon_resnet_v2.schedule import module_optimizer
    mod = mx.mod.Module(symbol, data_names=['data'], label_names=['softmax_label'],
                        context=mx.cpu())
    with subgraph_backend('NONE'):     # read at bind: exact pre-activation BN on CPU
        mod.bind([mx.io.DataDesc('data', (batch,) + INPUT_SHAPE)],
                 [mx.io.DataDesc('softmax_label', (batch,))])
    mx.random.seed(seed)
    mod.init_params(initializer=grv.he_init())
    mod.init_optimizer(optimizer=module_optimizer(optim))    # decays every parameter
    return mod


def _loss_err(prob, label):
    """Summed -log p(label) and errors of a batch, kept on the device (no host sync)."""
    from legacy_symbol.fit import cross_entropy
    return cross_entropy(prob, label).sum(), (mx.nd.argmax(prob, axis=1) != label).sum()


def train(mod, data, optim, seed):
    """`optim.max_iters` Module iterations over the data's batches; img/s and the mean
    training loss / error over the last tenth of the run."""
    iters, batch = optim.max_iters, optim.batch_size
    skip, window = min(TIMING_SKIP, iters - 1), max(1, iters // 10)
    sums, it, epoch, previous = [mx.nd.zeros(1), mx.nd.zeros(1)], 0, 0, None
    while it < iters:
        with contextlib.closing(data.train_batches(batch, seed, epoch)) as batches:
            for x, y in batches:
                if it == skip:
                    mx.nd.waitall()                     # sync point: start the clock
                    start = time.perf_counter()
                label = mx.nd.array(y)
                mod.forward(mx.io.DataBatch([mx.nd.array(x)], [label]), is_train=True)
                mod.backward()
                mod.update()
                if it >= iters - window:
                    for s, v in zip(sums, _loss_err(mod.get_outputs()[0], label)):
                        s += v
                token = mod.get_outputs()[0].copy()
                if previous is not None:                # at most one iteration queued ahead
                    previous.wait_to_read()
                previous, it = token, it + 1
                if it >= iters:
                    break
        epoch += 1
    mx.nd.waitall()                                     # sync point: count finished work
    seconds = time.perf_counter() - start
    loss, err = (float(s.asscalar()) / (window * batch) for s in sums)
    return {'img_per_sec': (iters - skip) * batch / seconds, 'train_loss': loss,
            'train_err': err, 'train_window': window}


def evaluate_test(mod, data, batch, limit=None):
    """(mean loss, error, images) on the first `limit` test images (default all), in
    inference mode (BN running statistics)."""
    # BatchNorm writes its running statistics in backward, unordered with later reads
    mx.nd.waitall()
    n = data.num_test if limit is None else min(limit, data.num_test)
    sums, seen = [mx.nd.zeros(1), mx.nd.zeros(1)], 0
    with contextlib.closing(data.test_batches(batch)) as batches:
        for x, y in batches:
            x, y = x[:n - seen], y[:n - seen]
            label = mx.nd.array(y)
            # a smaller last batch makes Module reshape its executor (shared memory)
            with subgraph_backend('NONE'):
                mod.forward(mx.io.DataBatch([mx.nd.array(x)], [label]), is_train=False)
            for s, v in zip(sums, _loss_err(mod.get_outputs()[0], label)):
                s += v
            seen += len(y)
            if seen >= n:
                break
    loss, err = (float(s.asscalar()) / seen for s in sums)    # sync point
    return loss, err, seen


def run_comparison(iters=300, batch=128, seed=0, warmup_iters=None, test_images=None,
                   paper_model=PAPER_MODEL, num_workers=1, echo=print):
    """Both networks at the same budget: a JSON-able report."""
    from gluon_resnet_v2.config import DataConfig
    from gluon_resnet_v2.data import build_data
    optim = recipe(iters, batch, warmup_iters)
    rows = []
    with build_data(DataConfig(dataset='cifar10-sample', num_workers=num_workers)) as data:
        for key, label, symbol in networks(paper_model):
            row = dict(describe(symbol), net=key, label=label)
            mod = bind(symbol, batch, optim, seed)
            row.update(train(mod, data, optim, seed))
            row['test_loss'], row['test_err'], row['test_images'] = evaluate_test(
                mod, data, batch, test_images)
            echo('%-32s %.1f img/s, test error %.2f %%' % (label, row['img_per_sec'],
                                                          100 * row['test_err']))
            rows.append(row)
    config = dict(dataset='cifar10-sample (embedded real CIFAR-10: %d train / %d test images)'
                  % (data.num_train, data.num_test), iters=iters, batch=batch, seed=seed,
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
@click.option('--iters', default=300, show_default=True, type=click.IntRange(1),
              help='training iterations of each network')
@click.option('--batch', default=128, show_default=True, type=click.IntRange(1),
              help='images per iteration')
@click.option('--warmup-iters', default=None, type=click.IntRange(0),
              help='iterations at lr 0.01 before 0.1  [default: a tenth of --iters]')
@click.option('--test-images', default=None, type=click.IntRange(1),
              help='evaluate on the first N of the 1,000 test images  [default: all]')
@click.option('--paper-model', default=PAPER_MODEL, show_default=True,
              type=click.Choice([n for n in grv.list_models() if n.startswith('cifar_')]),
              help='the registry network set beside the notes\' one')
@click.option('--seed', default=0, show_default=True,
              help='seed of weights, data order, augmentation')
@click.option('--num-workers', default=1, show_default=True, type=click.IntRange(0),
              help='data threads (pad/crop/flip)')
@click.option('--out', type=click.Path(dir_okay=False), default=None, help='write JSON here')
@click.option('--markdown', type=click.Path(dir_okay=False), default=None,
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
