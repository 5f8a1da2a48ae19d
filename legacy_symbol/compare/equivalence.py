"""`python -m legacy_symbol.compare equivalence`: is the mx.sym / Module network the Gluon
network? Same weights, same batch, compare all.

For each case (a registry name with overrides) the Gluon net (hybridized, autograd) and
the `legacy_symbol.paper` symbol in an `mx.mod.Module` (bound for training,
forward(is_train=True), backward) get identical weights and one identical batch, and are
compared on
  * the logits in inference mode (running statistics) and in train mode (batch statistics);
  * the gradient of every parameter, twice: backpropagating the same head gradient
    dL/dlogits = softmax - onehot (the network alone), and as each framework trains:
    Module's SoftmaxOutput against Gluon's summed SoftmaxCrossEntropyLoss (same maths,
    different ops);
  * the BN running statistics after the train-mode forward and after the backward
    (MXNet 1.9 updates them in BatchNorm's *backward*; the forward leaves them alone);
  * the deployment path, a Module bound without gradients (`for_training=False`), in
    inference mode and in train mode.
BN gamma/beta and running statistics are randomised first: at their initial 1/0/0/1 a
swapped gamma/beta or mean/var would go unnoticed.

Error measure, per tensor: max|a - b| / max|b|, b the Gluon value. Normalising by the
tensor's magnitude, not element by element, keeps elements that are tiny by cancellation
(a BN beta gradient summed over a batch) from blowing up the ratio; the report gives the
worst tensor of each quantity.

Precision. The headline rows are float32, as one trains, and float64; both must be within
TOLERANCE (measured: 0, bit-identical, in both: the two graphs run the same kernels in the
same order). Earlier work compared float64 only, because MKLDNN's float32 BatchNorm
backward is ill-conditioned (the report's informational row: Gluon's own float32
gradients are up to ~1e-1 off its float64 ones); with one head gradient that does not
matter, both sides make the same rounding. The SoftmaxOutput training step is different
ops for the head: its float32 rounding (~1e-7 in dL/dlogits) grows to ~1e-5..3e-5 in a
few weight gradients through cancelling sums, hence FLOAT32_GRAD_TOLERANCE for that row
only; its float64 twin is held to TOLERANCE (measured ~1e-14).

MKLDNN. The in-process Modules bind with MXNET_SUBGRAPH_BACKEND=NONE (read by every bind,
GraphExecutor's constructor, so setting it after import works). The same Module runs
again in a child process with the variable unset, i.e. the default MKLDNN subgraph
backend, and its float32 results are compared with Gluon's and reported as a finding.
"""
import json
import sys
import tempfile

import click
import numpy as np

from gluon_resnet_v2 import environ
from gluon_resnet_v2.cli import output_file

TOLERANCE = 1e-5
FLOAT32_GRAD_TOLERANCE = 1e-4
# v1 / v2 x basic / bottleneck at one depth: 20 = 6*3+2 (basic) = 9*2+2 (bottleneck)
DEFAULT_CASES = ('cifar_resnet20_v1', 'cifar_resnet20_v2',
                 'cifar_resnet20_v1:block=bottleneck', 'cifar_resnet20_v2:block=bottleneck')
# the quantities compared, in report order; grads/stats are dicts of tensors
QUANTITIES = ('inference', 'train', 'grads', 'stats_forward', 'stats', 'bind_inference',
              'bind_train')


