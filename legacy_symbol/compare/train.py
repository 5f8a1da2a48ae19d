"""`python -m legacy_symbol.compare train`: one run trained by the Gluon engine and by a Module.

Same network (the Gluon model and its `legacy_symbol.paper` symbol), same starting weights
(the Gluon run's seeded He initialisation, copied with `legacy_symbol.weights.
gluon_to_symbol`), same batches in the same order (both read gluon_resnet_v2.data with the
run's seed), same optimizer and schedule (gluon_resnet_v2.schedule inside NAG/SGD, weight
decay on every parameter), N iterations each. Written to --out:

    gluon/, module/    each run's config.yaml, log.jsonl, curves.png (and final weights)
    curves.png         both runs overlaid (training loss dashed, test error solid)
    report.json        the parameter difference at the end, per tensor and overall

Both runs execute in one child process (child.py) whose environment fixes
MXNET_MKLDNN_ENABLED (--mkldnn/--no-mkldnn): MXNet reads it once per process, before the
first oneDNN kernel. The two runs differ in one op only: the loss layer (Gluon's
SoftmaxCrossEntropyLoss, Module's SoftmaxOutput; ~1e-7 apart in float32 dL/dlogits).
--same-head gives the Gluon run SoftmaxOutput's gradient too: with --no-mkldnn the two runs
are then bit-identical. Difference measure, per tensor: max|module - gluon| / max|gluon|
(equivalence.max_rel_error); overall also the relative L2 distance of all weights, and that
distance over how far Gluon's weights moved from the start (the share of the training
update the two disagree on).
"""
import json
import os
import shutil
import time
from dataclasses import replace

import click
import numpy as np

from gluon_resnet_v2.cli import build_config, check_output_dir, config_options, load_yaml
from gluon_resnet_v2.errors import UserError

from . import child

# where the comparison's defaults differ from the training recipe's: a quick run
DEFAULTS = dict(model='cifar_resnet20_v2', dataset='cifar10-sample', max_iters=100,
                num_workers=0, log_interval=5, eval_interval=50, checkpoint_interval=0)
# without --warmup-iters: a tenth of the run at the warm-up rate (the paper's 400 of 64k
# would outlast a short comparison, which the trainer refuses)
WARMUP_SHARE = 10
SIDES = ('gluon', 'module')


HELP = """Train the same run with the Gluon engine and with mx.mod.Module; compare the weights.

Takes the training options of `python -m gluon_resnet_v2.train`; defaults here, under a
--config file and the flags: %s, --warmup-iters a tenth of --max-iters. --run-dir, --resume
and --restart do not apply (see --out).""" % ', '.join(
    '--%s %s' % (k.replace('_', '-'), v) for k, v in DEFAULTS.items())


@click.command('train', help=HELP, context_settings={'max_content_width': 120})
@click.option('--out', default='runs/compare-train', show_default=True,
              help='new or empty folder for both runs, the overlaid curves and report.json')
@click.option('--mkldnn/--no-mkldnn', default=False, show_default=True,
              help='run both with oneDNN (MKLDNN) kernels; off, MXNet\'s native kernels, '
                   'whose rounding does not depend on buffer alignment')
@click.option('--same-head/--own-heads', default=False, show_default=True,
              help="Gluon trains with Module's SoftmaxOutput gradient (same loss values) "
                   'instead of its SoftmaxCrossEntropyLoss: isolates the loss layer')
@config_options
def train_cmd(out, mkldnn, same_head, config_file, **values):
    if values.get('run_dir') or values.get('resume') is not None or values.get('restart'):
        raise UserError('compare train writes its two runs into --out: drop '
                        '--run-dir/--resume/--restart')
    cfg = build_config(config_file, with_defaults(config_file, values))
    check_before_training(cfg, out)
    seconds = run_child(dict(config=cfg.to_dict(), same_head=same_head), out, mkldnn)
    report = compare_runs(out)
    report.update(config=dict(cfg.to_dict(), mkldnn=mkldnn, same_head=same_head),
                  seconds=round(seconds, 1))
    with open(os.path.join(out, 'report.json'), 'w') as f:
        json.dump(report, f, indent=1, sort_keys=True)
    from gluon_resnet_v2.plotting import plot_runs
    plot_runs({s: os.path.join(out, s) for s in SIDES}, os.path.join(out, 'curves.png'),
              title='Gluon vs Module: %s, %d iterations' % (cfg.model.model or 'depth %d'
                                                           % cfg.model.depth, report['iteration']))
    click.echo(format_report(report, out))
    return report


