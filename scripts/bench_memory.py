#!/usr/bin/env python3
"""Peak memory and speed of training with and without --memory-saving (a benchmark that
prints; not a test)

    python scripts/bench_memory.py                          # ResNet-1001, batch 64 and 128
    python scripts/bench_memory.py --depth 164 --batches 32,128 --steps 5
    python scripts/bench_memory.py --depth 56 --batches 16 --warmup 1 --steps 2   # smoke

For every batch size and mode (`gluon`: the engine's GluonBackend, a hybridized CachedOp
under autograd; `saving`: --memory-saving, memory.MirroredBackend, the graph executor with
mirror.py's plan) one fresh child process sets the run up as `python -m
gluon_resnet_v2.train` does (its environment: OMP_NUM_THREADS = the usable cores, oneDNN
on, the NaiveEngine on CPU), builds the Run (cifar10-sample data, one CPU context unless
--cpus, the paper's recipe), trains --warmup untimed steps (graph building, memory planning,
oneDNN primitives), then --steps timed ones between two mx.nd.waitall(), Python at most one
step ahead as in the training loop, on two fixed batches (no data pipeline is timed), and
last runs one evaluation batch (inference) so that the peak includes the evaluation's
buffers as in a real run. Reported per child:

  plan MB     the executor memory plan of the training graph at that batch: without
              mirroring for `gluon` (the CachedOp plans about the same: the Gluon and
              Module peaks agree, legacy_symbol/README.md), with the plan for `saving`
  predicted   the plan + the run's other memory (weights, gradients, momentum: 3x the
              parameters; the process, MXNet and data: --base-mb), checked against the
              machine's available memory before the child starts: a configuration that
              does not fit with --reserve-mb to spare is skipped, with the reason
  peak RSS    the child's peak resident memory (ru_maxrss of os.wait4 for that child)
  img/s       images / seconds over the timed steps
  start-up    seconds from the start of the child to the end of the warm-up (planning
              included for `saving`)
  load        the machine's 1-minute load average when the children started and ended

Every measurement is repeated --repeats times, interleaved (round > batch > mode, the
mode order alternating), and the tables give medians; a configuration skipped or killed
is not tried again. Then, per batch, saving / gluon ratios of peak RSS and img/s.

While a child runs, the machine's available memory is watched: below --kill-below-mb the
child is killed and reported, and its OOM score is the highest, so that other processes on
the machine are not pushed out. The machine (CPU, cores, memory) is printed first; on a
shared machine compare the ratios, not absolutes.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
MODES = ('gluon', 'saving')
MODE_NAMES = {'gluon': 'Gluon (hybridized)', 'saving': '--memory-saving'}
# AMD CPU families by /proc/cpuinfo's "cpu family" (the model name of a VM may not say)
AMD_FAMILIES = {23: 'Zen / Zen 2', 25: 'Zen 3 / Zen 4', 26: 'Zen 5'}


# ---------------------------------------------------------------- the child processes

def child_plan(depth, batches, cpus):
    """Executor plans (MB) without and with mirroring for each batch, and the parameters'
    size (MB), from the exported training graph; nothing is allocated beyond the planning
    binds' uninitialised weights."""
    with _env().command_line():
        from mxnet import gluon
        from gluon_resnet_v2 import memory
        from gluon_resnet_v2.config import ModelConfig
        from gluon_resnet_v2.factory import build_net
        net = build_net(ModelConfig(depth=depth), 'cifar10-sample', 10)
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
        out = {}
        for batch in batches:
            shapes = {memory.DATA: (batch // cpus, 3, 32, 32), memory.LABEL: (batch // cpus,)}
            start = time.time()
            planned, plan = memory.planned_symbol(net, loss_fn, shapes)
            arg_shapes, _, _ = planned.infer_shape(**shapes)
            params = sum(_count(s) for n, s in zip(planned.list_arguments(), arg_shapes)
                         if n not in shapes)
            out[batch] = dict(gluon=plan['unmirrored_mb'] * cpus, saving=plan['planned_mb'] * cpus,
                              kept=len(plan['kept']), marked=plan['marked'],
                              plan_seconds=time.time() - start, param_mb=4 * params / 2 ** 20)
        return out


def _count(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def child_train(depth, batch, mode, cpus, warmup, steps):
    """One configuration trained as the module doc says; returns its measurements."""
    start = time.time()
    with open('/proc/self/oom_score_adj', 'w') as f:
        f.write('1000')        # if the machine runs out of memory after all: this one first
    from gluon_resnet_v2.config import Config, DataConfig, ModelConfig, OptimConfig, RunConfig
    folder = tempfile.mkdtemp(prefix='bench-memory-')
    cfg = Config(model=ModelConfig(depth=depth),
                 data=DataConfig(dataset='cifar10-sample', num_workers=0),
                 optim=OptimConfig(batch_size=batch),
                 run=RunConfig(cpus=cpus, memory_saving=mode == 'saving',
                               run_dir=os.path.join(folder, 'run')))
    env = _env()
    with env.command_line(), env.training(cfg.run):       # as the CLI, before MXNet
        import mxnet as mx
        from mxnet import gluon
        from gluon_resnet_v2 import engine
        from gluon_resnet_v2.memory import MirroredBackend
        run = engine.Run(cfg)
        backend = (MirroredBackend(run, echo=lambda line: None) if mode == 'saving'
                   else engine.GluonBackend(run))
        batches = run.train_batches(0, 0)
        fixed = [next(batches) for _ in range(2)]
        batches.close()
        for i in range(warmup):
            backend.step(*fixed[i % 2])
        mx.nd.waitall()
        started = time.time() - start
        begin, previous = time.perf_counter(), None
        for i in range(steps):
            outputs = backend.step(*fixed[i % 2])
            if previous is not None:
                previous.wait_to_read()       # at most one step ahead, as engine.Loop
            previous = outputs[0][0]
        mx.nd.waitall()
        seconds = time.perf_counter() - begin
        # one evaluation batch: the inference buffers a run's evaluation adds
        for x in gluon.utils.split_and_load(fixed[0][0], run.ctxs):
            backend.net(x)
        mx.nd.waitall()
        result = dict(img_per_sec=steps * batch / seconds, start_seconds=started,
                      mxnet=mx.__version__, omp=os.environ.get('OMP_NUM_THREADS'),
                      engine=os.environ.get('MXNET_ENGINE_TYPE', 'ThreadedEnginePerDevice'),
                      vmhwm_mb=_status_mb('VmHWM'))
        if mode == 'saving':
            result['plan_mb'] = backend.plan['bound_mb'] * cpus
        run.close()
    return result


def _env():
    """gluon_resnet_v2.environ (imported in the child only: it sets nothing on import)."""
    from gluon_resnet_v2 import environ
    return environ


def _status_mb(key, path='/proc/self/status'):
    with open(path) as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) / 1024.0
    return None


# ---------------------------------------------------------------- the parent

def meminfo_mb(key):
    return _status_mb(key, '/proc/meminfo')


def run_child(kind, args, kill_below_mb, timeout):
    """(result dict or None, peak RSS MB of the child, failure text or None). The child is
    killed if the machine's available memory falls below `kill_below_mb` or after
    `timeout` seconds; it is reaped with os.wait4, whose rusage is that child's alone."""
    env = {k: v for k, v in os.environ.items() if k != 'MXNET_BACKWARD_DO_MIRROR'}
    env['PYTHONPATH'] = os.pathsep.join([REPO] + ([env['PYTHONPATH']] if env.get('PYTHONPATH')
                                                  else []))
    with tempfile.TemporaryFile(mode='w+') as out, tempfile.TemporaryFile(mode='w+') as err:
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), '--child', kind,
                                 json.dumps(args)], env=env, stdout=out, stderr=err, text=True)
        deadline, why = time.time() + timeout, None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            available = meminfo_mb('MemAvailable')
            if why is None and available is not None and available < kill_below_mb:
                why = 'killed: the machine had %.0f MB available' % available
                proc.kill()
            elif why is None and time.time() > deadline:
                why = 'killed after %.0f s' % timeout
                proc.kill()
            time.sleep(0.25)
        proc.returncode = os.waitstatus_to_exitcode(status)     # reaped here, not by Popen
        peak = usage.ru_maxrss / 1024.0                           # KiB on Linux
        if why is None and proc.returncode != 0:
            err.seek(0)
            tail = err.read().strip().splitlines()[-3:]
            why = 'failed (exit %s): %s' % (proc.returncode, ' | '.join(tail))
        if why:
            return None, peak, why
        out.seek(0)
        return json.loads(out.read().strip().splitlines()[-1]), peak, None