def max_rel_error(a, b):
    """max|a - b| / max|b| over one tensor (0 when both are all zero; inf when a NaN/inf
    of one side is not matched by the other)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return 0.0 if np.array_equal(a, b, equal_nan=True) else float('inf')
    diff, scale = np.abs(a - b).max(initial=0.0), np.abs(b).max(initial=0.0)
    if diff == 0:
        return 0.0
    return float(diff / scale) if scale > 0 else float('inf')


def compare(result, reference):
    """{quantity: (max rel error, worst tensor name)} over the quantities both have."""
    out = {}
    for q in QUANTITIES:
        if q not in result or q not in reference:
            continue
        a, b = result[q], reference[q]
        if isinstance(b, dict):
            errs = {n: max_rel_error(a[n], b[n]) for n in b}
            worst = max(errs, key=errs.get)
            out[q] = (errs[worst], worst if errs[worst] > 0 else '')
        else:
            out[q] = (max_rel_error(a, b), '')
    return out


def parse_case(text):
    """'cifar_resnet20_v2:block=bottleneck,classes=100' -> (name, {overrides})."""
    name, _, rest = text.partition(':')
    overrides = {}
    for item in filter(None, rest.split(',')):
        key, eq, value = item.partition('=')
        if not eq:
            raise ValueError('override %r is not key=value' % item)
        overrides[key.strip()] = _parse_value(value.strip())
    return name.strip(), overrides


def _parse_value(text):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {'true': True, 'false': False}.get(text.lower(), text)


def subgraph_backend(value):
    """A scope whose binds see MXNET_SUBGRAPH_BACKEND=`value` (None: unset)."""
    return environ.scoped({'MXNET_SUBGRAPH_BACKEND': value})


# ---- one case (the Gluon and Module runs live in sides.py) ----

# row label -> what it compares; 'MKLDNN' rows come from the child process
PATHS = {
    'f64': 'Module vs Gluon, float64, same head gradient',
    'f32': 'Module vs Gluon, float32, same head gradient',
    'f64 softmax': 'Module SoftmaxOutput step vs Gluon SoftmaxCrossEntropyLoss, float64',
    'f32 softmax': 'the same in float32',
    'f32 MKLDNN': 'f32 with the default MKLDNN subgraph backend',
    'f32 MKLDNN softmax': 'f32 softmax with the default MKLDNN subgraph backend',
    'gluon f32-vs-f64': "not a check: Gluon float32 vs Gluon float64, float32's own error",
}


def tolerance(label, quantity):
    """The bar of a row's quantity; None for the informational float32-vs-float64 row."""
    if label.startswith('gluon'):
        return None
    if label.endswith('softmax') and label.startswith('f32') and quantity == 'grads':
        return FLOAT32_GRAD_TOLERANCE
    return TOLERANCE


def row_passes(label, row):
    return all(err <= (tolerance(label, q) or float('inf')) for q, (err, _) in row.items())


def run_case(case, batch=8, seed=0):
    """Gluon and Module on one case in float64 and float32: (report, MKLDNN job)."""
    name, overrides = parse_case(case)
    from . import sides              # MXNet: imported when a comparison runs, not for --help
    setup = sides.make_case(name, overrides, batch, seed)
    train = overrides.get('shortcut') != 'dropout'     # dropout masks differ between runs
    gluon, module = {}, {}
    for dtype in ('float64', 'float32'):
        gluon[dtype] = sides.gluon_run(setup, dtype, train)
        with subgraph_backend('NONE'):
            module[dtype] = sides.module_run(setup, dtype, gluon[dtype].get('head_grad'))
    rows = {}
    for dtype, label in (('float64', 'f64'), ('float32', 'f32')):
        rows[label] = compare(module[dtype], gluon[dtype])
        if train:
            rows[label + ' softmax'] = compare(module[dtype]['softmax'], gluon[dtype]['softmax'])
    rows['gluon f32-vs-f64'] = compare(gluon['float32'], gluon['float64'])
    report = {'case': case, 'rows': rows, 'train_compared': train,
              'stats_change': sides.stats_change(setup, gluon['float64'], module['float64'])}
    report['passed'] = all(row_passes(k, r) for k, r in rows.items())
    return report, (setup, gluon['float32'])


def run_equivalence(cases=DEFAULT_CASES, batch=8, seed=0, mkldnn=True, workdir=None):
    """The whole comparison as a JSON-able report: report['passed'] is the verdict on the
    MXNET_SUBGRAPH_BACKEND=NONE rows; the MKLDNN rows are a finding, report['mkldnn']."""
    reports, jobs = zip(*(run_case(c, batch, seed) for c in cases))
    report = {'config': {'batch': batch, 'seed': seed, 'tolerance': TOLERANCE,
                         'float32_grad_tolerance': FLOAT32_GRAD_TOLERANCE,
                         'error': 'max|module - gluon| / max|gluon| per tensor', 'paths': PATHS},
              'cases': list(reports), 'passed': all(r['passed'] for r in reports)}
    if mkldnn:
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            from . import sides
            results, log = sides.run_default_backend(
                [(s, g.get('head_grad')) for s, g in jobs], tmp)
        for rep, (_, gluon32), res in zip(reports, jobs, results):
            rep['rows']['f32 MKLDNN'] = compare(res, gluon32)
            if 'softmax' in res:
                rep['rows']['f32 MKLDNN softmax'] = compare(res['softmax'], gluon32['softmax'])
        report['mkldnn'] = mkldnn_finding(reports, log)
    return report


def mkldnn_finding(reports, log):
    """Does the default (MKLDNN subgraph) backend disagree with Gluon, where, by how much?"""
    found = []
    for rep in reports:
        for label in ('f32 MKLDNN', 'f32 MKLDNN softmax'):
            for q, (err, tensor) in rep['rows'].get(label, {}).items():
                if err > tolerance(label, q):
                    found.append({'case': rep['case'], 'path': label, 'quantity': q,
                                  'max_rel_error': err, 'tensor': tensor})
    return {'backend_active': 'Subgraph backend MKLDNN is activated' in log,
            'disagrees': bool(found), 'disagreements': found}


