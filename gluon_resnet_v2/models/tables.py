"""Every extension point of the model family, as tables. No MXNet import: the config, the
command line and both network builders (the Gluon blocks of units.py / resnet.py and the
mx.sym twin in legacy_symbol/paper.py) read these, so adding a row here is all it takes.

* PLACEMENTS      Table 2 / Fig. 4 (a)-(e): the BN/ReLU/conv order of a residual unit.
* SHORTCUTS       Table 1 / Fig. 2: how the shortcut h(x) and the residual F(x) combine,
                  written once as a function of F (mx.nd or mx.sym), so both builders run
                  the very same code; SHORTCUT_OPTIONS are their parameters (each becomes a
                  config field and a command-line option).
* BLOCKS          the residual branch F: basic, bottleneck, 1-layer.
* FAMILIES        CIFAR / ImageNet: depth formula, stem, default classes, registry names.

`unit_plan` turns a unit's options into the list of ops both builders lay out.
"""
from collections import namedtuple
from dataclasses import dataclass
from typing import Tuple


def check_choice(value, choices, what):
    if value not in choices:
        raise ValueError('unknown %s %r: choose one of %s' % (what, value, ', '.join(map(str, choices))))


def lookup(table, name, what):
    """`table[name]`, or a ValueError that lists the valid names."""
    check_choice(name, sorted(table), what)
    return table[name]


# ---- Table 2 / Fig. 4: activation placements ----

# layer: the op order of every weight layer of F but the last; last: the last one's;
# post: ops after the addition (the paper's f); shortcut_bn: BN follows the weight layer
# on a projection / 1x1 / gate shortcut.  "BN follows every weight layer" holds for the
# post-activation units of Table 1; the pre-activation reference code (Fig. 1(b), the
# authors' resnet-1k-layers) uses a bare 1x1 projection, as its parameter counts show.
Placement = namedtuple('Placement', 'layer last post shortcut_bn')

PLACEMENTS = {
    # (a) original [He et al. 2015]: conv-BN-ReLU-conv-BN, add, ReLU
    'original': Placement(('conv', 'bn', 'relu'), ('conv', 'bn'), ('relu',), True),
    # (b) BN after addition: conv-BN-ReLU-conv, add, BN-ReLU (BN also normalises h(x))
    'bn_after_add': Placement(('conv', 'bn', 'relu'), ('conv',), ('bn', 'relu'), False),
    # (c) ReLU before addition: conv-BN-ReLU-conv-BN-ReLU, add
    'relu_before_add': Placement(('conv', 'bn', 'relu'), ('conv', 'bn', 'relu'), (), True),
    # (d) ReLU-only pre-activation: ReLU-conv-BN-ReLU-conv-BN, add
    'relu_preact': Placement(('relu', 'conv', 'bn'), ('relu', 'conv', 'bn'), (), True),
    # (e) full pre-activation, the proposed unit: BN-ReLU-conv-BN-ReLU-conv, add
    'full_preact': Placement(('bn', 'relu', 'conv'), ('bn', 'relu', 'conv'), (), False),
}
# v1 = the original unit, v2 = full pre-activation: a registry name's default placement
VERSIONS = {'v1': 'original', 'v2': 'full_preact'}


def preact_ops(placement):
    """The ops a weight layer gets before its conv: its pre-activation ((d), (e)) or ()."""
    return placement.layer[:placement.layer.index('conv')]


# ---- Table 1 / Fig. 2: how the shortcut h(x) and the residual F(x) are combined ----

# A shortcut parameter: default, type, and the help text of its config field / CLI option.
# The defaults lambda = 0.5 and b_g = -6 are Table 1's best rows.
Option = namedtuple('Option', 'default type help')
SHORTCUT_OPTIONS = {
    'scale': Option(0.5, float, "lambda of the 'scale' shortcut"),
    'scale_residual': Option(False, bool, "'scale' shortcut: also scale F by 1 - lambda"),
    'gate_bias': Option(-6.0, float, 'initial b_g of the gating shortcuts'),
    'drop_rate': Option(0.5, float, "dropout rate of the 'dropout' shortcut"),
}

# combine(F, s, f, g, opts) -> the unit's sum. F: mx.nd or mx.sym; s = h(x), the shortcut;
# f = F(x), the residual; g = W_g s + b_g, a learned 1x1 conv of s when `gate` is set
# (BN's beta holds b_g where the placement puts BN after shortcut convs), else None;
# opts: SHORTCUT_OPTIONS' values. conv_every_unit: h is a 1x1 conv in every unit.
Shortcut = namedtuple('Shortcut', 'combine conv_every_unit gate')


