#!/usr/bin/env python3
"""Are two training processes of the same command bit-identical? (a benchmark that
prints; not a test)

    python scripts/bench_reproducibility.py                       # default vs deterministic
    python scripts/bench_reproducibility.py --pairs 5 'OMP_NUM_THREADS=1' \\
        'MXNET_ENGINE_TYPE=NaiveEngine' 'OMP_NUM_THREADS=1 --no-hybridize' 'noaslr'
    python scripts/bench_reproducibility.py --depth 56 --iters 100 --layout cwd default

For every SETTING given (default: `default` and the deterministic CPU setting
`MXNET_MKLDNN_ENABLED=0 OMP_NUM_THREADS=1`) it runs the package's CLI
(`sys.executable -m gluon_resnet_v2.train`, cifar10-sample, one CPU context, seed 0,
--num-workers 0, a log record every iteration) as 2 x PAIRS fresh processes, one after the
other, and compares the two processes of each pair:

  identical  logged losses and final parameters bit-identical
  first      first logged iteration whose train_loss differs (- if none)
  max|dL|    max |train_loss difference| over the run; end|dL| the same at the last one
  relP       max|a - b| / max|a| over all parameter tensors at the end
             (checkpoint-latest.pkl, BN running statistics included)
  relP_t     the largest max|a - b| / max|a| of a single tensor, and that tensor (BN
             betas start at 0 and stay small, so this is large long before relP is)
  dTest%     |difference| of the test error (percentage points) of the evaluation at
             the end (the full test split of the sample, 1,000 images)
  img/s1     img/s of the compared runs: median over the processes of images / seconds
             over the logged iterations after the first 5 (a log record every
             iteration is a host sync every iteration, so this understates the
             asynchronous engine)
  img/s      the speed rounds (--speed-runs, after all comparisons): every setting run
             once per round, interleaved, --speed-iters iterations logged every
             --speed-log-interval; median over the rounds, and relative to the first
             setting
  outcomes   how many different results (losses + parameters) the 2 x PAIRS processes
             gave (1 = reproducible)

and, unless --no-resume, the kill-and-resume check of the setting: one uninterrupted
run with --checkpoint-interval C, and one run of the same command killed with SIGKILL
once iteration K is logged and rerun (it resumes from the checkpoint before K),
compared the same way.

A SETTING is a quoted string of whitespace-separated tokens: NAME=VALUE sets an
environment variable of the child (e.g. OMP_NUM_THREADS=1, MXNET_MKLDNN_ENABLED=0), a
token starting with '-' and the tokens after it are extra `train` options (e.g.
'default --no-hybridize'; a SETTING that itself starts with '-' goes after `--`), `noaslr` runs the child under `setarch -R` (address-space layout
randomisation off), `default` adds nothing. The children start from this process's
environment with every MXNET_*, OMP_*, GOMP_*, KMP_*, DNNL_*, MKLDNN_*, ONEDNN_* and
PYTHONHASHSEED variable removed, so `default` is the CLI's default (it sets
OMP_NUM_THREADS to the number of cores).

Run-directory layout (--layout): `rundir` (default) runs every child from the repo root
with run directories of the same length (WORK/s0/a00 vs WORK/s0/b00: the command lines
differ in one character, not in length); `cwd` runs the byte-identical command
(--run-dir run) in two different working directories WORK/s0/a00/ and WORK/s0/b00/,
with the repo root on PYTHONPATH.
"""
import argparse
import hashlib
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SETTINGS = ('default', 'MXNET_MKLDNN_ENABLED=0 OMP_NUM_THREADS=1')
STRIPPED_PREFIXES = ('MXNET_', 'OMP_', 'GOMP_', 'KMP_', 'DNNL_', 'MKLDNN_', 'ONEDNN_')
WARMUP = 5            # logged iterations left out of img/s


