"""`python -m gluon_resnet_v2.bench`: how fast the project trains on this machine, with what
keeps the numbers honest on a machine that may be shared.

    python -m gluon_resnet_v2.bench                          # ResNet-110 b128, ResNet-164 b64
    python -m gluon_resnet_v2.bench --cases cifar_resnet20_v2:32 --steps 2 --warmup 1 --rounds 1

Rows, per case (registry name : global batch), each measured in a fresh child process:

  gluon       the engine's own training step in float32 (engine.GluonBackend.step: split
              over --cpus contexts, hybridized, NAG with the paper's hyper-parameters) on
              two fixed synthetic batches: no data pipeline
  gluon-bf16  the same step with --dtype bfloat16 (bf16.py's cast plan)
  module      mx.mod.Module's step on the same network (legacy_symbol), one context
  train       `python -m gluon_resnet_v2.train` end to end on real images (loader, meter,
              log): the img/s it logs over --steps iterations after as many warm-up ones
  train-bf16  the same with --dtype bfloat16
  torch       the same network in PyTorch (torch_reference.py), float32, channels-last,
              under --torch-python (PyTorch in a virtual environment of its own)
  torch-bf16  the same with bfloat16 autocast

and once per round the GEMM peak: a FullyConnected of size^3 in float32 and in bfloat16.

Honesty: rounds interleave (round > case > row, the row order rotated every round), so a
busy spell hits every row alike; the table gives medians (and the range), ratios of those
medians, and `% of peak` = img/s x training FLOPs per image over the GEMM peak of the same
rounds. Training FLOPs per image = 6 x the conv/FC multiply-adds (forward, and backward
for the data and the weights, 2 FLOPs each). Each child's peak memory is its own
(ru_maxrss from wait4). Before every measurement the load average is read, and "other
load" is the CPU time other processes used during it, in cores (/proc/stat minus the
child's own). Measured on 2 cores: while another process holds one core, a step on 2
OpenMP threads runs up to 10x slower, not 2x (every parallel region waits for the
preempted thread), and smaller operations suffer more, so under load the ratios mislead
as well as the absolute numbers: --wait-idle waits for a quiet machine before each
measurement, and the table shows the other load each row was measured under.

Layering: the core package never imports legacy_symbol. The Module row runs
`legacy_symbol.compare.speed:measure` by name in its child process (so the benchmark is
one command of the core, every measurement needs a child of its own anyway, and without
legacy_symbol that row says so). The parent process imports no MXNet.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import namedtuple
from dataclasses import fields

import click

from .cli import main_wrapper, output_file
from .environ import cores
from .config import OptimConfig
from .environ import CPU_ENGINE
from .errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CASES = ('cifar_resnet110_v2:128', 'cifar_resnet164_v2:64')
Row = namedtuple('Row', 'label kind dtype')
ROWS = {'gluon': Row('Gluon step, float32', 'step', 'float32'),
        'gluon-bf16': Row('Gluon step, bfloat16', 'step', 'bfloat16'),
        'module': Row('Module step, float32', 'module', 'float32'),
        'train': Row('train loop, float32', 'train', 'float32'),
        'train-bf16': Row('train loop, bfloat16', 'train', 'bfloat16'),
        'torch': Row('PyTorch step, float32 channels-last', 'torch', 'float32'),
        'torch-bf16': Row('PyTorch step, bfloat16 autocast channels-last', 'torch', 'bfloat16')}
BASE = 'gluon'                          # every ratio is img/s over this row's
MEASURE = 'gluon_resnet_v2.measure'      # what the child processes run
MODULE_MEASURE = 'legacy_symbol.compare.speed:measure'
TORCH_SCRIPT = os.path.join(ROOT, 'gluon_resnet_v2', 'torch_reference.py')   # run by path
NO_TORCH = ('give --torch-python PYTHON (or GRV_TORCH_PYTHON): a Python with PyTorch, in '
            'a virtual environment of its own (PyTorch >= 2 beside MXNet breaks gluoncv)')

# ---- parent side: one child per measurement, interleaved rounds ----

CHILD = ('import importlib, json, sys\n'
         'module, _, name = sys.argv[1].partition(":")\n'
         'kwargs = json.load(open(sys.argv[2]))\n'
         'value = getattr(importlib.import_module(module), name)(**kwargs)\n'
         'json.dump(value, open(sys.argv[3], "w"))\n')


def child_env(extra=None):
    """This process's environment (the command line's OMP_NUM_THREADS), MXNet's
    NaiveEngine as CPU training runs use it unless the user chose an engine, the source
    tree importable."""
    env = dict(os.environ)
    for key, value in CPU_ENGINE.items():
        env.setdefault(key, value)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (ROOT, env.get('PYTHONPATH')) if p)
    env.update(extra or {})
    return env


def run_child(argv, env):
    """Run argv to its end: (exit code, peak RSS in MB, its CPU seconds, other processes'
    CPU use in cores while it ran, the tail of its stderr)."""
    before = busy_seconds(), time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors='replace')[-1500:]
    wall = time.perf_counter() - before[1]
    own = usage.ru_utime + usage.ru_stime
    busy = busy_seconds()
    other = None if busy is None or before[0] is None else max(0.0, (busy - before[0] - own) / wall)
    return code, usage.ru_maxrss / 1024.0, own, other, tail


def busy_seconds():
    """CPU seconds all processes of the machine have used (Linux /proc/stat), or None."""
    try:
        with open('/proc/stat') as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)         # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf('SC_CLK_TCK')


def call(function, kwargs, env, argv=None):
    """function(**kwargs) in a child process (or `argv + [job, result]`, a script that
    reads its kwargs from the job file): its result with the measurement's facts."""
    with tempfile.TemporaryDirectory(prefix='grv-bench-') as tmp:
        job, result = os.path.join(tmp, 'job.json'), os.path.join(tmp, 'result.json')
        with open(job, 'w') as f:
            json.dump(kwargs, f)
        argv = (argv or [sys.executable, '-c', CHILD, function]) + [job, result]
        code, rss, cpu, other, tail = run_child(argv, env)
        if code != 0:
            return {'error': 'exit code %d: %s' % (code, one_line_tail(tail))}
        with open(result) as f:
            return dict(json.load(f), peak_rss_mb=rss, cpu_seconds=cpu, other_load=other)


