#!/usr/bin/env python3
"""Where the training step's time goes, primitive by primitive (a profile that prints; not
a test).

    python scripts/profile_step.py                                 # ResNet-110, batch 128
    python scripts/profile_step.py --model cifar_resnet164_v2 --batch 64 --threads 1
    python scripts/profile_step.py --bottleneck-stride 3x3 --model cifar_resnet164_v2 --batch 64

Runs the engine's own step (gluon_resnet_v2.measure.build_step: engine.GluonBackend,
hybridized with static_alloc, NAG with the paper's hyper-parameters, one CPU context, the
NaiveEngine as CPU training runs use) on synthetic batches in a child process with
oneDNN's verbose mode on (DNNL_VERBOSE=1: every primitive it executes, with its
implementation, shapes and milliseconds), and prints, over the timed steps, per primitive
kind, implementation and direction: calls and milliseconds per step and the share of the
step's wall time. "outside oneDNN" is the wall time no primitive accounts for: MXNet's own
operators (the optimizer's 331 NAG updates, the loss, the pooling mean), the graph
executor, Python. An implementation named `ref` is oneDNN's reference code: slow, the sign
of an unusual memory layout. Verbose mode itself costs a little; the wall time without it,
measured in the same child before, is printed too.

With 2 threads on a 2-core machine any other process slows every parallel region (each
waits for the preempted thread): `--threads 1` profiles on one core, steadier.
"""
import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r'''
import json, os, sys, time
sys.path.insert(0, %(root)r)
import mxnet as mx
from gluon_resnet_v2 import measure
spec = json.loads(sys.argv[1])
over = {'bottleneck_stride': spec['stride']} if spec['stride'] else {}
backend, batches = measure.build_step(spec['model'], spec['batch'], spec['dtype'], 1, 0, **over)
step = lambda i: backend.step(*batches[i %% 2])[0][0]
quiet = measure.timed(step, spec['steps'], spec['warmup'])
mx.nd.waitall()
print('PROFILE-START', flush=True)
wall = measure.timed(step, spec['steps'], 0)
print('PROFILE-END ' + json.dumps(dict(quiet=quiet, wall=wall)), flush=True)
'''


def parse(lines):
    """{(primitive, implementation, direction): [calls, ms]} of the verbose lines between
    the markers, and the child's timings."""
    table, inside, times = defaultdict(lambda: [0, 0.0]), False, None
    for line in lines:
        if line.startswith('PROFILE-START'):
            inside = True
        elif line.startswith('PROFILE-END'):
            times = json.loads(line.split(' ', 1)[1])
            inside = False
        elif inside and line.startswith(('dnnl_verbose,exec', 'onednn_verbose,exec')):
            f = line.strip().split(',')
            entry = table[f[3], f[4], f[5]]
            entry[0] += 1
            entry[1] += float(f[-1])
    return table, times


def profile(args):
    spec = dict(model=args.model, batch=args.batch, dtype=args.dtype, steps=args.steps,
                warmup=args.warmup, stride=args.bottleneck_stride)
    env = dict(os.environ, MXNET_ENGINE_TYPE='NaiveEngine', DNNL_VERBOSE='1',
               OMP_NUM_THREADS=str(args.threads or len(os.sched_getaffinity(0))))
    out = subprocess.run([sys.executable, '-c', CHILD % dict(root=ROOT), json.dumps(spec)],
                         env=env, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True).stdout
    return parse(out.splitlines()), env['OMP_NUM_THREADS']


def report(args, table, times, threads):
    steps, wall = args.steps, 1000 * times['wall'] / args.steps
    print('## %s, batch %d, %s%s: %d thread(s), %d timed steps'
          % (args.model, args.batch, args.dtype, ', stride on the bottleneck\'s %s'
             % args.bottleneck_stride if args.bottleneck_stride else '', int(threads), steps))
    print('step %.0f ms without verbose mode (%.1f img/s), %.0f ms with it\n'
          % (1000 * times['quiet'] / steps, steps * args.batch / times['quiet'], wall))
    print('| primitive | implementation | direction | calls/step | ms/step | share |')
    print('|---|---|---|---:|---:|---:|')
    inside = 0.0
    for (prim, impl, direction), (calls, ms) in sorted(table.items(), key=lambda kv: -kv[1][1]):
        inside += ms / steps
        if ms / steps >= args.min_ms:
            print('| %s | %s | %s | %.0f | %.1f | %.1f %% |' % (
                prim, impl, direction, calls / steps, ms / steps, 100 * ms / steps / wall))
    print('| (smaller ones) | | | | | |' if any(ms / steps < args.min_ms
                                                for _, ms in table.values()) else '', end='')
    print('\n| outside oneDNN | | | | %.1f | %.1f %% |' % (wall - inside,
                                                           100 * (wall - inside) / wall))


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', default='cifar_resnet110_v2')
    p.add_argument('--batch', type=int, default=128)
    p.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16'))
    p.add_argument('--bottleneck-stride', choices=('1x1', '3x3'), default=None,
                   help="which conv of a bottleneck carries the stride (default: the model's)")
    p.add_argument('--threads', type=int, default=None, help='OMP_NUM_THREADS of the child '
                   '(default: the usable cores)')
    p.add_argument('--steps', type=int, default=3)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--min-ms', type=float, default=1.0,
                   help='primitives under this many ms per step are not listed one by one')
    args = p.parse_args()
    (table, times), threads = profile(args)
    report(args, table, times, threads)


if __name__ == '__main__':
    main()
