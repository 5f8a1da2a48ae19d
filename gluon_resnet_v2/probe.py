"""Signal-propagation probe: the norm of the forward signal x_l at the input of every
residual unit, and of the gradient dE/dx_l, on a real batch (paper Sec. 3, Eqn. 4-8).

    python -m gluon_resnet_v2.probe --model cifar_resnet110_v2 --out probes/identity
    python -m gluon_resnet_v2.probe --model cifar_resnet110_v2 --shortcut scale --scale 0.5 \\
        --out probes/scale --compare probes/identity       # both drawn into one figure
    python -m gluon_resnet_v2.probe --run-dir runs/r110 --out probes/r110-trained

With identity shortcuts and no post-addition ops, x_L = x_l + sum F (Eqn. 4), so
dE/dx_l = dE/dx_L (1 + d/dx_l sum F) (Eqn. 5): the gradient reaches every unit through the
additive 1. With the shortcut scaled by lambda, that term is lambda^(L-l) dE/dx_L (Eqn.
7-8): the gradient of the first units has to come through the weight layers.

What that does at initialisation, measured (ResNet-110, 54 units, 32 test images of the
embedded CIFAR-10 sample, seed 0; ||dE/dx_1|| / ||dE/dx_54||): identity + full
pre-activation 221, identity + original unit 399: the gradient grows towards the input
polynomially, as the BN at the start of each branch makes d F/d x_l ~ 1/||x_l|| and ||x_l||
grows with l; constant scaling 0.5: 3.9e6 (full pre-act), 2.7e6 (original), about x1.33
per unit: ||x_l|| stays flat, every branch's Jacobian stays of order 1 and the product
compounds. The gradient explodes along the weight layers rather than vanishing, which is
the paper's point seen from the other side: without the additive 1, no unit passes the
gradient on unchanged.

Writes OUT/probe.json (`forward_norm` and `grad_norm`, one value per residual unit, first
unit first, with the model, variant, data and weights they come from) and OUT/probe.png
(both norms against the unit index, log scale; the probes of --compare drawn alongside).
"""
import json
import os

import click

from .cli import config_field, dataclass_options
from .config import ModelConfig
from .evaluate import which_option

# A norm is that of one image's tensor (or of the gradient of the batch's summed loss
# with respect to it), root-mean-square over the batch: independent of the batch size.


def split_network(net):
    """(blocks before the first residual unit, [(stage number, unit)] in order, blocks
    after the last unit) of a ResNet: `features` holds the stem, one Sequential of units
    per stage, then the classifier's pre-activation and the pool."""
    from .models import ResidualUnit
    head, units, tail = [], [], []
    for i in range(len(net.features)):
        block = net.features[i]
        stage = [block[j] for j in range(len(block))] if hasattr(block, '__len__') else []
        if stage and all(isinstance(u, ResidualUnit) for u in stage):
            number = units[-1][0] + 1 if units else 1
            units += [(number, u) for u in stage]
        else:
            (tail if units else head).append(block)
    return head, units, tail + [net.output]


def measure(net, x, y):
    """{stage, forward_norm, grad_norm, loss} of `net` on the batch (x, y) (NDArrays).

    Each unit's input is cut from the graph and marked as a variable, so one recorded
    forward gives each unit its own graph; the backward passes are then chained by hand,
    last unit first (out.backward(out_grad=dE/dx_{l+1})): the chain rule, with the
    gradient at every x_l in between. E is the softmax cross-entropy summed over the batch.
    The parameters' gradients are switched off (grad_req 'null'): a probed net is not trained."""
    from mxnet import autograd, gluon
    head, units, tail = split_network(net)
    net.collect_params().setattr('grad_req', 'null')    # only the signal's gradients
    inputs, outputs = [], []
    with autograd.record(train_mode=True):
        h = x
        for block in head:
            h = block(h)
        for _, unit in units:
            h = h.detach()
            h.attach_grad()
            inputs.append(h)
            h = unit(h)
            outputs.append(h)
        for block in tail:
            h = block(h)
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(h, y).sum()
    loss.backward()
    for i in range(len(units) - 2, -1, -1):
        outputs[i].backward(out_grad=inputs[i + 1].grad)
    batch = x.shape[0]
    # the host reads happen once, at the end: each asscalar is a sync point
    return dict(stage=[number for number, _ in units],
                forward_norm=[rms_norm(v, batch) for v in inputs],
                grad_norm=[rms_norm(v.grad, batch) for v in inputs],
                loss=float(loss.asscalar()) / batch)


def rms_norm(array, batch):
    return float((array.norm() / batch ** 0.5).asscalar())