def one_line_tail(text):
    """The last line of a child's stderr that is not one of MXNet's log lines."""
    lines = [l for l in text.strip().splitlines()
             if l.strip() and not re.match(r'\[\d\d:\d\d:\d\d\] ', l)]
    return lines[-1][-300:] if lines else '(no output)'


def train_argv(model, batch, dtype, cpus, steps, data_dir, run_dir):
    """The train command of a train row: --steps warm-up iterations, then --steps timed
    ones, one log line each; evaluation and checkpoint only at the end (after the log)."""
    data = ['--dataset', 'cifar10', '--data-dir', data_dir] if data_dir else \
        ['--dataset', 'cifar10-sample']
    return [sys.executable, '-m', 'gluon_resnet_v2.train', '--model', model] + data + [
        '--batch-size', str(batch), '--dtype', dtype, '--cpus', str(cpus),
        '--max-iters', str(2 * steps), '--log-interval', str(steps), '--warmup-iters', '0',
        '--eval-interval', '0', '--checkpoint-interval', '0', '--run-dir', run_dir]


def measure_train(model, batch, dtype, cpus, steps, data_dir):
    """The train command in a child: the img/s of its last logged interval."""
    from .runlog import read_log
    with tempfile.TemporaryDirectory(prefix='grv-bench-train-') as tmp:
        run_dir = os.path.join(tmp, 'run')
        code, rss, cpu, other, tail = run_child(
            train_argv(model, batch, dtype, cpus, steps, data_dir, run_dir), child_env())
        if code != 0:
            return {'error': 'exit code %d: %s' % (code, one_line_tail(tail))}
        rates = [r['img_per_sec'] for r in read_log(run_dir, warn=None) if r['img_per_sec']]
    return dict(img_per_sec=rates[-1], peak_rss_mb=rss, cpu_seconds=cpu, other_load=other)


