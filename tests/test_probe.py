"""The signal-propagation probe (python -m gluon_resnet_v2.probe, issue 12): norms of x_l
and dE/dx_l at every residual unit (paper Eqn. 4-8), its JSON, its figure's data, a run's
checkpoint, and one-line errors for bad input."""
import json
import math

import pytest

from gluon_resnet_v2 import checkpoint, cli, probe
from gluon_resnet_v2.train import main as train_main

from support import PNG, run_cli

BATCH = ['--batch-size', '16']


def invoke(command, args):
    """Run a command as `python -m` does (cli.main_wrapper), outside any test's capsys (for
    module-scoped fixtures); its exit code."""
    try:
        cli.main_wrapper(command)(list(map(str, args)))
    except SystemExit as e:
        return e.code
    return 0


@pytest.fixture(scope='module')
def resnet110(tmp_path_factory):
    """ResNet-110 (full pre-activation) at initialisation with identity and with scaling
    0.5 shortcuts, the second with --compare of the first: ({name: (record, PNG bytes)},
    the records the second one drew)."""
    tmp = tmp_path_factory.mktemp('probe110')
    drawn, draw = [], probe.draw

    def recording_draw(records, title=None):
        drawn.append(records)
        return draw(records, title)
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(probe, 'draw', recording_draw)
        for name, extra in (('identity', []),
                            ('scale', ['--shortcut', 'scale', '--scale', '0.5', '--compare',
                                       tmp / 'identity'])):
            assert invoke(probe.main, ['--model', 'cifar_resnet110_v2', '--out', tmp / name] +
                          BATCH + extra) == 0
            out[name] = (json.loads((tmp / name / 'probe.json').read_text()),
                         (tmp / name / 'probe.png').read_bytes())
    return out, drawn[-1]


def ratio(record):
    return record['grad_norm'][0] / record['grad_norm'][-1]


def test_scaling_0_5_moves_the_first_units_gradient_by_orders_of_magnitude(resnet110):
    """Measured (ResNet-110 v2, 16 test images of cifar10-sample, seeds 0/1/2):
    ||dE/dx_1|| / ||dE/dx_54|| = 262 / 265 / 276 with identity shortcuts, 5.3e6 / 3.9e6 /
    4.0e6 with lambda = 0.5 (original units: 470 / 434 / 474 vs 3.4e6 / 3.8e6 / 1.4e6).
    At initialisation with BN in training mode the scaled network's gradient *explodes*
    towards the input (no additive 1: every unit multiplies it, about x1.3); the issue
    expected it to vanish. Orders of magnitude apart either way: asserted >= 1e3 apart."""
    (identity, _), (scale, _) = resnet110[0]['identity'], resnet110[0]['scale']
    assert ratio(identity) < 1e3
    assert ratio(scale) > 1e5
    assert ratio(scale) / ratio(identity) > 1e3


def test_identity_units_pass_the_gradient_on_nearly_unchanged_and_scaled_ones_do_not(resnet110):
    """Over the last 9 units (one stage, no projection) the gradient grows per unit by the
    geometric mean 1.067 with identity shortcuts and 1.311 with lambda = 0.5 (measured, seed 0):
    polynomial against exponential growth along the depth."""
    def per_unit(record):
        g = record['grad_norm']
        return (g[-9] / g[-1]) ** (1 / 8)
    (identity, _), (scale, _) = resnet110[0]['identity'], resnet110[0]['scale']
    assert 1.0 < per_unit(identity) < 1.12
    assert per_unit(scale) > 1.2


def test_json_has_one_value_per_unit_first_unit_first(resnet110):
    record, png = resnet110[0]['scale']
    assert png.startswith(PNG)
    assert len(record['forward_norm']) == len(record['grad_norm']) == 54
    assert record['stage'] == [1] * 18 + [2] * 18 + [3] * 18
    assert all(math.isfinite(v) and v > 0 for v in record['forward_norm'] + record['grad_norm'])
    assert record['variant'] == dict(model='cifar_resnet110_v2', shortcut='scale',
                                     placement='full_preact', projection='B', scale=0.5,
                                     scale_residual=False, gate_bias=-6.0, drop_rate=0.5)
    assert record['weights'] == dict(source='init', init='He (MSRA)', seed=0,
                                     dataset='cifar10-sample')
    assert (record['batch_size'], record['bn_mode']) == (16, 'train')
    assert record['grad_ratio_first_last'] == pytest.approx(ratio(record))
    assert 1.0 < record['loss'] < 5.0            # about ln 10 at initialisation
    assert resnet110[0]['identity'][0]['variant']['shortcut'] == 'identity'


