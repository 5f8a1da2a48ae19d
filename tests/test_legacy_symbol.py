"""legacy_symbol: the mx.sym networks against the Gluon models (project issue 4).

Every test binds with MXNET_SUBGRAPH_BACKEND=NONE (an autouse fixture sets it; MXNet reads
it at each bind), except where a test asks for the default MKLDNN backend on purpose.
"""
import itertools
import json

import mxnet as mx
import numpy as np
import pytest
from click.testing import CliRunner

import gluon_resnet_v2 as grv
from gluon_resnet_v2.models import PLACEMENTS, SHORTCUTS
from legacy_symbol import notes, paper, weights
from legacy_symbol.compare import equivalence, sides
from legacy_symbol.compare.cli import cli

NONE_ROWS = ('f64', 'f32', 'f64 softmax', 'f32 softmax')
ALL_QUANTITIES = set(equivalence.QUANTITIES)


@pytest.fixture(autouse=True)
def exact_backend(monkeypatch):
    monkeypatch.setenv('MXNET_SUBGRAPH_BACKEND', 'NONE')


@pytest.fixture(scope='module')
def report():
    """The CLI's comparison of the default cases, the MKLDNN subprocess included."""
    return equivalence.run_equivalence(equivalence.DEFAULT_CASES, batch=8, seed=0, mkldnn=True)


def gluon_names(net):
    return set(net.collect_params().keys())


# ---- equivalence: outputs, every gradient, BN statistics, train and inference mode ----

def test_default_cases_are_v1_v2_times_basic_bottleneck():
    built = set()
    for case in equivalence.DEFAULT_CASES:
        name, overrides = equivalence.parse_case(case)
        built.add((name[-2:], grv.get_model(name, **overrides).spec.block))
    assert built == set(itertools.product(('v1', 'v2'), ('basic', 'bottleneck')))


def test_module_equals_gluon_in_train_and_inference_mode(report):
    assert report['passed']
    for rep in report['cases']:
        for label in NONE_ROWS:
            row = rep['rows'][label]
            expected = ALL_QUANTITIES if label in ('f64', 'f32') else {'train', 'grads',
                                                                       'stats_forward', 'stats'}
            assert set(row) == expected, (rep['case'], label)
            for q, (err, tensor) in row.items():
                assert err <= equivalence.tolerance(label, q), (rep['case'], label, q, err, tensor)


def test_bn_statistics_move_in_backward_not_forward(report):
    # MXNet 1.9's BatchNorm writes its running statistics in the backward pass
    for rep in report['cases']:
        for side in ('gluon', 'module'):
            change = rep['stats_change'][side]
            assert change['after_forward'] == 0 and change['after_backward'] > 1e-3, rep['case']


def test_every_parameter_gradient_is_compared():
    setup = sides.make_case('cifar_resnet20_v1', {'shortcut': 'gate_exclusive'}, 2, 0)
    g = sides.gluon_run(setup, 'float64')
    m = sides.module_run(setup, 'float64', g['head_grad'])
    net = grv.get_model('cifar_resnet20_v1', shortcut='gate_exclusive')
    trainable = gluon_names(net) - {n for n in gluon_names(net) if 'running' in n}
    assert set(g['grads']) == set(m['grads']) == set(m['softmax']['grads']) == trainable
    assert all(np.abs(v).max() > 0 for v in g['grads'].values())


@pytest.mark.parametrize('what', ['gamma_beta', 'mean_var'])
def test_comparison_catches_swapped_weights(what):
    """The check can fail: swap one BN's gamma/beta (or mean/var) on the Module side."""
    setup = sides.make_case('cifar_resnet20_v2', {}, 4, 0)
    a, b = {'gamma_beta': ('stage2_unit2_bn2_gamma', 'stage2_unit2_bn2_beta'),
            'mean_var': ('stage2_unit2_bn2_running_mean', 'stage2_unit2_bn2_running_var')}[what]
    arrays = dict(setup.args, **setup.aux)
    arrays[a], arrays[b] = arrays[b], arrays[a]
    broken = setup._replace(args={k: arrays[k] for k in setup.args},
                            aux={k: arrays[k] for k in setup.aux})
    g = sides.gluon_run(setup, 'float64')
    errors = equivalence.compare(sides.module_run(broken, 'float64', g['head_grad']), g)
    assert errors['inference'][0] > 1e-3
    if what == 'gamma_beta':                     # batch statistics ignore mean/var
        assert errors['train'][0] > 1e-3 and errors['grads'][0] > 1e-3