def _add(F, s, f, g, opts):
    """Fig. 2(a) identity (and the 1x1-conv shortcut, whose conv is in h): h(x) + F(x)."""
    # F(x) first, measured (DNNL_VERBOSE): written s + f, MXNet 1.9's oneDNN sum added one
    # copy of an activation tensor per unit and step (ResNet-164: 51, about 15 ms of an
    # 800 ms step at b64; README, Benchmarks), presumably as it writes over F(x) (x is kept
    # for BN's backward) and copies when that is its second operand. Same bits either way.
    return f + s


def _scale(F, s, f, g, opts):
    """Fig. 2(b) constant scaling: lambda*x + F, or lambda*x + (1-lambda)*F ("frozen gating")."""
    if opts['scale_residual']:
        f = (1.0 - opts['scale']) * f
    return opts['scale'] * s + f


def _exclusive_gate(F, s, f, g, opts):
    """Fig. 2(c) exclusive gating: g*F + (1-g)*x with g = sigmoid(W_g x + b_g) elementwise."""
    g = F.sigmoid(g)
    return g * f + (1 - g) * s


def _shortcut_gate(F, s, f, g, opts):
    """Fig. 2(d) shortcut-only gating: F + (1-g)*x."""
    return f + (1 - F.sigmoid(g)) * s


def _dropout(F, s, f, g, opts):
    """Fig. 2(f) dropout shortcut: dropout(x, p) + F; dropout acts in training mode only."""
    return F.Dropout(s, p=opts['drop_rate']) + f


SHORTCUTS = {
    'identity': Shortcut(_add, conv_every_unit=False, gate=False),
    'scale': Shortcut(_scale, conv_every_unit=False, gate=False),
    'gate_exclusive': Shortcut(_exclusive_gate, conv_every_unit=False, gate=True),
    'gate_shortcut': Shortcut(_shortcut_gate, conv_every_unit=False, gate=True),
    'conv1x1': Shortcut(_add, conv_every_unit=True, gate=False),
    'dropout': Shortcut(_dropout, conv_every_unit=False, gate=False),
}


# ---- the residual branch F ----

# Weight layers of F: (kernel, channel divisor, carries the stride), and the ratio of a
# unit's output width to its stage's base width. Bottleneck: 1x1 reduce, 3x3, 1x1 restore
# (expansion 4); `stride_on` picks which of the first two convs is strided.
Block = namedtuple('Block', 'layers expansion')
BLOCKS = {
    'basic': Block(lambda stride_on: ((3, 1, True), (3, 1, False)), 1),
    'bottleneck': Block(lambda stride_on: ((1, 4, stride_on == '1x1'), (3, 4, stride_on == '3x3'),
                                           (1, 1, False)), 4),
    '1layer': Block(lambda stride_on: ((3, 1, True),), 1),
}


def layers_per_unit(block):
    return len(lookup(BLOCKS, block, 'block').layers('1x1'))


# ---- network families ----

@dataclass(frozen=True)
class ArchSpec:
    family: str                # a FAMILIES key: selects the stem
    depth: int                 # weight layers on the longest path: stem + units + classifier
    block: str                 # a BLOCKS key
    units: Tuple[int, ...]     # residual units per stage
    widths: Tuple[int, ...]    # output channels of each stage's units
    strides: Tuple[int, ...]   # stride of each stage's first unit


def default_cifar_block(depth):
    """The paper's choice: bottleneck for the 9n+2 depths from 164 up, else basic."""
    return 'bottleneck' if depth >= 164 and (depth - 2) % 9 == 0 else 'basic'


def cifar_spec(depth, block=None):
    """Three stages of n units at widths 16/32/64 (x4 for bottleneck), strides 1/2/2."""
    block = block or default_cifar_block(depth)
    per_stage = 3 * layers_per_unit(block)
    n, rest = divmod(depth - 2, per_stage)
    if n < 1 or rest:
        raise ValueError('invalid CIFAR depth %d for %s units: the depth must be %dn+2 '
                         '(e.g. %s)' % (depth, block, per_stage,
                                        ', '.join(str(per_stage * k + 2) for k in (1, 2, 3, 6, 18))))
    widths = tuple(w * BLOCKS[block].expansion for w in (16, 32, 64))
    return ArchSpec('cifar', depth, block, (n,) * 3, widths, (1, 2, 2))


# ImageNet units per stage, from the first ResNet paper's Table 1 and this paper's Sec. 5
# (ResNet-200: [3, 24, 36, 3]); depth = layers per unit * sum(units) + 2.
IMAGENET_UNITS = {
    18: ('basic', (2, 2, 2, 2)), 34: ('basic', (3, 4, 6, 3)),
    50: ('bottleneck', (3, 4, 6, 3)), 101: ('bottleneck', (3, 4, 23, 3)),
    152: ('bottleneck', (3, 8, 36, 3)), 200: ('bottleneck', (3, 24, 36, 3)),
}