def machine():
    name, family = 'unknown CPU', None
    with open('/proc/cpuinfo') as f:
        for line in f:
            if line.startswith('model name') and name == 'unknown CPU':
                name = line.split(':', 1)[1].strip()
            elif line.startswith('cpu family') and family is None:
                family = int(line.split(':', 1)[1])
    if name.startswith('AMD') and family in AMD_FAMILIES:
        name = '%s (family %d: %s)' % (name, family, AMD_FAMILIES[family])
    return dict(cpu=name, cores=len(os.sched_getaffinity(0)),
                total_mb=meminfo_mb('MemTotal'), available_mb=meminfo_mb('MemAvailable'),
                load=os.getloadavg())


def fmt(value, spec='{:,.0f}'):
    return '-' if value is None else spec.format(value)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                epilog=__doc__.split('\n\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--depth', type=int, default=1001, help='CIFAR pre-act ResNet depth (1001)')
    p.add_argument('--batches', default='64,128', help='global batch sizes (64,128)')
    p.add_argument('--cpus', type=int, default=1, help='CPU contexts (1)')
    p.add_argument('--warmup', type=int, default=2, help='untimed steps (2)')
    p.add_argument('--steps', type=int, default=3, help='timed steps (3)')
    p.add_argument('--repeats', type=int, default=2,
                   help='interleaved rounds of every measurement; medians reported (2)')
    p.add_argument('--base-mb', type=float, default=600,
                   help='memory of a run beyond the plan and 3x the parameters: process, '
                        'MXNet, data, evaluation (600; measured 430-580 for ResNet-1001)')
    p.add_argument('--reserve-mb', type=float, default=3072,
                   help='memory to leave to the rest of the machine (3072)')
    p.add_argument('--kill-below-mb', type=float, default=1024,
                   help='kill a child when the machine\'s available memory falls below (1024)')
    p.add_argument('--timeout', type=float, default=3600, help='seconds per child (3600)')
    p.add_argument('--json', help='also write the results here')
    p.add_argument('--child', help=argparse.SUPPRESS)
    p.add_argument('child_args', nargs='?', help=argparse.SUPPRESS)
    opts = p.parse_args()
    if opts.child:
        kw = json.loads(opts.child_args)
        result = (child_plan if opts.child == 'plan' else child_train)(**kw)
        print(json.dumps(result))
        return
    batches = [int(b) for b in opts.batches.split(',')]
    box = machine()
    print('bench_memory: cifar_resnet%d_v2 (depth %d), batches %s, %d CPU context(s); %d warm-up '
          '+ %d timed steps per measurement, each in its own process; %d interleaved round(s)'
          % (opts.depth, opts.depth, ','.join(map(str, batches)), opts.cpus, opts.warmup,
             opts.steps, opts.repeats))
    print('machine: %s, %d cores; memory %.1f GiB, %.1f GiB available; load %.2f %.2f %.2f; %s'
          % (box['cpu'], box['cores'], box['total_mb'] / 1024, box['available_mb'] / 1024,
             *box['load'], time.strftime('%Y-%m-%d %H:%M')), flush=True)
    plans, _, why = run_child('plan', dict(depth=opts.depth, batches=batches, cpus=opts.cpus),
                              opts.kill_below_mb, opts.timeout)
    if why:
        raise SystemExit('error: planning %s' % why)
    plans = {int(b): plan for b, plan in plans.items()}
    for batch in batches:
        plan = plans[batch]
        print('batch %d: executor plan %s MB without, %s MB with the plan (%d tensors kept, %d '
              'ops recomputed; planned in %.1f s); parameters %.0f MB'
              % (batch, fmt(plan['gluon']), fmt(plan['saving']), plan['kept'], plan['marked'],
                 plan['plan_seconds'], plan['param_mb']), flush=True)
    runs = {(b, m): [] for b in batches for m in MODES}
    for round_ in range(opts.repeats):
        # repeat > batch > mode, the mode order alternating: a busy spell of a shared
        # machine hits both modes alike
        print('round %d' % (round_ + 1), flush=True)
        for batch in batches:
            for mode in (MODES if round_ % 2 == 0 else MODES[::-1]):
                done = runs[(batch, mode)]
                if done and not done[-1].get('img_per_sec'):
                    continue                      # skipped or killed: not tried again
                done.append(measure(opts, batch, mode, plans[batch]))
    report(opts, box, plans, runs, batches)


