"""`python -m legacy_symbol.compare speed`: training img/s and peak memory, Gluon vs Module.

Five ways to train the same network on this machine, measured side by side in one run:

    hybrid             Gluon, hybridize(static_alloc=True, static_shape=True) (the engine's way)
    imperative         Gluon, not hybridized
    module             mx.mod.Module on legacy_symbol.paper's symbol, MXNET_SUBGRAPH_BACKEND=NONE
    module_mirror      the same with memory mirroring as `legacy_symbol.train --mirror` does it
                       (gluon_resnet_v2.mirror, policy `segments`): a few residual-stream tensors
                       kept, everything else recomputed in the backward pass
    module_mirror_env  the same with MXNET_BACKWARD_DO_MIRROR=1 alone: the graph executor
                       recomputes every op but convolutions / FC (here BN, ReLU, additions,
                       pooling); `--mirror-policy env`

One step = forward + backward + optimizer update (NAG with the paper's hyper-parameters,
schedule.optimizer_params, weight decay on every parameter in both APIs) on synthetic
data: a fixed pair of random batches, so no data pipeline is timed. Each measurement is a
FRESH child process (child.py): its ru_maxrss is the peak resident memory of that variant alone (one
process's peak would hide the others'), and no variant inherits another's allocator state
or warm caches. Warm-up steps (graph building, memory planning, MKLDNN primitive creation)
are excluded; the timed steps are bounded by mx.nd.waitall(), and Python runs at most one
step ahead of the engine, as in engine.Run.step, so queued imperative steps cannot pile up
memory. Module runs also report their executor's memory plan and mirrored node count.

Repeats are interleaved: repeat > case > variant, the variant order rotated every repeat,
so a slow period of a shared machine hits every variant alike; the report gives medians,
and the ratios are computed from those medians.
"""
import json
import os
import re
import resource
import statistics

import click

from gluon_resnet_v2.cli import output_file
from gluon_resnet_v2.environ import cores

from . import child

VARIANTS = ('hybrid', 'imperative', 'module', 'module_mirror', 'module_mirror_env')
# environment of each variant's subprocess (MXNet reads both variables when a Module binds)
VARIANT_ENV = {'hybrid': {}, 'imperative': {},
               'module': {'MXNET_SUBGRAPH_BACKEND': 'NONE'},
               'module_mirror': {'MXNET_SUBGRAPH_BACKEND': 'NONE'},
               'module_mirror_env': {'MXNET_SUBGRAPH_BACKEND': 'NONE',
                                     'MXNET_BACKWARD_DO_MIRROR': '1'}}
# the gluon_resnet_v2.mirror policy each Module variant binds with
VARIANT_MIRROR = {'module': None, 'module_mirror': 'segments', 'module_mirror_env': 'env'}
# variables reported back by each subprocess, as it saw them
REPORTED_ENV = ('MXNET_SUBGRAPH_BACKEND', 'MXNET_BACKWARD_DO_MIRROR', 'OMP_NUM_THREADS')
DEFAULT_CASES = ('cifar_resnet110_v2:32', 'cifar_resnet110_v2:128', 'cifar_resnet164_v2:32',
                 'cifar_resnet164_v2:128', 'cifar_resnet1001_v2:32')
# (key, numerator variant, denominator variant, metric): ratios of the medians
RATIOS = (('hybrid/module img/s', 'hybrid', 'module', 'img_per_sec'),
          ('imperative/module img/s', 'imperative', 'module', 'img_per_sec'),
          ('hybrid/imperative img/s', 'hybrid', 'imperative', 'img_per_sec'),
          ('mirror/module img/s', 'module_mirror', 'module', 'img_per_sec'),
          ('mirror env/module img/s', 'module_mirror_env', 'module', 'img_per_sec'),
          ('hybrid/module peak RSS', 'hybrid', 'module', 'peak_rss_mb'),
          ('imperative/module peak RSS', 'imperative', 'module', 'peak_rss_mb'),
          ('mirror/module peak RSS', 'module_mirror', 'module', 'peak_rss_mb'),
          ('mirror env/module peak RSS', 'module_mirror_env', 'module', 'peak_rss_mb'))
# derived: memory saving in % of the Module's peak, from a peak-RSS ratio above
SAVINGS = (('mirror memory saving %', 'mirror/module peak RSS'),
           ('mirror env memory saving %', 'mirror env/module peak RSS'))