def parse_setting(text):
    """(env dict, extra train args, wrapper argv) of a SETTING string."""
    env, args, wrap = {}, [], []
    tokens = shlex.split(text)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == 'default':
            pass
        elif tok == 'noaslr':
            wrap = ['setarch', os.uname().machine, '-R']
        elif tok.startswith('-'):
            args.extend(tokens[i:])
            break
        elif '=' in tok and tok.split('=', 1)[0].replace('_', '').isalnum() \
                and tok.split('=', 1)[0].upper() == tok.split('=', 1)[0]:
            name, value = tok.split('=', 1)
            env[name] = value
        else:
            raise SystemExit('error: setting %r: token %r is neither NAME=VALUE, an option '
                             'starting with -, noaslr nor default' % (text, tok))
        i += 1
    return env, args, wrap


def base_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(STRIPPED_PREFIXES) and k != 'PYTHONHASHSEED'}
    env['PYTHONPATH'] = os.pathsep.join([REPO] + ([env['PYTHONPATH']] if env.get('PYTHONPATH')
                                                  else []))
    return env


def train_argv(opts, run_dir, extra, checkpoint_interval=0, iters=None, log_interval=1):
    return [sys.executable, '-m', 'gluon_resnet_v2.train', '--dataset', 'cifar10-sample',
            '--depth', str(opts.depth), '--batch-size', str(opts.batch_size),
            '--max-iters', str(iters or opts.iters), '--log-interval', str(log_interval),
            '--eval-interval', '0',
            '--checkpoint-interval', str(checkpoint_interval), '--num-workers', '0',
            '--seed', str(opts.seed), '--run-dir', run_dir] + list(extra)