def measure(case, row, spec, env):
    """One measurement of `row` for `case` (model, batch) in a child process."""
    model, batch = case
    kind, dtype = ROWS[row].kind, ROWS[row].dtype
    if kind == 'train':
        return measure_train(model, batch, dtype, spec['cpus'], spec['steps'], spec['data_dir'])
    if kind == 'torch':            # the same network in PyTorch, under its own Python
        return call(None, dict(model=model, batch=batch, dtype=dtype, channels_last=True,
                               steps=spec['steps'], warmup=spec['warmup'], seed=spec['seed']),
                    env, argv=[spec['torch_python'], TORCH_SCRIPT])
    if kind == 'module':           # legacy_symbol's step: by name, never imported here
        return call(MODULE_MEASURE, {'spec': dict(model=model, batch=batch, variant='module',
                                                  steps=spec['steps'], warmup=spec['warmup'],
                                                  seed=spec['seed'])},
                    dict(env, MXNET_SUBGRAPH_BACKEND='NONE'))
    return call(MEASURE + ':step', dict(model=model, batch=batch, dtype=dtype,
                                                 cpus=spec['cpus'], steps=spec['steps'],
                                                 warmup=spec['warmup'], seed=spec['seed']), env)


def unavailable(rows, gemm, torch_python=None):
    """{row: why it cannot run here} for the rows this build, CPU or install lacks."""
    import importlib.util
    why = {}
    choices = {f.name: f for f in fields(OptimConfig)}['dtype'].metadata['choices']
    bf16_why = ('this version has no --dtype bfloat16' if 'bfloat16' not in choices
                else gemm.get('bf16_refusal'))
    for row in rows:
        if ROWS[row].dtype == 'bfloat16' and bf16_why:
            why[row] = bf16_why
        if ROWS[row].kind == 'module' and importlib.util.find_spec('legacy_symbol') is None:
            why[row] = 'legacy_symbol (the Module code) is not installed'
        if ROWS[row].kind == 'torch' and not torch_python:
            why[row] = NO_TORCH
    return why


def run_benchmark(cases, rows, rounds=3, steps=10, warmup=3, cpus=1, data_dir=None,
                  gemm_size=2048, gemm_seconds=1.0, seed=0, wait_idle=0, echo=print,
                  torch_python=None):
    """Every measurement, interleaved; returns the report (see build_report)."""
    env = child_env()
    spec = dict(steps=steps, warmup=warmup, cpus=cpus, data_dir=data_dir, seed=seed,
                torch_python=torch_python)
    gemms, runs, skipped, loads = [], {(c, r): [] for c in cases for r in rows}, {}, []
    for k in range(rounds):
        # the GEMM peak first, then round > case > row, the rows rotated every round
        for item in [None] + [(c, rows[(i + k) % len(rows)]) for c in cases
                              for i in range(len(rows))]:
            if item is not None and item[1] in skipped:
                continue
            wait_for_idle(wait_idle, echo)
            load = os.getloadavg()
            res = (call(MEASURE + ':gemm', dict(size=gemm_size, seconds=gemm_seconds), env)
                   if item is None else measure(item[0], item[1], spec, env))
            res['load_before'], res['load_after'] = load, os.getloadavg()
            loads.append(load[0])
            if item is not None:
                runs[item].append(res)
            else:
                gemms.append(res)
                if k == 0 and 'error' not in res:
                    skipped = unavailable(rows, res, torch_python)
                    for row, why in skipped.items():
                        echo('%s: not available: %s' % (ROWS[row].label, why))
            echo('[round %d/%d] %s' % (k + 1, rounds, progress_line(item, res)))
    return build_report(cases, rows, runs, gemms, skipped, loads, dict(
        rounds=rounds, steps=steps, warmup=warmup, cpus=cpus, seed=seed, gemm_size=gemm_size,
        data='full CIFAR-10 (%s)' % data_dir if data_dir else 'cifar10-sample (embedded)'))