# ---- report ----

COLUMNS = (('inference', 'out:inf'), ('train', 'out:train'), ('grads', 'grads'),
           ('stats_forward', 'stats:fwd'), ('stats', 'stats:bwd'),
           ('bind_inference', 'nograd:inf'), ('bind_train', 'nograd:train'))


def format_report(report):
    """A readable table: one row per case x path, the max rel error of each quantity."""
    head = '%-36s %-19s' % ('case', 'path') + ''.join('%13s' % c for _, c in COLUMNS)
    lines = [head + '  worst gradient', '-' * (len(head) + 30)]
    for rep in report['cases']:
        for label, row in rep['rows'].items():
            cells = ''.join('%13s' % ('%.2e' % row[q][0] if q in row else '-') for q, _ in COLUMNS)
            flag = '' if row_passes(label, row) else '  <-- DISAGREES'
            lines.append('%-36s %-19s%s  %s%s' % (rep['case'], label, cells,
                                                 row.get('grads', ('', ''))[1], flag))
    return '\n'.join(lines + [''] + _legend(report))


def _legend(report):
    cfg = report['config']
    lines = ['%-19s %s' % (k, v) for k, v in cfg['paths'].items()]
    lines += ['error = %s; bar %.0e (float32 SoftmaxOutput gradients %.0e). "nograd" = Module '
              'bound with for_training=False; stats = BN running mean/var.'
              % (cfg['error'], cfg['tolerance'], cfg['float32_grad_tolerance'])]
    change = report['cases'][0].get('stats_change')
    if change:
        lines.append('BN running statistics, max rel change from the start (%s): after the '
                     'train-mode forward %.2g / %.2g, after backward %.2g / %.2g (Gluon / Module)'
                     % (report['cases'][0]['case'], change['gluon']['after_forward'],
                        change['module']['after_forward'], change['gluon']['after_backward'],
                        change['module']['after_backward']))
    lines.append('Module vs Gluon, MXNET_SUBGRAPH_BACKEND=NONE: %s'
                 % ('EQUIVALENT' if report['passed'] else 'NOT EQUIVALENT'))
    found = report.get('mkldnn')
    if found:
        lines.append('Default MKLDNN subgraph backend (subprocess, variable unset, backend %s): %s'
                     % ('active' if found['backend_active'] else 'NOT active',
                        'DISAGREES' if found['disagrees'] else 'agrees'))
        lines += ['  %-36s %-19s %-13s max rel error %.3g' % (d['case'], d['path'], d['quantity'],
                                                              d['max_rel_error'])
                  for d in found['disagreements']]
        if found['disagrees'] and {d['quantity'] for d in found['disagreements']} == {'bind_train'}:
            lines.append('  only the train-mode forward of a Module bound without gradients: its '
                         'inference-only rewrites fold BN into the convs with running statistics')
    return lines


def write_json(report, path):
    with open(path, 'w') as f:
        json.dump(report, f, indent=1, sort_keys=True)



# ---- the command ----

def _check_cases(ctx, param, values):
    """Parse each --model now, so a bad name fails with the list of valid ones."""
    import gluon_resnet_v2 as grv
    for text in values:
        name, overrides = parse_case(text)
        try:
            grv.get_model(name, **overrides)
        except (ValueError, TypeError) as e:
            raise click.BadParameter(str(e))
    return values


@click.command('equivalence')
@click.option('--model', 'models', multiple=True, callback=_check_cases, metavar='NAME[:K=V,...]',
              help='registry name with get_model overrides, e.g. cifar_resnet110_v2 or '
                   'cifar_resnet20_v1:block=bottleneck,shortcut=gate_exclusive; repeatable. '
                   'Default: %s.' % ', '.join(DEFAULT_CASES))
@click.option('--batch-size', 'batch', default=8, show_default=True, help='images in the one compared batch')
@click.option('--seed', default=0, show_default=True, help='seed of weights, BN statistics, batch')
@click.option('--mkldnn/--no-mkldnn', default=True, show_default=True,
              help='also run the Module with the default MKLDNN subgraph backend (subprocess)')
@click.option('--out', default=None, callback=output_file,
              help='write the report as JSON here')
def equivalence_cmd(models, batch, seed, mkldnn, out):
    """Same weights, same batch: outputs, every gradient and BN statistics, Gluon vs Module.

    Exit status 1 if Module (MXNET_SUBGRAPH_BACKEND=NONE) and Gluon disagree; an MKLDNN
    disagreement is reported as a finding."""
    report = run_equivalence(models or DEFAULT_CASES, batch, seed, mkldnn)
    click.echo(format_report(report))
    if out:
        write_json(report, out)
        click.echo('report written to %s' % out)
    sys.exit(0 if report['passed'] else 1)
