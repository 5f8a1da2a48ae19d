"""Every shortcut x placement x unit type, and the structure rules reimplementations get wrong."""
import itertools

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

import gluon_resnet_v2 as grv
from gluon_resnet_v2.models import PLACEMENTS, SHORTCUT_OPTIONS, SHORTCUTS, ResidualUnit

# the smallest depth of each unit type: one unit per stage
SMALLEST = {'basic': 8, 'bottleneck': 11, '1layer': 5}
MATRIX = list(itertools.product(sorted(SHORTCUTS), sorted(PLACEMENTS), sorted(SMALLEST)))


def small_net(shortcut, placement, block):
    net = grv.build_resnet(SMALLEST[block], block=block, shortcut=shortcut, placement=placement)
    grv.init_model(net)
    net(mx.nd.zeros((1, 3, 32, 32)))                # deferred initialisation happens here
    return net


def twin(net, tmp_path, **build):
    """A second, separately built network holding `net`'s exact weights."""
    net.save_parameters(str(tmp_path / 'twin.params'))
    other = small_net(**build)
    other.load_parameters(str(tmp_path / 'twin.params'))
    return other


def grads(net, x, y):
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    with autograd.record():
        loss = loss_fn(net(x), y).mean()
    loss.backward()
    return loss.asscalar(), {k: p.grad().asnumpy() for k, p in net.collect_params().items()
                             if p.grad_req != 'null'}


@pytest.mark.parametrize('shortcut,placement,block', MATRIX)
def test_variant_builds_hybridizes_trains_and_exports(shortcut, placement, block, tmp_path):
    x = mx.nd.random.normal(shape=(4, 3, 32, 32), ctx=mx.cpu())
    y = mx.nd.array([0, 1, 2, 3])
    eager = small_net(shortcut, placement, block)
    hybrid = twin(eager, tmp_path, shortcut=shortcut, placement=placement, block=block)
    hybrid.hybridize(static_alloc=True, static_shape=True)

    out_eager, out_hybrid = eager(x), hybrid(x)          # inference mode: running statistics
    assert out_eager.shape == (4, 10)
    np.testing.assert_allclose(out_hybrid.asnumpy(), out_eager.asnumpy(), rtol=1e-5, atol=1e-6)

    # Gradients are compared in float64. In float32, MKLDNN's BatchNorm backward loses
    # precision when a channel's std is small next to its mean (measured: 7 % at
    # std/mean = 0.01), and eager and hybrid graphs accumulate in different orders, so on
    # rare inputs their float32 gradients differ by percents while neither is wrong.
    # float64 runs the native kernels, where the two graphs must agree to rounding.
    eager.cast('float64')
    hybrid.cast('float64')
    x64, y64 = x.astype('float64'), y.astype('float64')
    if shortcut != 'dropout':                            # dropout masks differ between calls
        loss_e, grads_e = grads(eager, x64, y64)
        loss_h, grads_h = grads(hybrid, x64, y64)
        assert np.isfinite(loss_e) and abs(loss_e - loss_h) < 1e-10
        for name, g in grads_e.items():
            assert np.isfinite(g).all(), name
            np.testing.assert_allclose(grads_h[name], g, rtol=1e-9, atol=1e-12, err_msg=name)
    else:
        loss_h, grads_h = grads(hybrid, x64, y64)
        assert np.isfinite(loss_h) and all(np.isfinite(g).all() for g in grads_h.values())
    assert any(np.abs(g).sum() > 0 for g in grads_h.values())
    hybrid.cast('float32')
    hybrid(x)                                            # casting reset the cached graph

    hybrid.export(str(tmp_path / 'net'))
    imported = gluon.SymbolBlock.imports(str(tmp_path / 'net-symbol.json'), ['data'],
                                         str(tmp_path / 'net-0000.params'))
    np.testing.assert_allclose(imported(x).asnumpy(), hybrid(x).asnumpy(), rtol=1e-5, atol=1e-6)


# ---- structure: the rules of ../shared/PAPER.md "Architecture rules" ----

def built_v2(depth=20):
    net = grv.build_resnet(depth)
    grv.init_model(net)
    net(mx.nd.zeros((1, 3, 32, 32)))
    return net


def randomise_bn(block, rng):
    """Give every BN non-trivial statistics so BN-ReLU is far from the identity."""
    for name, p in block.collect_params().items():
        shape = p.shape
        if name.endswith(('gamma', 'running_var')):
            p.set_data(mx.nd.array(rng.uniform(0.5, 2.0, shape)))
        elif name.endswith(('beta', 'running_mean')):
            p.set_data(mx.nd.array(rng.normal(0, 1, shape)))