INPUT_SHAPE = (3, 32, 32)
CLASSES = 10
SETUP = dict(data='synthetic: 2 fixed random batches, 3x32x32',
             step='forward + backward + NAG update (lr 0.1 after warm-up 0.01, momentum 0.9, '
                  'wd 1e-4)',
             order='repeat > case > variant, variant order rotated each repeat; one fresh '
                   'subprocess per measurement')


def parse_case(text):
    """'cifar_resnet110_v2:128' -> ('cifar_resnet110_v2', 128); the name must be registered."""
    from gluon_resnet_v2.models import list_models
    name, sep, batch = text.strip().partition(':')
    if name not in list_models():
        raise ValueError('unknown model %r in case %r: choose one of %s'
                         % (name, text, ', '.join(list_models())))
    if not sep or not batch.isdigit() or int(batch) < 1:
        raise ValueError('case %r must be NAME:BATCH with a positive batch, e.g. '
                         'cifar_resnet110_v2:128' % text)
    return name, int(batch)


# ---- the subprocess side: one variant, one case ----

def _optim(batch):
    from gluon_resnet_v2.config import OptimConfig
    return OptimConfig(batch_size=batch)     # NAG, lr 0.1, momentum 0.9, wd 1e-4


def gluon_step(name, batch, hybridize):
    """A Gluon training step through steps.train_step (the trainer's own code path)."""
    import mxnet as mx
    from mxnet import gluon

    from gluon_resnet_v2 import get_model, init_model
    from gluon_resnet_v2.schedule import optimizer_params
    from gluon_resnet_v2.steps import train_step
    net = init_model(get_model(name, classes=CLASSES))
    net(mx.nd.zeros((1,) + INPUT_SHAPE))                      # finish deferred shapes
    if hybridize:
        net.hybridize(static_alloc=True, static_shape=True)
    trainer = gluon.Trainer(net.collect_params(), 'nag', optimizer_params(_optim(batch)),
                            kvstore='device')
    loss_fn, ctxs = gluon.loss.SoftmaxCrossEntropyLoss(), [mx.cpu()]

    def step(x, y):
        return train_step(net, trainer, loss_fn, x, y, ctxs, batch)[0][0]
    return step, {}


def module_step(name, batch, mirror=None):
    """A Module training step: forward(is_train), backward, update, as the notes train,
    set up as legacy_symbol.fit sets up every Module (bind_module, init_module);
    `mirror`: None or a gluon_resnet_v2.mirror policy."""
    import mxnet as mx

    from legacy_symbol import paper
    from legacy_symbol.fit import bind_module, init_module
    symbol = paper.get_training_symbol(name, classes=CLASSES)
    mod, _ = bind_module(symbol, [mx.cpu()], batch, INPUT_SHAPE, mirror)
    init_module(mod, _optim(batch))                   # NAG, decays every parameter

    def step(x, y):
        mod.forward(mx.io.DataBatch([x], [y]), is_train=True)
        mod.backward()
        mod.update()
        return mod.get_outputs()[0].copy()   # a fresh array, written once this forward ends
    return step, executor_plan(mod._exec_group.execs[0])   # Module exposes no public executor


def executor_plan(executor):
    """What the bound graph holds: the memory its planner allocated (MB; MKLDNN's own
    buffers and the Python side are not in it, ru_maxrss has everything) and how many
    nodes it recomputes in the backward pass (mirrored; 0 without mirroring)."""
    text = executor.debug_str()
    planned = re.search(r'Total (\d+) MB allocated', text)
    return {'planned_mb': int(planned.group(1)) if planned else None,
            'mirrored_nodes': len(re.findall(r'^Op:[^,]+, Name=\S+_mirror$', text, re.M))}


def measure(spec):
    """Build the variant, run warm-up then timed steps; img/s, peak RSS, the env it saw."""
    import mxnet as mx
    import numpy as np
    name, batch, variant = spec['model'], spec['batch'], spec['variant']
    mx.random.seed(spec['seed'])
    step, plan = (module_step(name, batch, VARIANT_MIRROR[variant]) if variant.startswith('module')
                  else gluon_step(name, batch, hybridize=variant == 'hybrid'))
    rng = np.random.RandomState(spec['seed'])
    batches = [(mx.nd.array(rng.standard_normal((batch,) + INPUT_SHAPE)),
                mx.nd.array(rng.randint(0, CLASSES, batch))) for _ in range(2)]
    from gluon_resnet_v2.measure import timed     # the benchmark's clock, one step ahead at most
    seconds = timed(lambda i: step(*batches[i % 2]), spec['steps'], spec['warmup'])
    return {'img_per_sec': spec['steps'] * batch / seconds, 'seconds': seconds,
            'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,  # KiB
            'env': {k: os.environ.get(k) for k in REPORTED_ENV}, **plan}