def measure(opts, batch, mode, plan):
    """One measurement: predicted, then run unless it cannot fit."""
    predicted = plan[mode] + 3 * plan['param_mb'] + opts.base_mb
    row = dict(batch=batch, mode=mode, predicted_mb=predicted, load=[os.getloadavg()[0]])
    available = meminfo_mb('MemAvailable')
    label = '  batch %d %-20s' % (batch, MODE_NAMES[mode])
    if predicted > available - opts.reserve_mb:
        row['skipped'] = ('predicted %s MB > %s MB available - %s MB reserve'
                          % (fmt(predicted), fmt(available), fmt(opts.reserve_mb)))
        print('%s skipped: %s' % (label, row['skipped']), flush=True)
        return row
    result, peak, why = run_child('train', dict(depth=opts.depth, batch=batch, mode=mode,
                                                cpus=opts.cpus, warmup=opts.warmup,
                                                steps=opts.steps),
                                  opts.kill_below_mb, opts.timeout)
    row['load'].append(os.getloadavg()[0])
    row.update(peak_mb=peak, failed=why, **(result or {}))
    if why:
        print('%s %s (peak RSS %s MB)' % (label, why, fmt(peak)), flush=True)
    else:
        print('%s peak RSS %s MB (predicted %s), %.2f img/s, start-up %.0f s, load %.1f -> %.1f'
              % (label, fmt(peak), fmt(predicted), row['img_per_sec'], row['start_seconds'],
                 *row['load']), flush=True)
    return row


