"""Model registry: architectures by name, ablations as keyword overrides (timm-style).

    get_model('cifar_resnet164_v2', classes=100)
    get_model('cifar_resnet110_v1', shortcut='gate_exclusive', gate_bias=-6)
    get_model('resnet200_v2', placement='bn_after_add')
    build_resnet(56, family='cifar', placement='relu_preact')   # any valid depth

A registered name fixes the architecture (family, depth, block) and the default placement
(v1 = Fig. 4(a) 'original', v2 = Fig. 4(e) 'full_preact'); everything else is an override.
The names come from tables.FAMILIES.
"""
from .tables import FAMILIES, SHORTCUT_OPTIONS, VERSIONS, check_choice, lookup



def overrides():
    """The keyword overrides get_model accepts beyond the architecture itself (read from
    the tables when called, so a shortcut option added there is accepted)."""
    return ('classes', 'placement', 'shortcut', 'projection', 'bottleneck_stride',
            'block') + tuple(SHORTCUT_OPTIONS)


def resolve(depth, family='cifar', version='v2', block=None, classes=None, placement=None,
            bottleneck_stride=None, **kwargs):
    """(ArchSpec, keyword arguments of the network) for a depth and its options, checked.

    Shared by `build_resnet` and the symbol builder of legacy_symbol, so both read the
    same defaults and reject the same mistakes."""
    fam = lookup(FAMILIES, family, 'family')
    check_choice(version, tuple(VERSIONS), 'version')
    unknown = sorted(set(kwargs) - set(overrides()))
    if unknown:
        raise ValueError('unknown model option %s: valid options are %s'
                         % (', '.join(unknown), ', '.join(overrides())))
    spec = fam.spec(depth, block)
    return spec, dict(kwargs, classes=fam.classes if classes is None else classes,
                      placement=placement or VERSIONS[version],
                      bottleneck_stride=bottleneck_stride or fam.bottleneck_stride)


def build_resnet(depth, family='cifar', version='v2', norm_layer=None, **options):
    """A ResNet of any valid depth: CIFAR 6n+2 / 9n+2 / 3n+2 (1layer), ImageNet 18..200.

    Uninitialised; call `net.initialize(mx.init.MSRAPrelu())` (He initialisation), as
    `gluon_resnet_v2.init_model` does. `norm_layer` makes every BN (default nn.BatchNorm):
    a Gluon-only choice, so not one of the model options `resolve` checks."""
    from .resnet import ResNet          # Gluon blocks: MXNet is imported on first use
    spec, kwargs = resolve(depth, family, version, **options)
    return ResNet(spec, norm_layer=norm_layer, **kwargs)


def _registered():
    """{name: architecture arguments} of every registered network."""
    return {template.format(v=v): dict(arch, family=family, version=v)
            for family, fam in FAMILIES.items() for template, arch in fam.registered.items()
            for v in VERSIONS}


def list_models():
    """Every registered name, sorted."""
    return sorted(_registered())


def architecture(name):
    """The architecture arguments of a registered name: depth, family, version[, block]."""
    return dict(lookup(_registered(), name, 'model'))


def get_model(name, **overrides):
    """The registered network `name`, with `overrides` (see overrides()) applied."""
    return build_resnet(**dict(architecture(name), **overrides))