def zero_last_conv(unit):
    convs = [b for b in unit.body if isinstance(b, gluon.nn.Conv2D)]
    convs[-1].weight.set_data(mx.nd.zeros(convs[-1].weight.shape))


def test_projection_reads_the_pre_activated_tensor():
    net = built_v2()
    unit = net.features[4][0]                        # stage 2, unit 1: 16 -> 32, stride 2
    randomise_bn(unit, np.random.RandomState(0))
    zero_last_conv(unit)                             # F(x) = 0: the output is h(x) alone
    x = mx.nd.random.normal(shape=(2, 16, 32, 32))
    bn = unit.preact[0]
    preact = mx.nd.relu(mx.nd.BatchNorm(x, bn.gamma.data(), bn.beta.data(), bn.running_mean.data(),
                                        bn.running_var.data(), eps=1e-5, use_global_stats=True))
    conv = unit.shortcut.conv.weight.data()
    def project(t):
        return mx.nd.Convolution(t, conv, kernel=(1, 1), stride=(2, 2), num_filter=32, no_bias=True)
    out = unit(x).asnumpy()
    np.testing.assert_allclose(out, project(preact).asnumpy(), rtol=1e-5, atol=1e-5)
    assert not np.allclose(out, project(x).asnumpy(), atol=1e-2)


def test_first_unit_has_no_own_preactivation_and_stem_has_bn_relu():
    net = built_v2()
    stem_types = [type(b).__name__ for b in list(net.features)[:3]]
    assert stem_types == ['Conv2D', 'BatchNorm', 'Activation']
    first = net.features[3][0]
    assert type(first.body[0]).__name__ == 'Conv2D' and len(first.preact) == 0
    assert type(net.features[3][1].body[0]).__name__ == 'BatchNorm'   # later units: their own


@pytest.mark.parametrize('name,tail', [
    ('cifar_resnet20_v2', ['BatchNorm', 'Activation', 'GlobalAvgPool']),
    ('cifar_resnet164_v2', ['BatchNorm', 'Activation', 'GlobalAvgPool']),
    ('cifar_resnet20_v1', ['HybridSequential', 'GlobalAvgPool']),   # already ReLU'd by f
])
def test_extra_bn_relu_after_last_unit(name, tail):
    net = grv.get_model(name)
    assert [type(b).__name__ for b in net.features][-len(tail):] == tail


def test_identity_full_preact_unit_is_identity_when_residual_is_zero():
    net = built_v2(depth=32)                         # 5 units a stage
    stage = net.features[3]
    randomise_bn(stage, np.random.RandomState(1))
    x = mx.nd.random.normal(shape=(2, 16, 32, 32))
    for unit in list(stage)[1:]:
        zero_last_conv(unit)
        assert unit.shortcut is None
        np.testing.assert_array_equal(unit(x).asnumpy(), x.asnumpy())   # bit-exact clean path


def test_original_unit_is_not_identity_when_residual_is_zero():
    """The counter-check: with f = ReLU after the addition, negative inputs are cut."""
    net = grv.build_resnet(32, version='v1')
    grv.init_model(net)
    net(mx.nd.zeros((1, 3, 32, 32)))
    unit = net.features[3][1]
    zero_last_conv(unit)
    x = mx.nd.random.normal(shape=(2, 16, 32, 32))
    np.testing.assert_array_equal(unit(x).asnumpy(), np.maximum(x.asnumpy(), 0))


# ---- the shortcut variants of Table 1 do what the paper says ----

def combine(name, s, f, g=None, **opts):
    """The shortcut `name`'s combine function of the table, run imperatively (F = mx.nd)."""
    options = dict({k: o.default for k, o in SHORTCUT_OPTIONS.items()}, **opts)
    return SHORTCUTS[name].combine(mx.nd, s, f, g, options)


@pytest.mark.parametrize('scale,scale_residual', [(0.5, False), (0.5, True), (0.8, True)])
def test_scale_shortcut(scale, scale_residual):
    s, f = mx.nd.random.normal(shape=(2, 4, 3, 3)), mx.nd.random.normal(shape=(2, 4, 3, 3))
    out = combine('scale', s, f, scale=scale, scale_residual=scale_residual).asnumpy()
    expect = scale * s.asnumpy() + (1 - scale if scale_residual else 1.0) * f.asnumpy()
    np.testing.assert_allclose(out, expect, rtol=1e-6)