# ---- the parent side: fresh subprocesses, interleaved repeats ----

def variant_env(variant, base=None):
    """The subprocess environment of `variant`: the caller's, minus a stray mirroring flag,
    plus the variant's variables; OMP_NUM_THREADS = the usable cores unless set (MXNet
    would take half of them)."""
    env = {k: v for k, v in (base if base is not None else os.environ).items()
           if k != 'MXNET_BACKWARD_DO_MIRROR'}
    env.setdefault('OMP_NUM_THREADS', str(cores()))
    env.update(VARIANT_ENV[variant])
    return env


def run_one(spec):
    """One measurement in a fresh interpreter; {'error': ...} if it failed (e.g. killed
    for memory), so one failing variant does not end a long benchmark."""
    try:
        return child.run('legacy_symbol.compare.speed:measure', {'spec': spec},
                         env=variant_env(spec['variant']))
    except child.ChildFailed as e:
        return {'error': 'exit code %d: %s' % (e.returncode, e.stderr.strip()[-2000:])}


def run_order(cases, repeats, variants=VARIANTS):
    """(repeat, case, variant) in run order: repeat > case > variant, rotated per repeat."""
    return [(r, case, variants[(i + r) % len(variants)])
            for r in range(repeats) for case in cases for i in range(len(variants))]


def run_benchmark(cases, repeats=3, steps=10, warmup=3, seed=0, echo=print, on_update=None):
    """The whole benchmark as a JSON-able report; `on_update(report)` after every
    measurement (to save partial results of a long run)."""
    runs = {(case, v): [] for case in cases for v in VARIANTS}
    order = run_order(cases, repeats)
    for k, (r, case, variant) in enumerate(order, 1):
        name, batch = parse_case(case)
        res = run_one(dict(model=name, batch=batch, variant=variant, steps=steps,
                           warmup=warmup, seed=seed))
        runs[case, variant].append(res)
        echo('[%d/%d] %s %s: %s' % (k, len(order), case, variant, 'FAILED ' + res['error'][-300:]
                                    if 'error' in res else '%.1f img/s, peak RSS %.0f MB'
                                    % (res['img_per_sec'], res['peak_rss_mb'])))
        report = build_report(cases, runs, dict(repeats=repeats, steps=steps, warmup=warmup,
                                                seed=seed))
        if on_update:
            on_update(report)
    return report


def _median(values):
    return statistics.median(values) if values else None


def build_report(cases, runs, config):
    """Per case and variant every run and the medians; ratios of those medians."""
    import mxnet as mx
    config = dict(config, cases=list(cases), variants=list(VARIANTS), **SETUP,
                  omp_num_threads=variant_env('hybrid')['OMP_NUM_THREADS'],
                  cores=cores(), mxnet=mx.__version__)
    out = []
    for case in cases:
        name, batch = parse_case(case)
        variants = {}
        for v in VARIANTS:
            done = [r for r in runs[case, v] if 'error' not in r]
            variants[v] = {'runs': runs[case, v],
                           **{k: _median([r[k] for r in done if r.get(k) is not None])
                              for k in ('img_per_sec', 'peak_rss_mb', 'planned_mb')}}
        ratios = {}
        for key, num, den, metric in RATIOS:
            a, b = variants[num][metric], variants[den][metric]
            ratios[key] = a / b if a is not None and b else None
        for key, ratio in SAVINGS:
            ratios[key] = None if ratios[ratio] is None else 100 * (1 - ratios[ratio])
        out.append({'case': case, 'model': name, 'batch': batch, 'variants': variants,
                    'ratios': ratios})
    return {'config': config, 'cases': out}


# ---- report ----

def _fmt(value, spec):
    return '-' if value is None else spec % value


