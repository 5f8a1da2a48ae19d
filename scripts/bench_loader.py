#!/usr/bin/env python3
"""Does the CIFAR loader keep up with training? (a benchmark that prints; not a test)

    OMP_NUM_THREADS=2 python scripts/bench_loader.py [--data-dir DIR_WITH_cifar-10-batches-py]

Measures, in one run on this machine: loader img/s (pad/crop/flip + normalise, batch 128)
with num_workers 0 and 2, on the embedded sample and, with --data-dir, the full
CIFAR-10; the img/s of a hybridized training step (forward + backward + SGD) of each
model; the training step fed by the loader; and the ratio loader / train (target >= 3).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gluon_resnet_v2 import environ, get_model  # noqa: E402
from gluon_resnet_v2.config import DataConfig  # noqa: E402
from gluon_resnet_v2.data import build_data  # noqa: E402


def loader_rate(data, batch_size, workers, min_seconds):
    """Images per second the loader delivers over whole epochs (at least min_seconds)."""
    data.num_workers = workers
    images, epoch, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        for x, _ in data.train_batches(batch_size, seed=0, epoch=epoch):
            images += len(x)
        epoch += 1
    return images / (time.perf_counter() - start)


def make_step(name, batch_size):
    import mxnet as mx
    net = get_model(name, classes=10)
    net.initialize(mx.init.MSRAPrelu(factor_type='in', slope=0.0))
    net.hybridize(static_alloc=True, static_shape=True)
    trainer = mx.gluon.Trainer(net.collect_params(), 'sgd',
                               {'learning_rate': 0.1, 'momentum': 0.9, 'wd': 1e-4})
    loss_fn = mx.gluon.loss.SoftmaxCrossEntropyLoss()

    def step(x, y):
        x, y = mx.nd.array(x), mx.nd.array(y)
        with mx.autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(batch_size)
        return loss
    return step


def train_rate(step, batches, warmup=2):
    """Images per second of training steps over `batches` (a list or an iterator)."""
    import mxnet as mx
    images, start = 0, None
    for i, (x, y) in enumerate(batches):
        if i == warmup:
            mx.nd.waitall()        # sync point: start the clock after graph building
            start = time.perf_counter()
        loss = step(x, y)
        if i >= warmup:
            images += len(x)
    loss.wait_to_read()            # sync point: count only finished work
    return images / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--data-dir', help='folder with cifar-10-batches-py/ (the full set)')
    parser.add_argument('--models', default='cifar_resnet20_v2,cifar_resnet110_v2')
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--steps', type=int, default=12, help='timed training steps per model')
    parser.add_argument('--seconds', type=float, default=3.0, help='loader timing per setting')
    args = parser.parse_args()
    bs = args.batch_size
    print('OMP_NUM_THREADS=%s, %d cores, batch %d' % (os.environ.get('OMP_NUM_THREADS'),
                                                      os.cpu_count(), bs))
    sets = [('cifar10-sample', DataConfig(dataset='cifar10-sample'))]
    if args.data_dir:
        sets.append(('cifar10 (full)', DataConfig(dataset='cifar10', data_dir=args.data_dir)))
    loaders = {}
    for label, cfg in sets:
        start = time.perf_counter()
        data = build_data(cfg)
        print('%-15s built in %.1f s (%d train images)' % (label, time.perf_counter() - start,
                                                            data.num_train))
        for workers in (0, 2):
            loaders[label, workers] = rate = loader_rate(data, bs, workers, args.seconds)
            print('  loader num_workers=%d: %8.0f img/s' % (workers, rate))
        data.close()
    sample = build_data(DataConfig(dataset='cifar10-sample', num_workers=2))
    fixed = list(sample.train_batches(bs, seed=0, epoch=0))[:args.steps + 2]
    for name in args.models.split(','):
        step = make_step(name, bs)
        rate = train_rate(step, fixed)
        it = sample.train_batches(bs, seed=0, epoch=1)
        fed = train_rate(step, (next(it) for _ in range(args.steps + 2)))
        it.close()
        print('%s, hybridized, fwd+bwd+SGD: %.0f img/s; fed by the loader '
              '(num_workers=2): %.0f img/s' % (name, rate, fed))
        for (label, workers), lrate in loaders.items():
            print('  ratio loader/train  %-15s num_workers=%d: %6.1fx' % (label, workers,
                                                                         lrate / rate))
    sample.close()


if __name__ == '__main__':
    with environ.command_line():          # before MXNet is imported: its thread pool size
        main()