def test_compare_draws_the_earlier_probe_into_the_figure(resnet110):
    records = resnet110[1]
    assert [r['variant']['shortcut'] for r in records] == ['scale', 'identity']


def test_figure_holds_both_norms_of_every_probe_on_log_scales(resnet110):
    identity, scale = resnet110[0]['identity'][0], resnet110[0]['scale'][0]
    fig = probe.draw([identity, scale])
    fwd_ax, grad_ax = fig.axes
    for ax in (fwd_ax, grad_ax):
        assert ax.get_yscale() == 'log'
        labels = ax.get_legend_handles_labels()[1]
        assert len(labels) == 2 and 'identity' in labels[0] and 'scale λ=0.5' in labels[1]
        assert all('(init)' in text for text in labels)
        # dotted lines where stages 2 and 3 start
        assert sorted(line.get_xdata()[0] for line in ax.lines
                      if line.get_linestyle() == ':') == [19, 37]
    curves = [line for line in fwd_ax.lines if not line.get_label().startswith('_')]
    assert list(curves[1].get_xdata()) == list(range(1, 55))
    assert list(curves[1].get_ydata()) == scale['forward_norm']
    curves = [line for line in grad_ax.lines if not line.get_label().startswith('_')]
    # the gradient relative to the last unit's: the left end is the first/last ratio
    assert curves[0].get_ydata()[0] == pytest.approx(ratio(identity))
    assert curves[1].get_ydata()[-1] == pytest.approx(1.0)


@pytest.mark.parametrize('shortcut', ['identity', 'scale'])
def test_chained_gradients_equal_those_of_one_graph(shortcut):
    """The backward passes chained unit by unit give dE/dx_l as one backward pass through
    the whole network from x_l on does."""
    import mxnet as mx
    import numpy as np
    from mxnet import autograd, gluon

    import gluon_resnet_v2 as grv
    mx.random.seed(0)
    net = grv.init_model(grv.get_model('cifar_resnet20_v2', shortcut=shortcut))
    x = mx.nd.random.normal(shape=(8, 3, 32, 32))
    y = mx.nd.array(np.arange(8) % 10)
    chained = probe.measure(net, x, y)
    head, units, tail = probe.split_network(net)
    for k in (0, 4, 8):
        with autograd.record(train_mode=True):
            h = x
            for block in head + [u for _, u in units[:k]]:
                h = block(h)
            leaf = h.detach()
            leaf.attach_grad()
            h = leaf
            for block in [u for _, u in units[k:]] + tail:
                h = block(h)
            loss = gluon.loss.SoftmaxCrossEntropyLoss()(h, y).sum()
        loss.backward()
        assert chained['grad_norm'][k] == pytest.approx(
            float(leaf.grad.norm().asscalar()) / 8 ** 0.5, rel=1e-4)
        assert chained['forward_norm'][k] == pytest.approx(
            float(leaf.norm().asscalar()) / 8 ** 0.5, rel=1e-5)


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    """A 2-iteration run of cifar_resnet20_v2 on the embedded sample."""
    path = tmp_path_factory.mktemp('probe-run') / 'run'
    assert invoke(train_main, ['--model', 'cifar_resnet20_v2', '--dataset', 'cifar10-sample',
                               '--subset', '64', '--batch-size', '32', '--max-iters', '2',
                               '--warmup-iters', '0', '--eval-interval', '0',
                               '--num-workers', '0', '--run-dir', path]) == 0
    return path