def wait_for_idle(limit, echo, threshold=0.2, window=2.0):
    """Wait up to `limit` seconds until other processes use less than `threshold` cores
    (over `window` seconds; this process is idle meanwhile). Two threads of oneDNN on a
    2-core machine where another process holds a core lose far more than half their speed
    (every parallel region waits for the preempted thread), so ratios then mislead too."""
    deadline = time.time() + limit
    while limit:
        before = busy_seconds()
        time.sleep(window)
        after = busy_seconds()
        if before is None or after is None or (after - before) / window < threshold:
            return
        if time.time() >= deadline:
            echo('still busy after %d s: other processes use %.2f cores; measuring anyway'
                 % (limit, (after - before) / window))
            return


def progress_line(item, res):
    what = 'GEMM peak' if item is None else '%s:%d %s' % (item[0][0], item[0][1], item[1])
    if 'error' in res:
        return '%s: FAILED %s' % (what, res['error'])
    if item is None:
        value = 'float32 %.0f GFLOP/s, bfloat16 %s' % (res['float32'], _fmt(res['bfloat16'],
                                                                           '%.0f GFLOP/s'))
    else:
        value = '%.1f img/s, peak %.0f MB' % (res['img_per_sec'], res['peak_rss_mb'])
    return '%s: %s (load average %.2f, other load %s cores)' % (
        what, value, res['load_before'][0], _fmt(res.get('other_load'), '%.2f'))


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(value, spec):
    return 'n/a' if value is None else spec % value


def machine():
    """CPU model, usable cores, the vector features that matter here."""
    name, flags = None, set()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, value = line.partition(':')
                if key.strip() == 'model name' and name is None:
                    name = value.strip()
                elif key.strip() == 'flags' and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return dict(cpu=name or 'unknown CPU', cores=cores(),
                features=[f for f in ('avx2', 'avx512f', 'avx512_bf16', 'amx_bf16') if f in flags])


def build_report(cases, rows, runs, gemms, skipped, loads, config):
    """Medians per case and row, ratios to the Gluon float32 step, % of the GEMM peak."""
    peak = {d: _median([g.get(d) for g in gemms if 'error' not in g])
            for d in ('float32', 'bfloat16')}
    out = []
    for case in cases:
        done = {r: [x for x in runs[case, r] if 'error' not in x] for r in rows}
        macs = _median([x.get('macs_per_image') for r in rows for x in done[r]])
        gflop = 6 * macs / 1e9 if macs else None
        table = {r: dict(summary(done[r], gflop, peak[ROWS[r].dtype]), runs=runs[case, r],
                         unavailable=skipped.get(r)) for r in rows}
        base = table.get(BASE, {}).get('img_per_sec')
        for value in table.values():
            value['ratio'] = value['img_per_sec'] / base if value['img_per_sec'] and base \
                else None
        out.append(dict(case='%s:%d' % case, model=case[0], batch=case[1], macs_per_image=macs,
                        gflop_per_image=gflop, rows=table))
    env = child_env()
    versions = {x.get('mxnet') for v in runs.values() for x in v if x.get('mxnet')}
    torch = {x.get('torch') for v in runs.values() for x in v if x.get('torch')}
    return dict(config=dict(config, rows=list(rows), omp_num_threads=env.get('OMP_NUM_THREADS'),
                            engine=env.get('MXNET_ENGINE_TYPE', 'threaded'),
                            mxnet=', '.join(sorted(versions)) or None,
                            torch=', '.join(sorted(torch)) or None),
                machine=machine(), gemm=dict(peak, runs=gemms),
                load=dict(first=loads[0] if loads else None, last=os.getloadavg()[0],
                          median=_median(loads), max=max(loads) if loads else None),
                cases=out)


def summary(done, gflop, peak):
    """One row's successful measurements: median img/s and its range, median peak memory
    and other load, GFLOP/s at the median and its % of `peak`."""
    rates = [x['img_per_sec'] for x in done]
    rate = _median(rates)
    gflops = rate * gflop if rate and gflop else None
    return dict(img_per_sec=rate, range=[min(rates), max(rates)] if rates else None,
                peak_rss_mb=_median([x['peak_rss_mb'] for x in done]),
                other_load=_median([x.get('other_load') for x in done]), gflops=gflops,
                pct_peak=100 * gflops / peak if gflops and peak else None)