def check_before_training(cfg, out):
    """The cheap checks, in this process, before anything is written."""
    from gluon_resnet_v2.devices import contexts
    from gluon_resnet_v2.factory import check_model
    check_output_dir(out, '--out')
    if os.path.isdir(out) and os.listdir(out):
        raise UserError('--out %s is not empty: choose a new folder (nothing was overwritten)'
                        % out)
    check_model(cfg.model, cfg.data.dataset)
    contexts(cfg.run)
    # options one side cannot honour would make the two runs differ by design
    if cfg.run.memory_saving:
        raise UserError('compare train runs the plain Gluon backend against the Module: drop '
                        '--memory-saving (its results equal the plain run\'s: '
                        'tests/test_memory_saving.py)')
    if cfg.run.sync_bn:
        raise UserError('compare train\'s Module side has plain BatchNorm: drop --sync-bn')


def with_defaults(config_file, values):
    """The flags, plus DEFAULTS for the fields neither the flags nor the config file set."""
    sections = load_yaml(config_file).values() if config_file else ()
    in_file = {k for sec in sections if isinstance(sec, dict) for k in sec}
    given = {k for k, v in values.items() if v is not None} | in_file
    if 'depth' in given:                 # --depth N picks the network: no default --model
        given.add('model')
    if 'epochs' in given:                # --epochs N is the length: no default --max-iters
        given.add('max_iters')
    merged = dict(values, **{k: v for k, v in DEFAULTS.items() if k not in given})
    if 'warmup_iters' not in given and merged.get('max_iters'):
        merged['warmup_iters'] = merged['max_iters'] // WARMUP_SHARE
    return merged