def first_batch(data_cfg, batch_size):
    """(x, y, classes): the first `batch_size` test images, only normalised (the test-time
    transform), in the dataset's fixed order: the same batch for every probe."""
    from .data import build_data
    with build_data(data_cfg) as data:
        if batch_size > data.num_test:
            from .errors import UserError
            raise UserError('--batch-size %d exceeds the %d test images of %s: lower it'
                            % (batch_size, data.num_test, data_cfg.dataset))
        x, y = next(iter(data.eval_batches('test', batch_size)))
        return x, y, data.classes


def variant(mcfg):
    """The model as probe.json records it: name, shortcut, placement, projection and every
    shortcut option (those of other shortcuts have no effect)."""
    from .models import SHORTCUT_OPTIONS, VERSIONS, architecture
    version = architecture(mcfg.model)['version'] if mcfg.model else mcfg.version
    return dict(model=mcfg.model or 'resnet%d_%s' % (mcfg.depth, version),
                shortcut=mcfg.shortcut, placement=mcfg.placement or VERSIONS[version],
                projection=mcfg.projection, **{k: getattr(mcfg, k) for k in SHORTCUT_OPTIONS})


# What a label adds for a shortcut, in the paper's symbols; a shortcut not listed here
# is labelled by its name alone (probe.json holds its options anyway).
LABEL_PARAMS = {
    'scale': lambda v: 'λ=%g%s' % (v['scale'], ', λx+(1-λ)F' if v['scale_residual'] else ''),
    'gate_exclusive': lambda v: 'b_g=%g' % v['gate_bias'],
    'gate_shortcut': lambda v: 'b_g=%g' % v['gate_bias'],
    'dropout': lambda v: 'p=%g' % v['drop_rate'],
}


def label(record):
    v, weights = record['variant'], record['weights']
    param = LABEL_PARAMS.get(v['shortcut'])
    when = 'init' if weights['source'] == 'init' else 'iter %d' % weights['iteration']
    return '%s %s%s, %s (%s)' % (v['model'], v['shortcut'], ' ' + param(v) if param else '',
                                 v['placement'], when)


def draw(records, title=None):
    """A matplotlib Figure (no pyplot), one colour per probe record: the forward norm, and
    the gradient norm relative to the last unit's (Eqn. 5 vs 8: what reaches unit l of
    what reaches unit L), against the unit index, log scale; dotted lines start stages."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(12, 4.8))
    fwd_ax, grad_ax = fig.subplots(1, 2)
    for i, rec in enumerate(records):
        units = range(1, len(rec['grad_norm']) + 1)
        last = rec['grad_norm'][-1]
        fwd_ax.plot(units, rec['forward_norm'], color='C%d' % i, label=label(rec))
        grad_ax.plot(units, [g / last for g in rec['grad_norm']], color='C%d' % i,
                     label=label(rec))
    stages = records[0].get('stage') or []
    for ax in (fwd_ax, grad_ax):
        for i in range(1, len(stages)):
            if stages[i] != stages[i - 1]:
                ax.axvline(i + 1, color='grey', linestyle=':', linewidth=1)
        ax.set_yscale('log')
        ax.set_xlabel('residual unit l (norms at its input x_l)')
        ax.grid(alpha=0.3, which='major')
    fwd_ax.set_ylabel('forward signal ||x_l|| per image')
    grad_ax.set_ylabel('gradient ||dE/dx_l|| / ||dE/dx_L||')
    grad_ax.legend(fontsize=7, loc='best')
    fig.suptitle(title or 'signal propagation through the residual units (BN in training mode)')
    fig.tight_layout()
    return fig


def save_figure(fig, path):
    tmp = path + '.tmp.png'
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)
    return path


def read_probe(folder):
    from .errors import UserError
    path = os.path.join(folder, 'probe.json')
    try:
        with open(path) as f:
            record = json.load(f)
    except OSError as e:
        raise UserError('cannot read %s (%s): pass a folder a probe wrote with --out'
                        % (path, e.strerror)) from None
    except ValueError:
        raise UserError('%s is not valid JSON: probe again into that folder' % path) from None
    if not isinstance(record, dict) or not all(isinstance(record.get(k), list) for k in
                                               ('forward_norm', 'grad_norm')):
        raise UserError('%s holds no forward_norm/grad_norm lists: probe again into that '
                        'folder' % path)
    return record


def family(mcfg):
    """The network family of --model (--depth alone picks it from the dataset: 'cifar')."""
    from .errors import UserError
    from .models import architecture
    try:
        return architecture(mcfg.model)['family'] if mcfg.model else 'cifar'
    except ValueError as e:
        raise UserError('%s (--model)' % e) from None


def load_network(run_dir, which, mcfg, dataset, data_dir, batch_size, seed):
    """(network with its weights, x, y, config of the model, where the weights come from):
    a run's checkpoint, or He initialisation seeded by `seed`."""
    import mxnet as mx

    from . import checkpoint, init_model
    from .config import DataConfig
    from .evaluate import load_run, provenance
    from .factory import build_net
    overrides = dict(dataset=dataset, data_dir=data_dir, num_workers=0)
    if run_dir:
        cfg, params, state = load_run(run_dir, which, overrides, with_state=True)
        mcfg, data_cfg = cfg.model, cfg.data
        weights = dict(provenance(which, state), source=os.path.abspath(run_dir))
    else:
        default = 'imagenet' if family(mcfg) == 'imagenet' else 'cifar10-sample'
        data_cfg = DataConfig(**dict({k: v for k, v in overrides.items() if v is not None},
                                     dataset=dataset or default))
        weights = dict(source='init', init='He (MSRA)', seed=seed)
    x, y, classes = first_batch(data_cfg, batch_size)
    mx.random.seed(seed)                   # the initial weights, and dropout's masks
    net = build_net(mcfg, data_cfg.dataset, classes)
    if run_dir:
        net.initialize(ctx=mx.cpu())
        checkpoint.load_params_into(net, params, checkpoint.path(run_dir, which))
    else:
        init_model(net)
    return net, mx.nd.array(x), mx.nd.array(y), mcfg, dict(weights, dataset=data_cfg.dataset)