class Child:
    """One training process: where it runs and with which command line."""

    def __init__(self, opts, setting, folder, checkpoint_interval=0, **argv_options):
        env_extra, extra, self.wrap = setting
        self.env = dict(base_env(), **env_extra)
        if opts.layout == 'cwd':
            self.cwd, run_dir = folder, 'run'
            self.run_dir = os.path.join(folder, 'run')
        else:
            self.cwd, run_dir = REPO, os.path.relpath(folder, REPO)
            self.run_dir = folder
        self.argv = self.wrap + train_argv(opts, run_dir, extra, checkpoint_interval,
                                           **argv_options)
        self.folder = folder

    def prepare(self):
        shutil.rmtree(self.folder, ignore_errors=True)
        os.makedirs(self.cwd if self.cwd != REPO else os.path.dirname(self.folder),
                    exist_ok=True)

    def start(self):
        return subprocess.Popen(self.argv, cwd=self.cwd, env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def run(self, fresh=True):
        if fresh:
            self.prepare()
        start = time.perf_counter()
        proc = self.start()
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit('error: child failed (exit %d): %s\n%s' % (
                proc.returncode, ' '.join(map(shlex.quote, self.argv)), err[-3000:]))
        return time.perf_counter() - start

    def log(self):
        with open(os.path.join(self.run_dir, 'log.jsonl')) as f:
            records = [json.loads(line) for line in f if line.strip()]
        return [r for r in records if r.get('train_loss') is not None]

    def test_err(self):
        """The test error of the evaluation at the end of the run."""
        with open(os.path.join(self.run_dir, 'log.jsonl')) as f:
            records = [json.loads(line) for line in f if line.strip()]
        return [r['test_err'] for r in records if r.get('test_err') is not None][-1]

    def params(self):
        from gluon_resnet_v2 import checkpoint
        return checkpoint.load(os.path.join(self.run_dir, 'checkpoint-latest.pkl'))['params']


def img_per_sec(records, warmup=WARMUP):
    """Images / seconds over the log records after iteration `warmup`."""
    rows = [r for r in records if r['iteration'] > warmup and r.get('img_per_sec')]
    if not rows:
        return float('nan')
    images, seconds, last = 0, 0.0, warmup
    for r in rows:
        n = (r['iteration'] - last) * BATCH[0]
        images, seconds, last = images + n, seconds + n / r['img_per_sec'], r['iteration']
    return images / seconds


BATCH = [0]


def fingerprint(records, params):
    h = hashlib.sha256()
    h.update(json.dumps([(r['iteration'], r['train_loss']) for r in records]).encode())
    for name in sorted(params):
        h.update(name.encode())
        h.update(params[name].tobytes())
    return h.hexdigest()[:12]


def compare(ra, rb, pa, pb, ta, tb):
    """The comparison of two runs (train records, final parameters, final test errors)."""
    import numpy as np
    la = {r['iteration']: r['train_loss'] for r in ra}
    lb = {r['iteration']: r['train_loss'] for r in rb}
    its = sorted(set(la) & set(lb))
    if set(la) != set(lb):
        raise SystemExit('error: the two runs logged different iterations')
    diffs = [abs(la[i] - lb[i]) for i in its]
    first = next((i for i in its if la[i] != lb[i]), None)
    rel, worst = 0.0, None        # the largest per-tensor relative difference
    num = den = 0.0               # max|a - b| and max|a| over all tensors
    same_params = True
    for name in sorted(pa):
        a, b = pa[name].astype(np.float64), pb[name].astype(np.float64)
        if not np.array_equal(pa[name], pb[name]):
            same_params = False
        scale, d = np.abs(a).max(), np.abs(a - b).max()
        num, den = max(num, d), max(den, scale)
        r = d / scale if scale > 0 else (0.0 if d == 0 else float('inf'))
        if r > rel:
            rel, worst = r, name
    return dict(identical=first is None and same_params, first=first, max_dl=max(diffs),
                end_dl=diffs[-1], rel_p=num / den if den else 0.0, rel_t=rel,
                worst=worst, iters=its[-1], d_test_err=abs(ta - tb))


def run_pairs(opts, index, text):
    setting = parse_setting(text)
    work = os.path.join(opts.work_dir, 's%d' % index)
    results, rates, prints, walls = [], [], set(), []
    for i in range(opts.pairs):
        pair = []
        for side in 'ab':
            child = Child(opts, setting, os.path.join(work, '%s%02d' % (side, i)))
            walls.append(child.run())
            records, params = child.log(), child.params()
            test_err = child.test_err()
            rates.append(img_per_sec(records))
            prints.add(fingerprint(records, params))
            pair.append((records, params, test_err))
            if not opts.keep:
                shutil.rmtree(child.folder, ignore_errors=True)
        (ra, pa, ta), (rb, pb, tb) = pair
        results.append(compare(ra, rb, pa, pb, ta, tb))
        if opts.verbose:
            print('    pair %d: %s' % (i, fmt_row(results[-1])), flush=True)
    return results, statistics.median(rates), sorted(prints), statistics.median(walls)


def run_speed(opts, settings):
    """Training img/s of every setting without a host sync per iteration: --speed-runs
    rounds, each running every setting once (interleaved, so a change in the machine's
    load hits all settings alike); --speed-iters iterations logged every
    --speed-log-interval, the first interval (warm-up) left out. Median over the rounds."""
    rates = {i: [] for i in range(len(settings))}
    for r in range(opts.speed_runs):
        for i, text in enumerate(settings):
            child = Child(opts, parse_setting(text),
                          os.path.join(opts.work_dir, 'speed', 's%d' % i),
                          iters=opts.speed_iters, log_interval=opts.speed_log_interval)
            child.run()
            rates[i].append(img_per_sec(child.log(), warmup=opts.speed_log_interval))
            shutil.rmtree(child.folder, ignore_errors=True)
        print('  speed round %d: %s' % (r + 1, '  '.join('%.0f' % rates[i][-1]
                                                         for i in range(len(settings)))),
              flush=True)
    return [rates[i] for i in range(len(settings))]


def run_resume(opts, index, text):
    """An uninterrupted run vs one killed (SIGKILL) after iteration --kill-after and rerun."""
    setting = parse_setting(text)
    work = os.path.join(opts.work_dir, 's%d' % index)
    whole = Child(opts, setting, os.path.join(work, 'u00'), opts.checkpoint_interval)
    whole.run()
    killed = Child(opts, setting, os.path.join(work, 'k00'), opts.checkpoint_interval)
    killed.prepare()
    proc = killed.start()
    log = os.path.join(killed.run_dir, 'log.jsonl')
    seen = 0
    while proc.poll() is None:
        try:
            with open(log) as f:
                seen = max([json.loads(line)['iteration'] for line in f
                            if line.strip().endswith('}')] or [0])
        except (OSError, ValueError):
            pass
        if seen >= opts.kill_after:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    if proc.returncode != -signal.SIGKILL:
        return None, 'not killed (exit %s after iteration %d)' % (proc.returncode, seen)
    killed.run(fresh=False)
    result = compare(whole.log(), killed.log(), whole.params(), killed.params(),
                     whole.test_err(), killed.test_err())
    if not opts.keep:
        shutil.rmtree(whole.folder, ignore_errors=True)
        shutil.rmtree(killed.folder, ignore_errors=True)
    return result, 'killed after iteration %d, resumed' % seen


def fmt_row(r):
    return '%-9s %6s %10.3g %10.3g %10.3g %10.3g %9.2f  %s' % (
        'yes' if r['identical'] else 'no', '-' if r['first'] is None else r['first'],
        r['max_dl'], r['end_dl'], r['rel_p'], r['rel_t'], 100 * r['d_test_err'],
        r['worst'] or '')


HEADER = '%-9s %6s %10s %10s %10s %10s %9s  %s' % (
    'identical', 'first', 'max|dL|', 'end|dL|', 'relP', 'relP_t', 'dTest%', 'worst tensor')


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                epilog=__doc__.split('\n\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('settings', nargs='*', metavar='SETTING',
                   help='settings to test (default: %s)' % ' and '.join(repr(s) for s in
                                                                       DEFAULT_SETTINGS))
    p.add_argument('--pairs', type=int, default=3, help='pairs of processes per setting '
                   '(default 3; 0: only the speed rounds)')
    p.add_argument('--depth', type=int, default=20, help='CIFAR pre-act ResNet depth (20)')
    p.add_argument('--iters', type=int, default=40, help='iterations per run (40)')
    p.add_argument('--batch-size', type=int, default=64, help='batch size (64)')
    p.add_argument('--seed', type=int, default=0, help='--seed of every run (0)')
    p.add_argument('--layout', choices=('rundir', 'cwd'), default='rundir',
                   help='rundir: same-length --run-dir, cwd = repo root; cwd: identical '
                   'command line in two working directories (default rundir)')
    p.add_argument('--no-resume', dest='resume', action='store_false',
                   help='skip the kill-and-resume comparison')
    p.add_argument('--checkpoint-interval', type=int, default=20,
                   help='checkpoint interval of the resume comparison (20)')
    p.add_argument('--kill-after', type=int, default=25,
                   help='SIGKILL once this iteration is logged (25)')
    p.add_argument('--speed-runs', type=int, default=3,
                   help='rounds of the speed measurement (3; 0 skips it)')
    p.add_argument('--speed-iters', type=int, default=100,
                   help='iterations of a speed run (100)')
    p.add_argument('--speed-log-interval', type=int, default=20,
                   help='log interval of a speed run (20): one host sync per interval')
    p.add_argument('--work-dir', default=os.path.join(REPO, 'runs', 'bench-repro'),
                   help='scratch folder for the runs (runs/bench-repro; emptied per run)')
    p.add_argument('--keep', action='store_true', help='keep the run directories')
    p.add_argument('--json', metavar='FILE', help='also write the results as JSON')
    p.add_argument('-v', '--verbose', action='store_true', help='print every pair')
    opts = p.parse_args()
    settings = opts.settings or list(DEFAULT_SETTINGS)
    for s in settings:
        parse_setting(s)
    if not (opts.pairs or opts.speed_runs):
        p.error('nothing to do: --pairs 0 and --speed-runs 0')
    if opts.pairs and opts.resume and not opts.checkpoint_interval < opts.kill_after < opts.iters:
        p.error('--kill-after must lie between --checkpoint-interval and --iters')
    opts.work_dir = os.path.abspath(opts.work_dir)
    BATCH[0] = opts.batch_size
    sys.path.insert(0, REPO)

    print('pre-act ResNet-%d, cifar10-sample, batch %d, %d iterations, seed %d, --num-workers 0 '
          '(1 CPU context unless a setting says --cpus), layout %s; %d pairs per setting; %s; '
          '%d cores; %s'
          % (opts.depth, opts.batch_size, opts.iters, opts.seed, opts.layout, opts.pairs,
             time.strftime('%Y-%m-%d %H:%M'), len(os.sched_getaffinity(0)), cpu_name()))
    print('example: %s' % ' '.join(map(shlex.quote, train_argv(opts, 'runs/x', []))))
    out = []
    for index, text in enumerate(settings):
        entry = dict(setting=text)
        out.append(entry)
        if not opts.pairs:
            continue
        print('\n== %s' % text, flush=True)
        results, rate, prints, wall = run_pairs(opts, index, text)
        firsts = [r['first'] for r in results if r['first'] is not None]
        print('  pairs identical: %d/%d   distinct outcomes: %d of %d processes   '
              'img/s %.0f   wall %.1f s/run'
              % (sum(r['identical'] for r in results), len(results), len(prints),
                 2 * len(results), rate, wall))
        print('  outcome fingerprints (sha256 of losses + parameters): %s'
              % ' '.join(prints[:4] + (['...'] if len(prints) > 4 else [])))
        print('  ' + HEADER)
        for r in results:
            print('  ' + fmt_row(r))
        entry.update(pairs=results, img_per_sec=rate, outcomes=len(prints), fingerprints=prints,
                     processes=2 * len(results), wall=wall,
                     first_min=min(firsts) if firsts else None)
        if opts.resume:
            res, how = run_resume(opts, index, text)
            entry.update(resume=res, resume_how=how)
            print('  resume (%s) vs uninterrupted:' % how)
            if res:
                print('  ' + fmt_row(res))
        if not opts.keep:
            shutil.rmtree(os.path.join(opts.work_dir, 's%d' % index), ignore_errors=True)

    if opts.speed_runs:
        print('\n== speed: %d interleaved rounds of %d iterations, logged every %d (img/s per '
              'setting, in the order given)' % (opts.speed_runs, opts.speed_iters,
                                                opts.speed_log_interval), flush=True)
        for e, rates in zip(out, run_speed(opts, settings)):
            e['speed_runs'] = rates
            e['speed'] = statistics.median(rates)
    base = out[0].get('speed')
    print('\nsummary (first = earliest differing iteration over the pairs; max over pairs)')
    print('%-50s %9s %6s %10s %10s %8s %7s %13s %s' % (
        'setting', 'identical', 'first', 'max|dL|', 'relP', 'outcomes', 'img/s1', 'img/s (rel)',
        'resume'))
    for e in out:
        rs = e.get('pairs')
        res = e.get('resume')
        resume = ('-' if 'resume' not in e else e['resume_how'] if res is None else
                  'identical' if res['identical'] else
                  'differs from %d, end|dL| %.3g, relP %.3g' % (res['first'], res['end_dl'],
                                                                  res['rel_p']))
        speed = ('%.0f (%.2fx)' % (e['speed'], e['speed'] / base) if 'speed' in e else '-')
        if rs:
            print('%-50s %9s %6s %10.3g %10.3g %8s %7.0f %13s %s' % (
                e['setting'][:50], '%d/%d' % (sum(r['identical'] for r in rs), len(rs)),
                '-' if e['first_min'] is None else e['first_min'],
                max(r['max_dl'] for r in rs), max(r['rel_p'] for r in rs),
                '%d/%d' % (e['outcomes'], e['processes']), e['img_per_sec'], speed, resume))
        else:
            print('%-50s %9s %6s %10s %10s %8s %7s %13s %s' % (
                e['setting'][:50], '-', '-', '-', '-', '-', '-', speed, resume))
    print('img/s1: from the compared runs (a host sync every iteration); img/s: the speed '
          'rounds, relative to the first setting')
    if opts.json:
        with open(opts.json, 'w') as f:
            json.dump(dict(opts=vars(opts), results=out), f, indent=1, default=float)


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return 'unknown CPU'


if __name__ == '__main__':
    main()