def _matrix():
    rows = [dict(placement=p, block=b) for p in sorted(PLACEMENTS) for b in ('basic', 'bottleneck')]
    rows += [dict(placement=p, shortcut=s) for s in sorted(SHORTCUTS) if s != 'identity'
             for p in ('original', 'full_preact')]
    return rows + [dict(projection='A', placement='original'), dict(projection='A')]


@pytest.mark.parametrize('overrides', _matrix(),
                         ids=lambda o: ','.join('%s=%s' % kv for kv in o.items()))
def test_every_placement_and_shortcut_matches_gluon(overrides):
    """Table 2 placements x unit types, Table 1 shortcuts x v1/v2, option A: float64."""
    setup = sides.make_case('cifar_resnet20_v2', overrides, 2, 1)
    train = overrides.get('shortcut') != 'dropout'      # masks differ: inference only
    g = sides.gluon_run(setup, 'float64', train)
    errors = equivalence.compare(sides.module_run(setup, 'float64', g.get('head_grad')), g)
    assert len(errors) == (7 if train else 2)
    assert max(e for e, _ in errors.values()) <= equivalence.TOLERANCE, errors


def test_one_layer_units_match_gluon():
    setup = sides.make_case('cifar_resnet110_1layer_v2', {}, 2, 0)
    g = sides.gluon_run(setup, 'float64')
    errors = equivalence.compare(sides.module_run(setup, 'float64', g['head_grad']), g)
    assert len(errors) == 7 and max(e for e, _ in errors.values()) <= equivalence.TOLERANCE


# ---- the default MKLDNN subgraph backend ----

def test_tool_reports_the_mkldnn_disagreement(report):
    """Measured here: training binds are untouched; a Module bound without gradients folds
    BN into the convs with running statistics, so its train-mode forward is wrong."""
    found = report['mkldnn']
    assert found['backend_active'] and found['disagrees']
    assert {d['quantity'] for d in found['disagreements']} == {'bind_train'}
    for rep in report['cases']:
        mkl, none = rep['rows']['f32 MKLDNN'], rep['rows']['f32']
        assert mkl['bind_train'][0] > 0.05, rep['case']          # 0.19 .. 10.8 measured
        assert none['bind_train'][0] <= equivalence.TOLERANCE
        for q in ('inference', 'train', 'grads', 'stats', 'bind_inference'):
            assert mkl[q][0] <= equivalence.TOLERANCE, (rep['case'], q)
    assert 'DISAGREES' in equivalence.format_report(report)


@pytest.mark.parametrize('name', ['cifar_resnet20_v1', 'cifar_resnet20_v2'])
def test_subgraph_backend_is_read_at_bind_time(name):
    """Setting the variable after `import mxnet` still works: each bind reads it. And why
    the no-gradient train-mode forward is wrong: in v1 every BN follows a conv and is
    folded, so the "train-mode" answer is the inference one; in v2 the pre-activation BNs
    (before their convs) stay and use batch statistics, so it is neither."""
    setup = sides.make_case(name, {}, 4, 0)
    g = sides.gluon_run(setup, 'float32')
    x = mx.nd.array(setup.x)
    train_err, inference_err = {}, {}
    for value in (None, 'NONE', None):               # unset, NONE, unset again
        with equivalence.subgraph_backend(value):
            out = sides.nograd_run(setup, x, 'float32', train=True)['bind_train']
        train_err.setdefault(value, []).append(equivalence.max_rel_error(out, g['train']))
        inference_err[value] = equivalence.max_rel_error(out, g['inference'])
    assert min(train_err[None]) > 0.05 and train_err['NONE'][0] <= equivalence.TOLERANCE
    if name.endswith('v1'):
        assert inference_err[None] <= equivalence.TOLERANCE
    else:
        assert inference_err[None] > 0.05


# ---- names and weights ----

