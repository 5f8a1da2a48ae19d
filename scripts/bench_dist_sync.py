"""Does a dist_sync run compute what one process computes? Trials of a job of 2 workers and
1 server over loopback (gluon_resnet_v2.launch), each compared with one process.

    python scripts/bench_dist_sync.py                  # 20 trials, BN-free net: prints 20/20
    python scripts/bench_dist_sync.py --net resnet20   # the paper's net, BN included
    python scripts/bench_dist_sync.py --trials 3 --resume

--net bn-free (default): a small network without BatchNorm, so the reference is one process
on ONE context with the combined batch (the global batch); worker k's rows are rows k of
every global batch. --net resnet20: with BN each worker normalises its own rows, so the
reference is one process on as many contexts as there are workers (each device then holds
what one worker holds); BN running statistics are compared too (averaged over the workers
before every checkpoint, as over devices).
A trial passes when every parameter of the workers' final checkpoint is within --tol
(1e-6) of the reference's, and so is (relatively) every logged training loss. Every process trains with --deterministic (native kernels; see
--onednn). --resume adds, per trial, a job killed (every process, SIGKILL) after its
first checkpoint and rerun: it must end bit-identical to the uninterrupted job.
Prints the count of trials that passed; exit status 1 if any failed.
"""
import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.abspath(__file__)
REPO = os.path.dirname(os.path.dirname(HERE))


def worker_main(spec):
    """One training process (a worker under the launcher, or the reference): the engine's
    own fit() on the spec's config, with the BN-free network if asked."""
    spec = json.loads(spec)
    sys.path.insert(0, REPO)
    from gluon_resnet_v2 import environ
    from gluon_resnet_v2.config import Config
    cfg = Config.from_dict(spec['config'])
    with environ.training(cfg.run):                # before MXNet is imported
        from gluon_resnet_v2.engine import fit
        network = bn_free if spec['net'] == 'bn-free' else None
        s = fit(cfg, progress=False, echo=lambda *a: None, network=network)
    print('worker done: rank %d, iteration %d' % (s['rank'], s['iteration']), flush=True)


def bn_free(classes):
    """Convolutions, ReLUs and a classifier: no BatchNorm, so any split of a batch over
    devices or workers computes the full batch's gradient."""
    from mxnet import gluon
    net = gluon.nn.HybridSequential(prefix='net_')
    with net.name_scope():
        net.add(gluon.nn.Conv2D(16, 3, padding=1, activation='relu'),
                gluon.nn.Conv2D(16, 3, strides=2, padding=1, activation='relu'),
                gluon.nn.Conv2D(32, 3, strides=2, padding=1, activation='relu'),
                gluon.nn.GlobalAvgPool2D(), gluon.nn.Dense(classes))
    return net


def config(opts, run_dir, kvstore, cpus):
    return dict(
        model=dict(model='cifar_resnet20_v2'),
        data=dict(dataset='cifar10-sample', num_workers=0),
        optim=dict(batch_size=opts.batch_size, max_iters=opts.iters, warmup_iters=0,
                   lr_steps=[10 ** 6]),
        run=dict(kvstore=kvstore, cpus=cpus, run_dir=run_dir, log_interval=1, eval_interval=0,
                 checkpoint_interval=opts.checkpoint_interval, deterministic=opts.deterministic,
                 seed=opts.seed))


def worker_command(opts, cfg):
    return [sys.executable, HERE, '--worker', json.dumps(dict(net=opts.net, config=cfg))]


def run_job(opts, run_dir, kill_after=None):
    """The distributed job; with kill_after, SIGKILL the whole job (launcher and all it
    started) once the checkpoint of that iteration exists. Returns the launcher's exit."""
    cmd = [sys.executable, '-m', 'gluon_resnet_v2.launch', '-n', str(opts.workers), '-s', '1',
           '--'] + worker_command(opts, config(opts, run_dir, 'dist_sync', 1))
    job = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, start_new_session=True)
    if kill_after is None:
        out, _ = job.communicate(timeout=opts.timeout)
        if job.returncode:
            print(out[-2000:])
        return job.returncode
    deadline, latest = time.time() + opts.timeout, os.path.join(run_dir, 'checkpoint-latest.pkl')
    while not os.path.exists(latest):              # the first: iteration kill_after
        if job.poll() is not None or time.time() > deadline:
            raise SystemExit('the job ended before its first checkpoint: %s' % job.stdout.read())
        time.sleep(0.02)
    os.killpg(job.pid, signal.SIGKILL)        # the launcher's session: every process
    job.wait()
    from gluon_resnet_v2 import checkpoint
    return checkpoint.load(latest)['iteration']     # where the rerun resumes


def reference(opts, run_dir):
    cpus = 1 if opts.net == 'bn-free' else opts.workers
    subprocess.run(worker_command(opts, config(opts, run_dir, 'device', cpus)), cwd=REPO,
                   check=True, timeout=opts.timeout, stdout=subprocess.DEVNULL)
    return params(run_dir)