def imagenet_spec(depth, block=None):
    """Four stages at widths 64..512 (x4 for bottleneck), strides 1/2/2/2."""
    table_block, units = lookup(IMAGENET_UNITS, depth, 'ImageNet depth')
    if block not in (None, table_block):
        raise ValueError('ImageNet ResNet-%d uses %s units; choose one of %s for %s units'
                         % (depth, table_block, ', '.join(str(d) for d, (b, _) in
                                                          sorted(IMAGENET_UNITS.items())
                                                          if b == block) or 'none', block))
    widths = tuple(w * BLOCKS[table_block].expansion for w in (64, 128, 256, 512))
    return ArchSpec('imagenet', depth, table_block, units, widths, (1, 2, 2, 2))


CIFAR_DEPTHS = (20, 32, 44, 56, 110, 164, 1001, 1202)

# The stem: conv (channels, kernel, stride; padding kernel // 2) - BN - ReLU [- 3x3/2 max pool].
Stem = namedtuple('Stem', 'channels kernel stride max_pool')
# spec: (depth, block) -> ArchSpec; classes: the default; bottleneck_stride: which bottleneck
# conv carries the stride, the authors' code for each family (resnet-1k-layers on CIFAR:
# the first 1x1; fb.resnet.torch on ImageNet: the 3x3); registered: {name: architecture
# arguments} of the registry, with {v} for the version.
Family = namedtuple('Family', 'spec classes stem bottleneck_stride registered')
FAMILIES = {
    'cifar': Family(cifar_spec, 10, Stem(16, 3, 1, False), '1x1', dict(
        [('cifar_resnet%d_{v}' % d, dict(depth=d)) for d in CIFAR_DEPTHS] +
        # Table 3's ResNet-110 whose units each hold one 3x3 conv (3 stages x 36 units)
        [('cifar_resnet110_1layer_{v}', dict(depth=110, block='1layer'))])),
    'imagenet': Family(imagenet_spec, 1000, Stem(64, 7, 2, True), '3x3',
                       {'resnet%d_{v}' % d: dict(depth=d) for d in sorted(IMAGENET_UNITS)}),
}


# ---- what a unit is made of ----

# Computed once for both builders: `ops` lists every op of the residual branch as
# (op, weight-layer index, channels, kernel, stride); the first `n_pre` of them are the
# pre-activation shared by both paths; `shortcut` is 'conv' (1x1), 'pad' (option A) or
# None; `combine` the SHORTCUTS entry, `opts` its options.
UnitPlan = namedtuple('UnitPlan', 'place combine ops n_pre shortcut opts')


def unit_plan(in_channels, channels, stride, block='basic', placement='full_preact',
              shortcut='identity', preact='own', projection='B', bottleneck_stride='1x1',
              **shortcut_opts):
    """The UnitPlan of a residual unit; ValueError naming the choices for a bad option."""
    place = lookup(PLACEMENTS, placement, 'placement')
    combine = lookup(SHORTCUTS, shortcut, 'shortcut')
    check_choice(bottleneck_stride, ('1x1', '3x3'), 'bottleneck stride')
    check_choice(preact, ('own', 'shared', 'none'), 'pre-activation mode')
    check_choice(projection, ('A', 'B'), 'projection option')
    layers = lookup(BLOCKS, block, 'block').layers(bottleneck_stride)
    unknown = sorted(set(shortcut_opts) - set(SHORTCUT_OPTIONS))
    if unknown:
        raise ValueError('unknown shortcut option %s: choose from %s'
                         % (', '.join(unknown), ', '.join(sorted(SHORTCUT_OPTIONS))))
    pre = preact_ops(place)
    ops = []
    for i, (kernel, div, strided) in enumerate(layers, 1):
        pattern = place.last if i == len(layers) else place.layer
        if i == 1 and preact == 'none':   # the stem's BN-ReLU stands in for it
            pattern = pattern[len(pre):]
        ops += [(op, i, channels // div, kernel, stride if strided else 1) for op in pattern]
    reshapes = stride != 1 or in_channels != channels
    if combine.conv_every_unit or (reshapes and projection == 'B'):
        kind = 'conv'
    else:
        kind = 'pad' if reshapes else None
    n_pre = len(pre) if preact == 'shared' and pre else 0
    opts = dict({k: o.default for k, o in SHORTCUT_OPTIONS.items()}, **shortcut_opts)
    return UnitPlan(place, combine, ops, n_pre, kind, opts)