def format_markdown(report):
    """Two tables (img/s, peak RSS), medians and their ratios, plus the set-up."""
    cfg, cases = report['config'], report['cases']
    speed = ['| case | batch | Gluon hybrid | Gluon imperative | Module | Module + mirror | '
             'Module + env mirror | hybrid / Module | imperative / Module | hybrid / imperative '
             '| mirror / Module | env mirror / Module |',
             '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    memory = ['| case | batch | Gluon hybrid | Gluon imperative | Module | Module + mirror | '
              'Module + env mirror | hybrid / Module | imperative / Module | mirror saving vs '
              'Module | env mirror saving vs Module | executor plan: Module / + mirror / + env '
              'mirror (MB) |',
              '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for c in cases:
        v, r = c['variants'], c['ratios']
        speed.append('| %s | %d | %s |' % (c['model'], c['batch'], ' | '.join(
            [_fmt(v[k]['img_per_sec'], '%.1f') for k in VARIANTS] +
            [_fmt(r[k], '%.2f') for k in ('hybrid/module img/s', 'imperative/module img/s',
                                          'hybrid/imperative img/s', 'mirror/module img/s',
                                          'mirror env/module img/s')])))
        memory.append('| %s | %d | %s |' % (c['model'], c['batch'], ' | '.join(
            [_fmt(v[k]['peak_rss_mb'], '%.0f') for k in VARIANTS] +
            [_fmt(r[k], '%.2f') for k in ('hybrid/module peak RSS', 'imperative/module peak RSS')]
            + [_fmt(r[k], '%.1f %%') for k, _ in SAVINGS] +
            [' / '.join(_fmt(v[k]['planned_mb'], '%d') for k in VARIANT_MIRROR)])))
    failed = sum('error' in run for c in cases for v in c['variants'].values() for run in v['runs'])
    notes = ['%d repeats x (%d warm-up + %d timed steps); MXNet %s, OMP_NUM_THREADS=%s on %d '
             'cores; %s; %s; %s.' % (cfg['repeats'], cfg['warmup'], cfg['steps'], cfg['mxnet'],
                                    cfg['omp_num_threads'], cfg['cores'], cfg['data'],
                                    cfg['step'], cfg['order'])]
    if failed:
        notes.append('%d measurement(s) failed (see the JSON); medians are over the rest.' % failed)
    return '\n'.join(['### Training speed (img/s, median)', ''] + speed +
                     ['', '### Peak resident memory (MB, ru_maxrss of the process, median)', '']
                     + memory + [''] + notes) + '\n'


def _write(path, text):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def _check_cases(ctx, param, values):
    cases = [c for text in values for c in text.split(',') if c.strip()] or list(DEFAULT_CASES)
    for case in cases:
        try:
            parse_case(case)
        except ValueError as e:
            raise click.BadParameter(str(e))
    return [c.strip() for c in cases]


@click.command('speed')
@click.option('--cases', multiple=True, callback=_check_cases, metavar='NAME:BATCH[,...]',
              help='registry name and batch size, comma-separated or repeated. Default: %s.'
                   % ', '.join(DEFAULT_CASES))
@click.option('--repeats', default=3, show_default=True, type=click.IntRange(1),
              help='measurements per case and variant (interleaved); medians are reported')
@click.option('--steps', default=10, show_default=True, type=click.IntRange(1),
              help='timed training steps per measurement')
@click.option('--warmup-steps', 'warmup', default=3, show_default=True, type=click.IntRange(0),
              help='untimed steps before the clock starts (graph building, memory planning)')
@click.option('--seed', default=0, show_default=True, help='seed of weights and synthetic data')
@click.option('--out', default=None, callback=output_file,
              help='write the JSON report here (rewritten after every measurement)')
@click.option('--markdown', default=None, callback=output_file,
              help='write the Markdown tables here')
def speed_cmd(cases, repeats, steps, warmup, seed, out, markdown):
    """Training img/s and peak memory: Gluon hybrid / imperative, Module, Module + mirroring.

    Synthetic data; one fresh subprocess per measurement; interleaved repeats, medians."""
    def save(report):
        if out:
            _write(out, json.dumps(report, indent=1, sort_keys=True))
    report = run_benchmark(cases, repeats, steps, warmup, seed, echo=click.echo, on_update=save)
    text = format_markdown(report)
    click.echo('\n' + text)
    if markdown:
        _write(markdown, text)