def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def report(opts, box, plans, runs, batches):
    """The table (medians over the rounds that ran) and the ratios."""
    first = next((r for rs in runs.values() for r in rs if 'mxnet' in r), {})
    print('\ncifar_resnet%d_v2 on %s, %d cores, OMP_NUM_THREADS=%s, %s, MXNet %s; %d CPU '
          'context(s); %d warm-up + %d timed steps per measurement, %d interleaved round(s): '
          'medians' % (opts.depth, box['cpu'], box['cores'], first.get('omp'),
                       first.get('engine'), first.get('mxnet'), opts.cpus, opts.warmup,
                       opts.steps, opts.repeats))
    print('\n| batch | mode | executor plan (MB) | predicted peak (MB) | peak RSS (MB) | img/s '
          '| img/s per round | start-up (s) | load (1 min) |')
    print('|---:|---|---:|---:|---:|---:|---|---:|---|')
    summary = {}
    for (batch, mode), rows in runs.items():
        good = [r for r in rows if r.get('img_per_sec')]
        peak, rate = median(r['peak_mb'] for r in good), median(r['img_per_sec'] for r in good)
        summary[(batch, mode)] = (peak, rate)
        bad = next((r for r in rows if not r.get('img_per_sec')), None)
        if good:
            measured = (fmt(peak), '%.2f' % rate, ', '.join('%.2f' % r['img_per_sec']
                                                           for r in good),
                        fmt(median(r['start_seconds'] for r in good)))
        else:
            measured = ('skipped: ' + bad['skipped'] if bad.get('skipped') else
                        '%s (peak RSS %s MB)' % (bad['failed'], fmt(bad['peak_mb'])),
                        '-', '', '')
        loads = [x for r in rows for x in r['load']]
        print('| %d | %s | %s | %s | %s | %s | %s | %s | %.1f-%.1f |' % (
            batch, MODE_NAMES[mode], fmt(plans[batch][mode]), fmt(rows[0]['predicted_mb']),
            *measured, min(loads), max(loads)))
    print('\n| batch | peak RSS: saving / Gluon | executor plan: saving / Gluon | '
          'img/s: saving / Gluon |')
    print('|---:|---:|---:|---:|')
    for batch in batches:
        (gluon_peak, gluon_rate), (peak, rate) = [summary[(batch, m)] for m in MODES]
        print('| %d | %s | %.2f | %s |' % (
            batch, '%.2f' % (peak / gluon_peak) if peak and gluon_peak else '-',
            plans[batch]['saving'] / plans[batch]['gluon'],
            '%.2f' % (rate / gluon_rate) if rate and gluon_rate else '-'))
    if opts.json:
        with open(opts.json, 'w') as f:
            json.dump(dict(opts=vars(opts), machine=box, plans=plans,
                           runs=[r for rs in runs.values() for r in rs]), f, indent=1)


if __name__ == '__main__':
    main()
