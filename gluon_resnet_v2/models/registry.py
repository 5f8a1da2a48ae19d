"""Model registry: architectures by name, ablations as keyword overrides (timm-style).

    get_model('cifar_resnet164_v2', classes=100)
    get_model('cifar_resnet110_v1', shortcut='gate_exclusive', gate_bias=-6)
    get_model('resnet200_v2', placement='bn_after_add')
    build_resnet(56, family='cifar', placement='relu_preact')   # any valid depth

A registered name fixes the architecture (family, depth, block) and the default placement
(v1 = Fig. 4(a) 'original', v2 = Fig. 4(e) 'full_preact'); everything else is an override.
"""
import functools

from .resnet import IMAGENET_UNITS, ResNet, cifar_spec, imagenet_spec
from .units import check_choice

VERSIONS = {'v1': 'original', 'v2': 'full_preact'}
# Which bottleneck conv carries the stride, per family: the authors' code for each
# (resnet-1k-layers on CIFAR: first 1x1; fb.resnet.torch on ImageNet: the 3x3).
BOTTLENECK_STRIDE = {'cifar': '1x1', 'imagenet': '3x3'}
CIFAR_DEPTHS = (20, 32, 44, 56, 110, 164, 1001, 1202)
# keyword overrides get_model accepts, beyond the architecture itself
OVERRIDES = ('classes', 'placement', 'shortcut', 'projection', 'bottleneck_stride', 'block',
             'scale', 'scale_residual', 'gate_bias', 'drop_rate')

_MODELS = {}


def resolve(depth, family='cifar', version='v2', block=None, classes=None, placement=None,
            bottleneck_stride=None, **kwargs):
    """(ArchSpec, keyword arguments of the network) for a depth and its options, checked.

    Shared by `build_resnet` and the symbol builder of legacy_symbol, so both read the
    same defaults and reject the same mistakes."""
    check_choice(family, ('cifar', 'imagenet'), 'family')
    check_choice(version, tuple(VERSIONS), 'version')
    unknown = sorted(set(kwargs) - set(OVERRIDES))
    if unknown:
        raise ValueError('unknown model option %s: valid options are %s'
                         % (', '.join(unknown), ', '.join(OVERRIDES)))
    spec = cifar_spec(depth, block) if family == 'cifar' else imagenet_spec(depth, block)
    default_classes = 10 if family == 'cifar' else 1000
    return spec, dict(kwargs, classes=default_classes if classes is None else classes,
                      placement=placement or VERSIONS[version],
                      bottleneck_stride=bottleneck_stride or BOTTLENECK_STRIDE[family])


def build_resnet(depth, family='cifar', version='v2', **options):
    """A ResNet of any valid depth: CIFAR 6n+2 / 9n+2 / 3n+2 (1layer), ImageNet 18..200.

    Uninitialised; call `net.initialize(mx.init.MSRAPrelu())` (He initialisation), as
    `gluon_resnet_v2.init_model` does."""
    spec, kwargs = resolve(depth, family, version, **options)
    return ResNet(spec, **kwargs)


def architecture(name):
    """The architecture arguments of a registered name: depth, family, version[, block]."""
    if name not in _MODELS:
        raise ValueError('unknown model %r: choose one of %s' % (name, ', '.join(list_models())))
    return dict(_MODELS[name].keywords)


def _register(name, **arch):
    _MODELS[name] = functools.partial(build_resnet, **arch)


for _v in VERSIONS:
    for _d in CIFAR_DEPTHS:
        _register('cifar_resnet%d_%s' % (_d, _v), depth=_d, family='cifar', version=_v)
    # Table 3's ResNet-110 whose units each hold one 3x3 conv (3 stages x 36 units)
    _register('cifar_resnet110_1layer_%s' % _v, depth=110, family='cifar', version=_v,
              block='1layer')
    for _d in sorted(IMAGENET_UNITS):
        _register('resnet%d_%s' % (_d, _v), depth=_d, family='imagenet', version=_v)


def list_models():
    """Every registered name, sorted."""
    return sorted(_MODELS)


def get_model(name, **overrides):
    """The registered network `name`, with `overrides` (see OVERRIDES) applied."""
    if name not in _MODELS:
        raise ValueError('unknown model %r: choose one of %s' % (name, ', '.join(list_models())))
    return _MODELS[name](**overrides)
