"""Registry, golden parameter counts, and the peer comparison with gluoncv."""
import json
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

import gluon_resnet_v2 as grv
from gluon_resnet_v2.models import architecture, cifar_spec

GOLDEN = json.loads((Path(__file__).parent / 'golden' / 'param_counts.json').read_text())


def built(net, size=32):
    """Initialise `net` and run one forward pass so deferred shapes are known."""
    grv.init_model(net)
    net(mx.nd.zeros((1, 3, size, size)))
    return net


def trainable(net):
    return sum(p.data().size for p in net.collect_params().values() if p.grad_req != 'null')


@pytest.mark.parametrize('case', GOLDEN['exact'], ids=lambda c: '%s%s' % (c['model'], c['overrides'] or ''))
def test_paper_parameter_counts_exact(case):
    net = built(grv.get_model(case['model'], **case['overrides']))
    assert trainable(net) == case['params']


@pytest.mark.parametrize('name,expected', sorted(GOLDEN['conv_weights_only'].items()))
def test_conv_weight_counts(name, expected):
    net = built(grv.get_model(name))
    conv = sum(p.data().size for k, p in net.collect_params().items()
               if 'conv' in k and k.endswith('_weight'))
    assert conv == expected


@pytest.mark.parametrize('name', [k for k in GOLDEN['first_paper_millions'] if k != 'note'])
def test_first_paper_sizes_to_stated_precision(name):
    stated = GOLDEN['first_paper_millions'][name]
    decimals = len(stated.split('.')[1])
    net = built(grv.get_model(name, projection='A'))
    assert round(trainable(net) / 1e6, decimals) == float(stated)


@pytest.mark.parametrize('depth', [18, 34, 50, 101, 152])
def test_imagenet_counts_match_gluoncv(depth):
    """gluoncv's ResNetV2 applies BN-ReLU after the stem conv AND again as the first unit's
    own pre-activation (ours: once, the reference code's 'no_preact' first unit), and adds
    a parameter-free BN on the input. That one BatchNorm(64) is the whole difference."""
    gluoncv = pytest.importorskip('gluoncv', reason='gluoncv is the peer implementation')
    name = 'resnet%d_v2' % depth
    ours = built(grv.get_model(name), size=64)
    peer = gluoncv.model_zoo.get_model(name)
    peer.initialize()
    peer(mx.nd.zeros((1, 3, 64, 64)))
    first_unit_bn = 2 * 64  # gamma + beta of BatchNorm(64)
    assert trainable(peer) == trainable(ours) + first_unit_bn


def test_registry_names():
    """Exactly the paper's networks, each name once: 2 versions x (8 CIFAR depths, the
    1-layer ResNet-110, 6 ImageNet depths)."""
    expected = set()
    for v in ('v1', 'v2'):
        expected |= {'cifar_resnet%d_%s' % (d, v) for d in (20, 32, 44, 56, 110, 164, 1001, 1202)}
        expected |= {'cifar_resnet110_1layer_%s' % v}
        expected |= {'resnet%d_%s' % (d, v) for d in (18, 34, 50, 101, 152, 200)}
    assert len(expected) == 30 and set(grv.list_models()) == expected
    assert architecture('cifar_resnet110_1layer_v1') == dict(
        depth=110, block='1layer', family='cifar', version='v1')


@pytest.mark.parametrize('call,words', [
    (lambda: grv.get_model('resnet99_v2'), ['unknown model', 'cifar_resnet110_v2']),
    (lambda: grv.build_resnet(111), ['invalid CIFAR depth 111', '6n+2']),
    (lambda: grv.build_resnet(165, block='bottleneck'), ['9n+2']),
    (lambda: grv.build_resnet(99, family='imagenet'), ['ImageNet depth', '200']),
    (lambda: grv.build_resnet(18, family='imagenet', block='bottleneck'), ['basic', '50']),
    (lambda: grv.get_model('cifar_resnet20_v2', shortcut='highway'), ['shortcut', 'gate_exclusive']),
    (lambda: grv.get_model('cifar_resnet20_v2', placement='post'), ['placement', 'full_preact']),
    (lambda: grv.get_model('cifar_resnet20_v2', projection='C'), ['projection', "A, B"]),
    (lambda: grv.get_model('cifar_resnet20_v2', block='wide'), ['block', 'bottleneck']),
    (lambda: grv.get_model('cifar_resnet20_v2', bottleneck_stride='5x5'), ['3x3']),
    (lambda: grv.get_model('cifar_resnet20_v2', dropout=0.3), ['unknown model option', 'drop_rate']),
    (lambda: grv.get_model('cifar_resnet20_v2', classes=0), ['classes']),
])
def test_bad_names_raise_value_error_listing_choices(call, words):
    with pytest.raises(ValueError) as err:
        call()
    for w in words:
        assert w in str(err.value)


@pytest.mark.parametrize('depth,block,units', [
    (20, 'basic', 3), (110, 'basic', 18), (1202, 'basic', 200),
    (164, 'bottleneck', 18), (1001, 'bottleneck', 111), (245, 'bottleneck', 27),
])
def test_depth_formula_and_default_block(depth, block, units):
    spec = cifar_spec(depth)
    assert (spec.block, spec.units) == (block, (units,) * 3)


def test_block_override_and_1layer():
    assert cifar_spec(164, 'basic').units == (27,) * 3          # 164 is also 6n+2
    spec = grv.get_model('cifar_resnet110_1layer_v2').spec
    assert (spec.block, spec.units) == ('1layer', (36,) * 3)   # 3 x 36 one-conv units + 2


@pytest.mark.parametrize('name,size,classes', [
    ('resnet18_v2', 224, 1000), ('resnet18_v2', 320, 1000), ('resnet50_v1', 160, 7),
    ('cifar_resnet20_v2', 32, 100),
])
def test_output_shape_any_crop_and_classes(name, size, classes):
    net = grv.get_model(name, classes=classes)
    grv.init_model(net)
    out = net(mx.nd.random.uniform(shape=(1, 3, size, size)))
    assert out.shape == (1, classes)
    assert np.isfinite(out.asnumpy()).all()


def test_resnet200_stage_layout():
    spec = grv.get_model('resnet200_v2').spec
    assert spec.units == (3, 24, 36, 3) and spec.block == 'bottleneck'
    assert 3 * sum(spec.units) + 2 == 200


@pytest.mark.parametrize('family,expected', [('cifar', '1x1'), ('imagenet', '3x3')])
def test_bottleneck_stride_default_and_override(family, expected):
    name, stage2 = ('cifar_resnet164_v2', 4) if family == 'cifar' else ('resnet50_v2', 5)
    for choice in (None, '1x1', '3x3'):
        kw = {'bottleneck_stride': choice} if choice else {}
        unit = grv.get_model(name, **kw).features[stage2][0]
        convs = [b for b in list(unit.preact) + list(unit.body) if isinstance(b, mx.gluon.nn.Conv2D)]
        on = choice or expected
        assert [c._kwargs['stride'] for c in convs] == (
            [(2, 2), (1, 1), (1, 1)] if on == '1x1' else [(1, 1), (2, 2), (1, 1)])