def test_dropout_shortcut_only_in_training():
    s, f = mx.nd.ones((4, 8, 16, 16)), mx.nd.random.normal(shape=(4, 8, 16, 16))
    np.testing.assert_allclose(combine('dropout', s, f, drop_rate=0.5).asnumpy(), (s + f).asnumpy(),
                               rtol=1e-6)                                        # inference
    with autograd.record(train_mode=True):
        kept = combine('dropout', s, f, drop_rate=0.5) - f
    kept = kept.asnumpy()
    assert set(np.unique(np.round(kept, 4))) <= {0.0, 2.0}          # dropped, or scaled by 1/(1-p)
    assert 0.45 < (kept == 0).mean() < 0.55


@pytest.mark.parametrize('placement,where', [('original', 'bn_beta'), ('full_preact', 'conv_bias')])
@pytest.mark.parametrize('gate_bias', [-6.0, 0.0, -3.0])
def test_gate_bias_initialised_to_b_g(placement, where, gate_bias):
    net = grv.build_resnet(8, shortcut='gate_exclusive', placement=placement, gate_bias=gate_bias)
    grv.init_model(net)
    net(mx.nd.zeros((1, 3, 32, 32)))
    biases = [p.data().asnumpy() for k, p in net.collect_params().items() if k.endswith('gate_' + where)]
    assert len(biases) == 3                          # one gate per unit
    assert all(np.all(b == gate_bias) for b in biases)


@pytest.mark.parametrize('name,formula', [
    ('gate_exclusive', lambda g, s, f: g * f + (1 - g) * s),
    ('gate_shortcut', lambda g, s, f: f + (1 - g) * s),
])
def test_gate_formulas(name, formula):
    s, f = mx.nd.random.normal(shape=(2, 4, 3, 3)), mx.nd.random.normal(shape=(2, 4, 3, 3))
    assert SHORTCUTS[name].gate                       # the unit builds its learned gate
    pre = mx.nd.full(s.shape, -2.0)                   # W_g s + b_g with W_g = 0, b_g = -2
    g = 1 / (1 + np.exp(2.0))
    np.testing.assert_allclose(combine(name, s, f, pre).asnumpy(),
                               formula(g, s.asnumpy(), f.asnumpy()), rtol=1e-5)


def test_gated_unit_applies_its_gate_conv():
    """The unit feeds the combine function its gate conv's output: with W_g = 0 the gate is
    sigmoid(b_g) everywhere (b_g = -2 in the conv's bias, the full pre-activation unit)."""
    unit = ResidualUnit(4, 4, 1, shortcut='gate_exclusive', gate_bias=-2.0, preact='own')
    unit.initialize()
    x = mx.nd.random.normal(shape=(2, 4, 3, 3))
    unit(x)
    unit.gate.conv.weight.set_data(mx.nd.zeros(unit.gate.conv.weight.shape))
    f = unit.body(x).asnumpy()
    g = 1 / (1 + np.exp(2.0))
    np.testing.assert_allclose(unit(x).asnumpy(), g * f + (1 - g) * x.asnumpy(), rtol=1e-5,
                               atol=1e-6)


def test_conv1x1_shortcut_in_every_unit():
    net = grv.build_resnet(20, shortcut='conv1x1', version='v1')
    units = [u for stage in list(net.features)[3:6] for u in stage]
    assert len(units) == 9 and all(u.shortcut is not None for u in units)
    assert all(u.shortcut.bn is not None for u in units)   # BN after every weight layer (Table 1)


def test_option_a_pads_with_zeros():
    unit = ResidualUnit(16, 32, 2, projection='A', preact='own')
    unit.initialize()
    x = mx.nd.random.normal(shape=(1, 16, 8, 8))
    s = unit.shortcut(x).asnumpy()
    np.testing.assert_array_equal(s[:, :16], x.asnumpy()[:, :, ::2, ::2])
    assert s.shape == (1, 32, 4, 4) and not s[:, 16:].any()


def test_he_initialisation_std():
    net = grv.build_resnet(164)
    grv.init_model(net)
    net(mx.nd.zeros((1, 3, 32, 32)))
    w = net.collect_params()['stage3_unit2_conv2_weight'].data().asnumpy()   # 64x64x3x3
    fan_in = w[0].size
    assert abs(w.std() / np.sqrt(2.0 / fan_in) - 1) < 0.05 and abs(w.mean()) < 0.01