def test_run_dir_probes_the_checkpoints_weights(run_dir, tmp_path, capsys):
    """The checkpoint's stem BN gamma and beta times 3 make x_1 = ReLU(BN(.)) three times
    larger: the probe reads the weights of the checkpoint, not fresh ones."""
    code, out, err = run_cli(['--run-dir', run_dir, '--out', tmp_path / 'a'] + BATCH, capsys,
                             probe.main)
    assert code == 0, err
    record = json.loads((tmp_path / 'a' / 'probe.json').read_text())
    assert len(record['grad_norm']) == len(record['forward_norm']) == 9
    assert record['variant']['model'] == 'cifar_resnet20_v2'
    assert record['weights']['iteration'] == 2
    assert record['weights']['checkpoint'] == checkpoint.LATEST
    assert 'cifar_resnet20_v2 identity, full_preact (iter 2)' in out
    state = checkpoint.load(checkpoint.path(run_dir))
    for name in ('stem_bn_gamma', 'stem_bn_beta'):
        state['params'][name] = state['params'][name] * 3
    changed = tmp_path / 'changed'
    changed.mkdir()
    checkpoint.save(checkpoint.path(changed), state)
    code, _, err = run_cli(['--run-dir', changed, '--out', tmp_path / 'b'] + BATCH, capsys,
                           probe.main)
    assert code == 0, err
    tripled = json.loads((tmp_path / 'b' / 'probe.json').read_text())
    assert tripled['forward_norm'][0] == pytest.approx(3 * record['forward_norm'][0], rel=1e-4)


# (arguments, text of the one-line error); {tmp}: the test's folder, --out {tmp}/out added
# unless the case names its own
BAD = {
    'unknown model': (['--model', 'cifar_resnet111_v2'], "unknown model 'cifar_resnet111_v2'"),
    'unknown shortcut': (['--shortcut', 'bogus'], "'bogus' is not one of"),
    'negative scale': (['--shortcut', 'scale', '--scale', '-1'], '--scale -1.0 is out of range'),
    'run dir without checkpoint': (['--run-dir', '{tmp}/empty'], 'no checkpoint at'),
    'run dir with model option': (['--run-dir', '{tmp}/empty', '--shortcut', 'scale'],
                                  'drop --shortcut'),
    'out holds a probe': (['--out', '{tmp}/taken'], 'already holds probe.json'),
    'out is a file': (['--out', '{tmp}/file'], 'is a file'),
    'compare without a probe': (['--compare', '{tmp}/empty'], 'cannot read'),
    'compare of a damaged probe': (['--compare', '{tmp}/damaged'], 'not valid JSON'),
    'batch larger than the test set': (['--batch-size', '1001'], 'exceeds the 1000 test images'),
    'batch of one': (['--batch-size', '1'], '1 is not in the range'),
}


@pytest.mark.parametrize('case', sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path, capsys):
    args, message = BAD[case]
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'taken').mkdir()
    (tmp_path / 'taken' / 'probe.json').write_text('{}')
    (tmp_path / 'damaged').mkdir()
    (tmp_path / 'damaged' / 'probe.json').write_text('{"forward_norm": [1')
    (tmp_path / 'file').write_text('not a folder')
    before = sorted(p for p in tmp_path.rglob('*'))
    args = [a.format(tmp=tmp_path) for a in args]
    if '--out' not in args:
        args += ['--out', str(tmp_path / 'out')]
    code, _, err = run_cli(['--model', 'cifar_resnet20_v2'] * ('--run-dir' not in args and
                                                               '--model' not in args) + args,
                           capsys, probe.main)
    assert code == 2
    assert err.count('\n') == 1 and err.startswith('error: ') and message in err, err
    assert sorted(p for p in tmp_path.rglob('*')) == before


def test_labels_name_the_shortcuts_parameter_and_the_weights():
    variant = dict(model='cifar_resnet110_v1', placement='original', projection='B',
                   scale=0.5, scale_residual=True, gate_bias=-6.0, drop_rate=0.5)
    init = dict(source='init')
    assert probe.label(dict(variant=dict(variant, shortcut='scale'), weights=init)) == \
        'cifar_resnet110_v1 scale λ=0.5, λx+(1-λ)F, original (init)'
    assert probe.label(dict(variant=dict(variant, shortcut='gate_exclusive'),
                            weights=dict(source='/runs/a', iteration=640))) == \
        'cifar_resnet110_v1 gate_exclusive b_g=-6, original (iter 640)'
    assert probe.label(dict(variant=dict(variant, shortcut='conv1x1'), weights=init)) == \
        'cifar_resnet110_v1 conv1x1, original (init)'