def run_child(job_spec, out, mkldnn):
    """Both trainings in a child process with MXNET_MKLDNN_ENABLED fixed; returns seconds.
    If the child refuses the input (a UserError), --out is left as it was found: empty or
    absent."""
    created = not os.path.isdir(out)
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ, MXNET_MKLDNN_ENABLED='1' if mkldnn else '0')
    began = time.time()
    try:
        # absolute: the child runs in the repository root, not in this process's directory
        child.run('legacy_symbol.compare.train:train_both',
                  dict(job_spec, out=os.path.abspath(out)), env)
    except UserError:
        for name in os.listdir(out):
            path = os.path.join(out, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        if created:
            os.rmdir(out)
        raise
    return time.time() - began


def train_both(config, same_head, out):
    """The child's side: the Gluon run from its seeded initialisation, then the Module from
    the same weights. Saves the starting weights as initial.npz."""
    from gluon_resnet_v2.config import Config
    from gluon_resnet_v2.engine import GluonBackend, Loop, Run
    from legacy_symbol import weights
    from legacy_symbol.fit import build_symbol, fit_module

    cfg = Config.from_dict(config)
    side = {s: replace(cfg, run=replace(cfg.run, run_dir=os.path.join(out, s), resume=False))
            for s in SIDES}
    run = Run(side['gluon'])
    with run.closed_on_error():
        # seeds, initialises (He), hybridizes
        backend = GluonBackend(run, loss_fn=softmax_output_head if same_head else None)
        symbol = build_symbol(cfg, 'paper', run.data.classes)
        arg, aux = weights.gluon_to_symbol(backend.net, symbol,
                                           data_shape=(1, 3) + run.input_size())
    np.savez(os.path.join(out, 'initial.npz'),
             **{k: v.asnumpy() for k, v in list(arg.items()) + list(aux.items())})
    Loop(run, backend, progress=False).train()
    fit_module(side['module'], 'paper', arg_params=arg, aux_params=aux, progress=False)


def softmax_output_head(logits, label):
    """A Gluon loss whose value is -log p(label) and whose gradient is Module's:
    SoftmaxOutput's backward ignores the head gradient and yields softmax - onehot; the
    second term is exactly 0 in value and routes the backward through it."""
    import mxnet as mx
    from legacy_symbol.fit import cross_entropy
    prob = mx.nd.SoftmaxOutput(logits, label)
    total = prob.sum(axis=1)
    return mx.nd.BlockGrad(cross_entropy(prob, label)) + (total - mx.nd.BlockGrad(total))


# ---- the comparison

def final_params(out):
    """({name: array} per side, iterations): Gluon's last checkpoint, the Module's weights."""
    import mxnet as mx

    from gluon_resnet_v2 import checkpoint
    state = checkpoint.load(checkpoint.path(os.path.join(out, 'gluon'), 'latest'))
    it = state['iteration']
    loaded = mx.nd.load(os.path.join(out, 'module', 'module-%04d.params' % it))
    module = {k.split(':', 1)[1]: v.asnumpy() for k, v in loaded.items()}
    return {'gluon': state['params'], 'module': module}, it


def compare_runs(out):
    """The report: per-tensor and overall differences of the final weights and the logs."""
    from gluon_resnet_v2.runlog import read_log

    from .equivalence import max_rel_error
    params, it = final_params(out)
    init = dict(np.load(os.path.join(out, 'initial.npz')))
    g, m = params['gluon'], params['module']
    per_tensor = {n: max_rel_error(m[n], g[n]) for n in sorted(g)}
    stats = [n for n in g if n.endswith(('_running_mean', '_running_var'))]
    learned = [n for n in g if n not in stats]

    def l2(a, b=None):     # L2 norm over all learned tensors of a - b (or of a)
        return float(np.sqrt(sum(np.sum((a[n].astype(np.float64) - (0 if b is None else b[n]))
                                        ** 2) for n in learned)))
    logs = {s: read_log(os.path.join(out, s)) for s in SIDES}
    return dict(
        iteration=it, per_tensor=per_tensor,
        max_rel_diff_weights=max(per_tensor[n] for n in learned),
        max_rel_diff_running_stats=max((per_tensor[n] for n in stats), default=0.0),
        worst_tensor=max(per_tensor, key=per_tensor.get),
        bit_identical_tensors=sum(v == 0 for v in per_tensor.values()),
        rel_l2_diff_weights=l2(m, g) / l2(g),
        diff_over_update=l2(m, g) / max(l2(g, init), 1e-30),
        rel_l2_update=l2(g, init) / l2(g),
        logs={s: {k: [r[k] for r in logs[s] if r[k] is not None]
                  for k in ('train_loss', 'test_err')} for s in SIDES},
        max_train_loss_diff=max(abs(a - b) for a, b in zip(*(
            [r['train_loss'] for r in logs[s] if r['train_loss'] is not None] for s in SIDES))))


def format_report(r, out):
    worst = sorted(r['per_tensor'].items(), key=lambda kv: -kv[1])[:5]
    final = {s: r['logs'][s]['test_err'][-1] if r['logs'][s]['test_err'] else float('nan')
             for s in SIDES}
    cfg = r['config']
    lines = [
        'Gluon vs Module after %d iterations (%s, MKLDNN %s, %s)'
        % (r['iteration'], cfg['model']['model'] or 'depth %d' % cfg['model']['depth'],
           'on' if cfg['mkldnn'] else 'off',
           'same head: SoftmaxOutput' if cfg['same_head']
           else 'own heads: SoftmaxCrossEntropyLoss vs SoftmaxOutput'),
        '  max rel diff per tensor, max|module - gluon| / max|gluon|: weights %.3g, BN running '
        'statistics %.3g; %d of %d tensors bit-identical'
        % (r['max_rel_diff_weights'], r['max_rel_diff_running_stats'],
           r['bit_identical_tensors'], len(r['per_tensor'])),
        '  all weights: relative L2 distance %.3g = %.3g of the distance Gluon moved from the '
        'start (%.3g relative)' % (r['rel_l2_diff_weights'], r['diff_over_update'],
                                   r['rel_l2_update']),
        '  training loss at the log points: max |gluon - module| %.3g; final test error '
        'gluon %.2f %%, module %.2f %%' % (r['max_train_loss_diff'], 100 * final['gluon'],
                                           100 * final['module']),
        '  worst tensors: ' + ', '.join('%s %.3g' % kv for kv in worst),
        'written in %.0f s: %s/{gluon,module}/, curves.png, report.json' % (r['seconds'], out)]
    return '\n'.join(lines)