@click.command(context_settings={'max_content_width': 110})
@dataclass_options(ModelConfig, exclude=('classes',))
@click.option('--run-dir', default=None, help="probe a run's checkpoint (its model and "
              'dataset) instead of a freshly initialised network; takes no model option')
@which_option
@config_field('dataset', help='dataset of the batch [default: the run\'s; else cifar10-sample '
              '(embedded), imagenet for ImageNet models]')
@config_field('data_dir', help="dataset folder [default: the run's, or the dataset's default]")
@click.option('--batch-size', default=32, show_default=True, type=click.IntRange(2),
              help='test images in the batch (the first ones, in the fixed test order)')
@click.option('--seed', default=0, show_default=True, type=click.IntRange(0, 2**32 - 1),
              help='seed of the initial weights (and of dropout masks)')
@click.option('--out', required=True, help='folder for probe.json and probe.png (created)')
@click.option('--compare', multiple=True, metavar='DIR',
              help='a folder of an earlier probe to draw into this probe.png (repeatable)')
@click.option('--title', default=None, help='figure title')
def main(run_dir, which, dataset, data_dir, batch_size, seed, out, compare, title, **options):
    """Norms of x_l and dE/dx_l at the input of every residual unit (paper Eqn. 4-8), at
    initialisation (He init, --seed) or from a run's checkpoint (--run-dir), on the first
    --batch-size test images (test-time transform: only normalised).

    BatchNorm runs in training mode (batch statistics, as in every training step: the
    paper's analysis is of training; a dropout shortcut drops). E is the softmax
    cross-entropy summed over the batch; a norm is one image's, root-mean-square over the
    batch.

    Writes OUT/probe.json (forward_norm, grad_norm: one value per unit, first unit first)
    and OUT/probe.png (log scale; --compare DIR draws earlier probes into it)."""
    from .cli import check_output_dir
    from .errors import UserError
    given = sorted('--' + k.replace('_', '-') for k, v in options.items() if v is not None)
    if run_dir and given:
        raise UserError('--run-dir probes the run\'s own model: drop %s (or drop --run-dir '
                        'to probe a new network)' % ', '.join(given))
    check_output_dir(out, '--out')
    for name in ('probe.json', 'probe.png'):
        if os.path.exists(os.path.join(out, name)):
            raise UserError('%s already holds %s: choose another --out (nothing was '
                            'overwritten)' % (out, name))
    others = [read_probe(d) for d in compare]          # refused before the long part
    mcfg = ModelConfig(**{k: v for k, v in options.items() if v is not None})
    net, x, y, mcfg, weights = load_network(run_dir, which, mcfg, dataset, data_dir,
                                            batch_size, seed)
    result = dict(variant=variant(mcfg), weights=weights, batch_size=batch_size,
                  bn_mode='train', **measure(net, x, y))
    result['grad_ratio_first_last'] = result['grad_norm'][0] / result['grad_norm'][-1]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, 'probe.json'), 'w') as f:
        json.dump(result, f, indent=1)
    save_figure(draw([result] + others, title), os.path.join(out, 'probe.png'))
    click.echo('%s: %d units, gradient norm first/last unit %.3g, forward norm first/last '
               '%.3g; wrote %s' % (label(result), len(result['grad_norm']),
                                   result['grad_ratio_first_last'],
                                   result['forward_norm'][0] / result['forward_norm'][-1],
                                   os.path.join(out, 'probe.json')))


def run():
    """The console command (pyproject's [project.scripts]): as `python -m` runs it."""
    from .cli import main_wrapper
    main_wrapper(main)()


if __name__ == '__main__':
    run()
