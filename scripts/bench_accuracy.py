#!/usr/bin/env python3
"""Accuracy check on the full CIFAR-10, per dtype (a benchmark you run and report; not a CI
test).

    OMP_NUM_THREADS=2 python scripts/bench_accuracy.py [--dtypes float32,bfloat16]
        [--data-dir DIR] [--run-dir PREFIX] [--plot curves.png]

The recipe (issue 3): cifar_resnet20_v2, NAG lr 0.1, momentum 0.9, wd 1e-4, batch 128,
lr / 10 at iterations 1000 and 1500, 2000 iterations, no warm-up, pad-4 crop + flip,
per-channel mean/std normalisation. Reference runs with exactly this recipe on the same
JPEG-derived data: a paper-exact pre-act ResNet-20 in Gluon 23.8 %, in PyTorch 23.3 %,
gluoncv's cifar_resnet20_v2 28.4 %. This trainer must reach <= 25.0 %.

Each dtype trains the same recipe with the same seed, one after the other (so their wall
times are comparable), into PREFIX-<dtype>; the table gives each one's test error and
wall time side by side. A bfloat16 run (issue 11) must land within 0.5 points of the
float32 one. --plot overlays their curves (gluon_resnet_v2.plotting).

Without --data-dir, the official python-pickle layout is built from
../shared/data/cifar10-jpeg.tar.gz into a temporary folder (about 30 s).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), 'shared', 'data')
RECIPE = ['--model', 'cifar_resnet20_v2', '--dataset', 'cifar10', '--optimizer', 'nag',
          '--lr', '0.1', '--momentum', '0.9', '--wd', '1e-4', '--batch-size', '128',
          '--lr-steps', '1000,1500', '--lr-factor', '0.1', '--max-iters', '2000',
          '--warmup-iters', '0', '--log-interval', '50', '--eval-interval', '500',
          '--checkpoint-interval', '500']
TARGET = 0.25
TOLERANCE = 0.005      # a reduced-precision run against float32, in test error


def train(dtype, data_dir, cpus, run_dir):
    """Train the recipe in `dtype` into `run_dir`; returns (final test error, wall seconds,
    median img/s of the log)."""
    from gluon_resnet_v2.runlog import read_log
    cmd = [sys.executable, '-m', 'gluon_resnet_v2.train'] + RECIPE + [
        '--dtype', dtype, '--data-dir', data_dir, '--cpus', cpus, '--run-dir', run_dir]
    print(' '.join(cmd), flush=True)
    start = time.time()
    subprocess.run(cmd, check=True)
    seconds = time.time() - start
    records = read_log(run_dir)
    rates = sorted(r['img_per_sec'] for r in records if r['img_per_sec'] is not None)
    final = [r for r in records if r['test_err'] is not None][-1]
    return final['test_err'], seconds, rates[len(rates) // 2]


def table(results):
    """The dtypes side by side, then the verdicts."""
    lines = ['%-10s %12s %12s %10s  %s' % ('dtype', 'test error', 'wall time', 'img/s',
                                          'target <= %.1f %%' % (100 * TARGET))]
    for dtype, (err, seconds, rate) in results.items():
        lines.append('%-10s %10.2f %% %10.1f m %10.0f  %s' % (
            dtype, 100 * err, seconds / 60, rate, 'PASS' if err <= TARGET else 'FAIL'))
    base = results.get('float32')
    for dtype, (err, seconds, _) in results.items():
        if base and dtype != 'float32':
            lines.append('%s - float32: %+.2f points (tolerance %.1f): %s; wall time %.2fx'
                         % (dtype, 100 * (err - base[0]), 100 * TOLERANCE,
                            'PASS' if abs(err - base[0]) <= TOLERANCE else 'FAIL',
                            seconds / base[1]))
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-dir', help='folder holding cifar-10-batches-py/')
    parser.add_argument('--run-dir', default=None, help='prefix of the run directories, '
                        'PREFIX-<dtype> (default: runs/accuracy-<time>)')
    parser.add_argument('--cpus', default='1', help='CPU contexts (the batch is split)')
    parser.add_argument('--dtypes', default='float32,bfloat16',
                        help='comma-separated: float32, bfloat16 (AVX512-BF16 CPUs)')
    parser.add_argument('--plot', default=None, help='PNG overlaying the runs\' curves')
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    data_dir = args.data_dir
    if not data_dir:
        data_dir = tempfile.mkdtemp(prefix='cifar10-')
        subprocess.run([sys.executable, os.path.join(SHARED, 'make_cifar_python.py'), data_dir],
                       check=True)
    prefix = args.run_dir or os.path.join(ROOT, 'runs', 'accuracy-%s'
                                          % time.strftime('%Y%m%d-%H%M%S'))
    runs = {d: '%s-%s' % (prefix, d) for d in args.dtypes.split(',')}
    results = {}
    for dtype, run_dir in runs.items():
        results[dtype] = train(dtype, data_dir, args.cpus, run_dir)
        print('cifar_resnet20_v2, full CIFAR-10, 2000 iterations, %s: test error %.2f %%, '
              '%.0f s' % (dtype, 100 * results[dtype][0], results[dtype][1]), flush=True)
    print(table(results))
    if args.plot:
        from gluon_resnet_v2.plotting import plot_runs
        print(plot_runs(runs, args.plot, 'cifar_resnet20_v2 on CIFAR-10: %s'
                        % ' vs '.join(runs)))


if __name__ == '__main__':
    main()
