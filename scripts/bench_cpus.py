#!/usr/bin/env python3
"""One CPU context with every thread against --cpus N contexts (a benchmark that prints;
not a test): what `--cpus` should default to.

    python scripts/bench_cpus.py                                   # ResNet-110 b128, ResNet-164 b64
    python scripts/bench_cpus.py --cases cifar_resnet20_v2:128 --rounds 5 --steps 10

Settings, each measured in a fresh child process (gluon_resnet_v2.measure.step: the
engine's own training step on synthetic batches), interleaved round by round:

  1ctx          --cpus 1, OMP_NUM_THREADS = the usable cores, NaiveEngine (the default)
  Nctx          --cpus N, the same threads: the contexts run one after another, each on
                every core, each with 1/N of the batch (and its own BN statistics)
  Nctx-1thread  --cpus N, one OpenMP thread per operator and MXNet's threaded engine with
                N CPU workers: the contexts run side by side, one core each

Prints the median img/s of each and its ratio to 1ctx.
"""
import argparse
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from gluon_resnet_v2.bench import call, child_env, parse_cases  # noqa: E402


def settings(n, cores):
    """(label, cpus, environment changes) of the compared settings."""
    return [('1ctx', 1, {}),
            ('%dctx' % n, n, {}),
            ('%dctx-1thread' % n, n, dict(OMP_NUM_THREADS='1',
                                          MXNET_ENGINE_TYPE='ThreadedEnginePerDevice',
                                          MXNET_CPU_WORKER_NTHREADS=str(n)))]


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--cases', default='cifar_resnet110_v2:128,cifar_resnet164_v2:64')
    p.add_argument('--contexts', type=int, default=2, help='N')
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--steps', type=int, default=6)
    p.add_argument('--warmup', type=int, default=2)
    args = p.parse_args()
    cores = len(os.sched_getaffinity(0))
    env = child_env({'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', str(cores))})
    cases, todo = parse_cases(args.cases), settings(args.contexts, cores)
    rates = {(c, label): [] for c in cases for label, _, _ in todo}
    for k in range(args.rounds):
        for case in cases:
            for label, cpus, extra in todo[k % len(todo):] + todo[:k % len(todo)]:
                res = call('gluon_resnet_v2.measure:step', dict(
                    model=case[0], batch=case[1], dtype='float32', cpus=cpus,
                    steps=args.steps, warmup=args.warmup, seed=0), dict(env, **extra))
                rate = res.get('img_per_sec')
                rates[case, label].append(rate)
                print('[round %d] %s:%d %s: %s' % (k + 1, case[0], case[1], label,
                                                  '%.1f img/s' % rate if rate else res),
                      flush=True)
    print('\n| network | batch | setting | img/s (median) | runs | x 1ctx |\n'
          '|---|---:|---|---:|---|---:|')
    for case in cases:
        base = statistics.median([r for r in rates[case, '1ctx'] if r])
        for label, _, _ in todo:
            got = [r for r in rates[case, label] if r]
            med = statistics.median(got) if got else None
            print('| %s | %d | %s | %s | %s | %s |' % (
                case[0], case[1], label, '%.1f' % med if med else 'failed',
                ', '.join('%.1f' % r for r in got), '%.2f' % (med / base) if med else ''))
    print('\n%d cores, OMP_NUM_THREADS=%s for 1ctx and %dctx; %d rounds of %d warm-up + %d '
          'timed steps.' % (cores, env['OMP_NUM_THREADS'], args.contexts, args.rounds,
                            args.warmup, args.steps))


if __name__ == '__main__':
    main()