def params(run_dir):
    from gluon_resnet_v2 import checkpoint
    state = checkpoint.load(os.path.join(run_dir, 'checkpoint-latest.pkl'))
    assert state['iteration'] == state['config']['optim']['max_iters'], state['iteration']
    return state['params']


def losses(run_dir):
    """The logged training losses (of the global batch, however many workers)."""
    with open(os.path.join(run_dir, 'log.jsonl')) as f:
        return [r['train_loss'] for r in map(json.loads, f) if r.get('train_loss') is not None]


def worst(a, b):
    """(largest absolute difference, its parameter) over two parameter dicts."""
    import numpy as np
    assert a.keys() == b.keys(), sorted(set(a) ^ set(b))
    return max((float(np.abs(a[k] - b[k]).max()), k) for k in a)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--trials', type=int, default=20, help='jobs to compare (20)')
    p.add_argument('--net', choices=('bn-free', 'resnet20'), default='bn-free')
    p.add_argument('--workers', type=int, default=2, help='workers per job (2)')
    p.add_argument('--iters', type=int, help='iterations per job (3; 8 with --resume)')
    p.add_argument('--batch-size', type=int, default=32, help='global batch (32)')
    p.add_argument('--tol', type=float, default=1e-6, help='largest difference allowed (1e-6)')
    p.add_argument('--onednn', action='store_true', help="oneDNN's kernels (the default "
                   "of training) instead of --deterministic's native ones: their rounding "
                   "depends on the batch size, so a worker's half batch and the combined batch "
                   "differ by ~1e-6 whatever the kvstore does")
    p.add_argument('--resume', action='store_true', help='also kill each job after the '
                   'checkpoint at --kill-after, rerun it and compare')
    p.add_argument('--kill-after', type=int, default=2, help='checkpoint interval of the killed job (2)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--timeout', type=float, default=300, help='seconds per job (300)')
    p.add_argument('--worker', help=argparse.SUPPRESS)
    opts = p.parse_args()
    if opts.worker:
        return worker_main(opts.worker)
    opts.iters = opts.iters or (8 if opts.resume else 3)
    opts.deterministic = not opts.onednn
    if opts.resume:
        if not 0 < opts.kill_after < opts.iters:
            p.error('--kill-after must lie between 0 and --iters %d' % opts.iters)
    opts.checkpoint_interval = opts.kill_after if opts.resume else 0
    os.environ.setdefault('OMP_NUM_THREADS', '1')        # 2 workers + 1 server share the cores
    print('CPU: %s, %d cores; %d trials of %d workers + 1 server (loopback), %s, %d iterations, '
          'global batch %d%s' % (cpu_name(), os.cpu_count(), opts.trials, opts.workers, opts.net,
                                 opts.iters, opts.batch_size,
                                 ', deterministic' if opts.deterministic else ''), flush=True)
    passed = 0
    with tempfile.TemporaryDirectory(prefix='bench-dist-') as tmp:
        ref = reference(opts, os.path.join(tmp, 'reference'))
        ref_losses = losses(os.path.join(tmp, 'reference'))
        print('reference: one process on %d context(s)' % (1 if opts.net == 'bn-free'
                                                           else opts.workers), flush=True)
        for t in range(opts.trials):
            begin, run_dir = time.time(), os.path.join(tmp, 'trial%d' % t)
            rc = run_job(opts, run_dir)
            diff, name = worst(params(run_dir), ref) if rc == 0 else (float('inf'), 'job failed')
            dl = (max(abs(a - b) / abs(b) for a, b in zip(losses(run_dir), ref_losses))
                  if rc == 0 and len(losses(run_dir)) == len(ref_losses) else float('inf'))
            ok = diff <= opts.tol and dl <= opts.tol
            line = ('trial %2d: max |dist - one process| %.3g (%s), logged losses %.2g apart'
                    % (t + 1, diff, name, dl))
            if opts.resume and ok:
                again = os.path.join(tmp, 'resumed%d' % t)
                at = run_job(opts, again, kill_after=opts.kill_after)
                rc = run_job(opts, again)
                rdiff = worst(params(again), params(run_dir))[0] if rc == 0 else float('inf')
                ok = rdiff == 0 and at < opts.iters      # else the kill came too late
                line += '; killed, resumed at iteration %d: max diff %.3g' % (at, rdiff)
            passed += ok
            print('%s  %s  %.1f s' % (line, 'ok' if ok else 'FAILED', time.time() - begin),
                  flush=True)
    print('equivalent: %d/%d' % (passed, opts.trials))
    return 0 if passed == opts.trials else 1


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            return next(line.split(':', 1)[1].strip() for line in f
                        if line.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor() or 'unknown CPU'


if __name__ == '__main__':
    sys.exit(main())