NAMED = [('cifar_resnet20_v1', {}), ('cifar_resnet164_v2', {}), ('cifar_resnet110_1layer_v1', {}),
         ('cifar_resnet56_v1', {'shortcut': 'gate_exclusive'}),
         ('cifar_resnet20_v2', {'projection': 'A'}),
         ('cifar_resnet20_v2', {'shortcut': 'conv1x1', 'placement': 'bn_after_add'}),
         ('cifar_resnet32_v2', {'placement': 'relu_preact', 'shortcut': 'gate_shortcut',
                                'classes': 100}),
         ('resnet18_v1', {}), ('resnet50_v2', {}), ('resnet200_v2', {})]


@pytest.mark.parametrize('name,overrides', NAMED)
def test_symbol_names_equal_gluon_parameter_names(name, overrides):
    net = grv.get_model(name, **overrides)
    sym = paper.get_symbol(name, **overrides)
    args, aux = weights.symbol_shapes(sym)
    assert set(args) | set(aux) == gluon_names(net)
    assert set(aux) == {n for n in gluon_names(net) if '_running_' in n}
    weights.check_shapes({n: p.shape for n, p in net.collect_params().items()},
                         dict(args, **aux), name)          # Gluon's known dims agree


def test_symbol_by_depth_matches_build_resnet():
    sym = paper.get_symbol(56, 'cifar', 'v1', placement='relu_before_add')
    args, aux = weights.symbol_shapes(sym)
    assert set(args) | set(aux) == gluon_names(grv.build_resnet(56, 'cifar', 'v1',
                                                               placement='relu_before_add'))


def test_bad_model_arguments_raise_value_error():
    with pytest.raises(ValueError, match='cifar_resnet110_v2'):
        paper.get_symbol('cifar_resnet111_v2')
    with pytest.raises(ValueError, match='valid options'):
        paper.get_symbol('cifar_resnet20_v2', depth_multiplier=2)
    with pytest.raises(ValueError, match='6n\\+2'):
        paper.get_symbol(21)


def _initialised(name, **overrides):
    net = grv.init_model(grv.get_model(name, **overrides))
    net(mx.nd.zeros((1, 3, 32, 32)))
    sides.randomise_batchnorm(net, np.random.RandomState(3))
    return net


def test_weight_round_trip_is_bit_exact():
    """Gluon -> symbol dicts -> Module -> symbol dicts -> a fresh Gluon net."""
    net = _initialised('cifar_resnet20_v2', shortcut='gate_shortcut')   # conv biases too
    sym = paper.get_symbol('cifar_resnet20_v2', shortcut='gate_shortcut')
    args, aux = weights.gluon_to_symbol(net, sym)
    mod = mx.mod.Module(sym, label_names=None)
    mod.bind([('data', (1, 3, 32, 32))], for_training=False)
    mod.set_params(args, aux)
    args2, aux2 = mod.get_params()
    fresh = grv.get_model('cifar_resnet20_v2', shortcut='gate_shortcut')  # uninitialised
    weights.symbol_to_gluon(args2, aux2, fresh)
    for name, p in net.collect_params().items():
        got = fresh.collect_params()[name].data()
        assert got.dtype == p.data().dtype, name
        assert np.array_equal(got.asnumpy(), p.data().asnumpy()), name
    args['fc_weight'][:] = 0                          # the dicts are copies, not views
    assert np.abs(net.collect_params()['fc_weight'].data().asnumpy()).max() > 0


def test_mismatched_weights_raise_value_error():
    net = _initialised('cifar_resnet20_v2')
    sym = paper.get_symbol('cifar_resnet20_v2')
    args, aux = weights.gluon_to_symbol(net, sym)
    target = grv.get_model('cifar_resnet20_v2')
    missing = {k: v for k, v in args.items() if k != 'stage2_unit1_sc_conv_weight'}
    with pytest.raises(ValueError, match='missing stage2_unit1_sc_conv_weight'):
        weights.symbol_to_gluon(missing, aux, target)
    with pytest.raises(ValueError, match='extra conv_extra_weight'):
        weights.symbol_to_gluon(dict(args, conv_extra_weight=args['fc_bias']), aux, target)
    with pytest.raises(ValueError, match='fc_weight'):
        weights.symbol_to_gluon(dict(args, fc_weight=mx.nd.zeros((100, 64))), aux, target)
    with pytest.raises(ValueError, match='fc_weight'):    # a 100-class head for a 10-class net
        weights.gluon_to_symbol(net, paper.get_symbol('cifar_resnet20_v2', classes=100))
    with pytest.raises(ValueError, match='bn_final'):     # v2 weights, v1 symbol
        weights.gluon_to_symbol(net, paper.get_symbol('cifar_resnet20_v1'))