def format_report(report):
    """The Markdown table (the README's) and the lines that say what it was measured on."""
    cfg, m, g, load = report['config'], report['machine'], report['gemm'], report['load']
    lines = ['| network | batch | row | img/s | range | x Gluon fp32 | peak MB | GFLOP/s | '
             '% of GEMM peak | other load |', '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|']
    for c in report['cases']:
        for r, v in c['rows'].items():
            if v['unavailable'] or v['img_per_sec'] is None:
                lines.append('| %s | %d | %s | %s | | | | | | |' % (
                    c['model'], c['batch'], ROWS[r].label, 'not available: %s' % v['unavailable']
                    if v['unavailable'] else 'failed (see the JSON report)'))
                continue
            lines.append('| %s | %d | %s | %.1f | %.1f-%.1f | %s | %.0f | %s | %s | %s |' % (
                c['model'], c['batch'], ROWS[r].label, v['img_per_sec'], v['range'][0],
                v['range'][1], _fmt(v['ratio'], '%.2f'), v['peak_rss_mb'],
                _fmt(v['gflops'], '%.0f'), _fmt(v['pct_peak'], '%.0f %%'),
                _fmt(v['other_load'], '%.2f')))
    notes = [
        'Measured on %s (%d cores; %s), MXNet %s%s, OMP_NUM_THREADS=%s, engine %s, --cpus %d; '
        '%d round(s), interleaved, of %d warm-up + %d timed steps; train rows on %s.'
        % (m['cpu'], m['cores'], ', '.join(m['features']) or 'no AVX-512', cfg['mxnet'],
           ', PyTorch %s' % cfg['torch'] if cfg.get('torch') else '',
           cfg['omp_num_threads'], cfg['engine'], cfg['cpus'], cfg['rounds'], cfg['warmup'],
           cfg['steps'], cfg['data']),
        'GEMM peak (FullyConnected %d^3, median): float32 %s GFLOP/s, bfloat16 %s GFLOP/s. '
        'Training FLOPs per image (6 x conv/FC multiply-adds): %s.'
        % (cfg['gemm_size'], _fmt(g['float32'], '%.0f'), _fmt(g['bfloat16'], '%.0f'),
           ', '.join('%s %s G' % (c['model'], _fmt(c['gflop_per_image'], '%.3f'))
                     for c in report['cases'])),
        'Load average (1 min) before each measurement (the previous one included): first %s, '
        'median %s, max %s; at the end %s. Other load: cores other processes used during a '
        'measurement (median; a virtual machine\'s neighbours are not seen).'
        % tuple(_fmt(load[k], '%.2f') for k in ('first', 'median', 'max', 'last'))]
    return '\n'.join(lines + [''] + notes) + '\n'


def check_torch(python):
    """UserError unless `python` runs and imports torch."""
    try:
        out = subprocess.run([python, '-c', 'import torch; print(torch.__version__)'],
                             capture_output=True, text=True, timeout=300)
    except OSError as e:
        raise UserError('--torch-python %s cannot run (%s): give the python of a virtual '
                        'environment with PyTorch' % (python, e.strerror or e)) from None
    if out.returncode != 0:
        raise UserError('--torch-python %s cannot import torch: install PyTorch in that '
                        'environment (pip install torch), never beside MXNet' % python)


def parse_cases(text):
    """'a:128,b:64' -> [('a', 128), ('b', 64)]; names from the registry."""
    from .models import list_models
    cases = []
    for item in [t.strip() for t in text.split(',') if t.strip()]:
        name, _, batch = item.partition(':')
        if name not in list_models():
            raise click.BadParameter('unknown model %r: choose one of %s'
                                     % (name, ', '.join(list_models())))
        if not batch.isdigit() or int(batch) < 1:
            raise click.BadParameter('%r: write NAME:BATCH with a positive batch, e.g. '
                                     'cifar_resnet110_v2:128' % item)
        cases.append((name, int(batch)))
    return cases