def test_module_init_params_initialises_like_gluon():
    """The Variables' init attributes: Module.init_params knows Gluon's names and b_g."""
    sym = paper.get_training_symbol('cifar_resnet20_v1', shortcut='gate_exclusive')
    mod = mx.mod.Module(sym)
    mod.bind([('data', (2, 3, 32, 32))], [('softmax_label', (2,))])
    mod.init_params(mx.init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2))
    args, aux = mod.get_params()
    assert np.all(args['stage2_unit1_gate_bn_beta'].asnumpy() == -6)      # Table 1's b_g
    assert np.all(aux['stem_bn_running_var'].asnumpy() == 1)
    assert np.all(aux['stem_bn_running_mean'].asnumpy() == 0)
    assert np.all(args['stem_bn_gamma'].asnumpy() == 1)


# ---- the notes' network ----

def notes_parameter_count(units, widths, classes=10):
    """Counted by hand from the notes' code: biased convs, BN gamma+beta, the 2x2 pool."""
    count, c_in = 3 * 16 * 9 + 16, 16
    for c in widths:
        for u in range(units):
            i = c_in if u == 0 else c
            count += 2 * i + (9 * i * c + c) + 2 * c + (9 * c * c + c)
            count += (i * c + c) if u == 0 else 0      # the 1x1 projection
        c_in = c
    return count + 2 * c_in + c_in * 2 * 2 * classes + classes


def test_notes_network_shapes_and_parameter_count():
    sym = notes.notes_network()
    internals = sym.get_internals()
    shape = lambda out: internals[out].infer_shape(data=(5, 3, 32, 32))[1][0]
    assert shape('r641_conv1_output') == (5, 64, 16, 16)    # the first stage is strided
    assert shape('relu1_output') == (5, 256, 4, 4)
    assert shape('pool1_output') == (5,) + notes.NOTES_POOL_SHAPE == (5, 256, 2, 2)
    assert shape('flat1_output') == (5, notes.NOTES_FC_INPUTS) == (5, 1024)
    assert sym.infer_shape(data=(5, 3, 32, 32))[1] == [(5, 10)]
    args, aux = weights.symbol_shapes(sym)
    assert args['fc1_weight'] == (10, 1024)
    total = sum(int(np.prod(s)) for s in args.values())
    assert total == notes_parameter_count(12, (64, 128, 256)) == notes.NOTES_PARAM_COUNT
    assert sum(int(np.prod(s)) for s in aux.values()) == notes.NOTES_AUX_COUNT
    assert args['batch1_gamma'] == (notes.NOTES_FIXED_GAMMA,)


def test_notes_network_quirks_are_in_the_graph():
    nodes = json.loads(notes.notes_network().tojson())['nodes']
    by_name = {n['name']: n for n in nodes}
    projection_input = nodes[by_name['r641_conv3']['inputs'][0][0]]['name']
    assert projection_input == 'convolution0'                 # the raw stem conv
    assert by_name['batch1'].get('attrs', {}).get('fix_gamma', 'True') == 'True'
    assert by_name['r641_bn1']['attrs']['fix_gamma'] == 'False'
    pool = by_name['pool1']['attrs']
    assert pool['kernel'] == '(3, 3)' and 'global_pool' not in pool
    assert notes.notes_network().list_arguments()[1] == 'convolution0_weight'   # stable name


# ---- the CLI ----

def test_cli_equivalence_writes_table_and_json(tmp_path):
    out = tmp_path / 'report.json'
    result = CliRunner().invoke(cli, [
        'equivalence', '--model', 'cifar_resnet20_v2:projection=A', '--no-mkldnn', '--batch-size', '2',
        '--out', str(out)])
    assert result.exit_code == 0, result.output
    assert 'EQUIVALENT' in result.output and 'nograd:train' in result.output
    saved = json.loads(out.read_text())
    assert saved['passed'] and saved['cases'][0]['case'] == 'cifar_resnet20_v2:projection=A'


def test_cli_rejects_unknown_model():
    result = CliRunner().invoke(cli, ['equivalence', '--model', 'resnet19_v2'])
    assert result.exit_code == 2 and 'resnet18_v2' in result.output