def parse_rows(text):
    rows = [t.strip() for t in text.split(',') if t.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown or not rows:
        raise click.BadParameter('unknown row %r: choose from %s' % (
            unknown[0] if unknown else text, ', '.join(ROWS)))
    return list(dict.fromkeys(rows))


@click.command(context_settings={'max_content_width': 100})
@click.option('--cases', default=','.join(DEFAULT_CASES), show_default=True,
              callback=lambda c, p, v: parse_cases(v), metavar='NAME:BATCH[,...]',
              help='networks (registry names) and global batch sizes')
@click.option('--rows', default=','.join(ROWS), show_default=True,
              callback=lambda c, p, v: parse_rows(v),
              help='what to measure: gluon = the engine\'s training step, gluon-bf16 = with '
                   '--dtype bfloat16, module = mx.mod.Module\'s step, train / train-bf16 = '
                   'the train command on real images, torch / torch-bf16 = the same network '
                   'in PyTorch, channels-last (needs --torch-python)')
@click.option('--rounds', default=3, show_default=True, type=click.IntRange(1),
              help='interleaved measurements per case and row; medians are reported')
@click.option('--steps', default=10, show_default=True, type=click.IntRange(1),
              help='timed steps per measurement (train rows: timed iterations after as many '
                   'warm-up ones)')
@click.option('--warmup', default=3, show_default=True, type=click.IntRange(0),
              help='untimed steps first (graph building, memory planning, oneDNN primitives)')
@click.option('--cpus', default=1, show_default=True, type=click.IntRange(1),
              help='CPU contexts the batch is split over (gluon and train rows)')
@click.option('--data-dir', default=None, type=click.Path(exists=True, file_okay=False),
              help='folder holding cifar-10-batches-py/ (the full CIFAR-10) for the train rows; '
                   'default: the embedded cifar10-sample')
@click.option('--gemm-size', default=2048, show_default=True, type=click.IntRange(64),
              help='the GEMM peak is a SIZE^3 FullyConnected')
@click.option('--wait-idle', default=0, show_default=True, type=click.IntRange(0),
              metavar='SECONDS', help='before each measurement, wait up to this long for other '
                                      'processes to use under 0.2 cores (a shared machine)')
@click.option('--seed', default=0, show_default=True, type=click.IntRange(0))
@click.option('--torch-python', default=None, envvar='GRV_TORCH_PYTHON', metavar='PYTHON',
              help='a Python with PyTorch (its own virtual environment) for the torch rows: '
                   'the same network (gluon_resnet_v2/torch_reference.py), channels-last, '
                   'float32 and bfloat16 autocast; without it those rows say so')
@click.option('--json', 'json_out', default=None, callback=output_file,
              help='write the whole report (every measurement) here as JSON')
@click.option('--markdown', default=None, callback=output_file, help='write the table here')
def main(cases, rows, rounds, steps, warmup, cpus, data_dir, gemm_size, wait_idle, seed,
         torch_python, json_out, markdown):
    """Training img/s, peak memory, ratios and % of the GEMM peak on this machine: the Gluon
    step (float32, bfloat16), the Module step, the train loop and PyTorch's step,
    interleaved."""
    if data_dir and not os.path.isdir(os.path.join(data_dir, 'cifar-10-batches-py')):
        raise UserError('--data-dir %s holds no cifar-10-batches-py/: point it at the folder '
                        'with the official python pickles (scripts/bench_accuracy.py builds '
                        'them from ../shared/data), or drop it for the embedded sample'
                        % data_dir)
    if torch_python and any(ROWS[r].kind == 'torch' for r in rows):
        check_torch(torch_python)
    click.echo('load average %.2f %.2f %.2f; %s' % (os.getloadavg() + (machine()['cpu'],)))
    report = run_benchmark(cases, rows, rounds, steps, warmup, cpus, data_dir, gemm_size,
                           seed=seed, wait_idle=wait_idle, echo=click.echo,
                           torch_python=torch_python)
    text = format_report(report)
    click.echo('\n' + text)
    for path, content in ((json_out, json.dumps(report, indent=1)), (markdown, text)):
        if path:
            with open(path, 'w') as f:
                f.write(content)
    return report


def run():
    """The console command: as `python -m gluon_resnet_v2.bench` runs it."""
    main_wrapper(main)()


if __name__ == '__main__':
    run()
