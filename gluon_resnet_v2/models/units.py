"""The residual unit of "Identity Mappings in Deep Residual Networks" with its ablations as data.

A unit computes  y = combine(h(x), F(x)),  x_next = post(y)   (paper Eqn. 1-2), where

* F, the residual branch, is K weight layers (K = 2 basic, 3 bottleneck, 1 for the
  "1-layer" ResNet-110 of Table 3) whose BN/ReLU ordering is looked up in `PLACEMENTS`
  (Table 2 / Fig. 4 (a)-(e));
* h, the shortcut, is the identity, or a 1x1 projection (option B) / zero padding
  (option A) where the unit changes width or stride, or a 1x1 conv in every unit
  (the `conv1x1` row of Table 1);
* combine is one of the Table 1 / Fig. 2 shortcut variants in `SHORTCUTS`.

Parameter names are fixed by explicit prefixes (`conv1_`, `bn1_`, `sc_conv_`, ...) so the
symbolic builder in `legacy_symbol` can name its variables identically.
"""
from collections import namedtuple

from mxnet import init
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

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


def lookup(table, name, what):
    """`table[name]`, or a ValueError that lists the valid names."""
    check_choice(name, sorted(table), what)
    return table[name]


def check_choice(value, choices, what):
    if value not in choices:
        raise ValueError('unknown %s %r: choose one of %s' % (what, value, ', '.join(map(str, choices))))


def preact_ops(placement):
    """The ops a weight layer gets before its conv: its pre-activation ((d), (e)) or ()."""
    return placement.layer[:placement.layer.index('conv')]


def make_ops(ops, index, channels=None, kernel=3, stride=1):
    """Blocks for an op sequence of weight layer `index`: conv{index}, bn{index}, relu."""
    blocks = []
    for op in ops:
        if op == 'conv':
            blocks.append(nn.Conv2D(channels, kernel, stride, kernel // 2, use_bias=False,
                                    prefix='conv%s_' % index))
        elif op == 'bn':
            blocks.append(nn.BatchNorm(prefix='bn%s_' % index))
        else:
            blocks.append(nn.Activation('relu'))
    return blocks


def sequential(blocks, prefix=None):
    seq = nn.HybridSequential(prefix=prefix)
    for b in blocks:
        seq.add(b)
    return seq


class ShortcutConv(HybridBlock):
    """A 1x1 conv (stride `stride`), followed by BN when the placement says so.

    `bias` is the initial additive term: the conv's bias without BN, BN's beta with it
    (the gate bias b_g of Table 1 lives here)."""

    def __init__(self, channels, stride, bn, bias=None, prefix=None):
        super().__init__(prefix=prefix)
        with self.name_scope():
            bias_init = init.Constant(bias) if bias is not None else 'zeros'
            self.conv = nn.Conv2D(channels, 1, stride, use_bias=(bias is not None and not bn),
                                  bias_initializer=bias_init, prefix='conv_')
            self.bn = nn.BatchNorm(beta_initializer=bias_init, prefix='bn_') if bn else None

    def hybrid_forward(self, F, x):
        x = self.conv(x)
        return self.bn(x) if self.bn is not None else x


class ZeroPadShortcut(HybridBlock):
    """Option A of the first ResNet paper: subsample by `stride`, append zero channels."""

    def __init__(self, extra_channels, stride, prefix=None):
        super().__init__(prefix=prefix)
        self._extra, self._stride = extra_channels, stride

    def hybrid_forward(self, F, x):
        if self._stride > 1:
            x = F.slice(x, begin=(None,) * 4, end=(None,) * 4, step=(1, 1, self._stride, self._stride))
        zeros = F.broadcast_to(F.zeros_like(F.slice_axis(x, axis=1, begin=0, end=1)),
                               shape=(0, self._extra, 0, 0))
        return F.concat(x, zeros, dim=1)


# ---- Table 1 / Fig. 2: how the shortcut h(x) and the residual F(x) are combined ----

class Add(HybridBlock):
    """Fig. 2(a) identity (and the 1x1-conv shortcut, whose conv is in h): h(x) + F(x)."""

    def __init__(self, channels, bn, opts, prefix=None):
        super().__init__(prefix=prefix)

    def hybrid_forward(self, F, s, f):
        return s + f


class Scale(HybridBlock):
    """Fig. 2(b) constant scaling: lambda*x + F, or lambda*x + (1-lambda)*F ("frozen gating")."""

    def __init__(self, channels, bn, opts, prefix=None):
        super().__init__(prefix=prefix)
        self.scale = opts['scale']
        self.residual_scale = 1.0 - opts['scale'] if opts['scale_residual'] else 1.0

    def hybrid_forward(self, F, s, f):
        return self.scale * s + self.residual_scale * f


class ExclusiveGate(HybridBlock):
    """Fig. 2(c) exclusive gating: g*F + (1-g)*x with g = sigmoid(W_g x + b_g) elementwise."""

    def __init__(self, channels, bn, opts, prefix=None):
        super().__init__(prefix=prefix)
        with self.name_scope():
            self.gate = ShortcutConv(channels, 1, bn, bias=opts['gate_bias'], prefix='gate_')

    def hybrid_forward(self, F, s, f):
        g = F.sigmoid(self.gate(s))
        return g * f + (1 - g) * s


class ShortcutGate(ExclusiveGate):
    """Fig. 2(d) shortcut-only gating: F + (1-g)*x."""

    def hybrid_forward(self, F, s, f):
        return f + (1 - F.sigmoid(self.gate(s))) * s


class DropoutShortcut(HybridBlock):
    """Fig. 2(f) dropout shortcut: dropout(x, p) + F; dropout acts in training mode only."""

    def __init__(self, channels, bn, opts, prefix=None):
        super().__init__(prefix=prefix)
        self.rate = opts['drop_rate']

    def hybrid_forward(self, F, s, f):
        return F.Dropout(s, p=self.rate) + f


# name -> (combiner, whether h is a 1x1 conv in every unit)
SHORTCUTS = {
    'identity': (Add, False),
    'scale': (Scale, False),
    'gate_exclusive': (ExclusiveGate, False),
    'gate_shortcut': (ShortcutGate, False),
    'conv1x1': (Add, True),
    'dropout': (DropoutShortcut, False),
}
# Defaults of the shortcut parameters: lambda = 0.5 and b_g = -6 are Table 1's best rows.
SHORTCUT_DEFAULTS = {'scale': 0.5, 'scale_residual': False, 'gate_bias': -6.0, 'drop_rate': 0.5}

# Weight layers of the residual branch F: (kernel, channel divisor, carries the stride).
# Bottleneck: 1x1 reduce, 3x3, 1x1 restore (expansion 4); `stride_on` picks which
# of the first two convs is strided.
BRANCHES = {
    'basic': lambda stride_on: ((3, 1, True), (3, 1, False)),
    'bottleneck': lambda stride_on: ((1, 4, stride_on == '1x1'), (3, 4, stride_on == '3x3'),
                                     (1, 1, False)),
    '1layer': lambda stride_on: ((3, 1, True),),
}


# What a unit is made of, computed once for both builders (this Gluon block and the
# symbol twin in legacy_symbol/paper.py): `ops` lists every op of the residual branch as
# (op, weight-layer index, channels, kernel, stride); the first `n_pre` of them are the
# pre-activation shared by both paths; `shortcut` is 'conv' (1x1), 'pad' (option A) or None.
UnitPlan = namedtuple('UnitPlan', 'place combiner ops n_pre shortcut opts')


def unit_plan(in_channels, channels, stride, block='basic', placement='full_preact',
              shortcut='identity', preact='own', projection='B', bottleneck_stride='1x1',
              **shortcut_opts):
    """The UnitPlan of a residual unit; ValueError naming the choices for a bad option."""
    place = lookup(PLACEMENTS, placement, 'placement')
    combiner, conv_every_unit = lookup(SHORTCUTS, shortcut, 'shortcut')
    check_choice(bottleneck_stride, ('1x1', '3x3'), 'bottleneck stride')
    check_choice(preact, ('own', 'shared', 'none'), 'pre-activation mode')
    check_choice(projection, ('A', 'B'), 'projection option')
    layers = lookup(BRANCHES, block, 'block')(bottleneck_stride)
    unknown = sorted(set(shortcut_opts) - set(SHORTCUT_DEFAULTS))
    if unknown:
        raise ValueError('unknown shortcut option %s: choose from %s'
                         % (', '.join(unknown), ', '.join(sorted(SHORTCUT_DEFAULTS))))
    pre = preact_ops(place)
    ops = []
    for i, (kernel, div, strided) in enumerate(layers, 1):
        pattern = place.last if i == len(layers) else place.layer
        if i == 1 and preact == 'none':   # the stem's BN-ReLU stands in for it
            pattern = pattern[len(pre):]
        ops += [(op, i, channels // div, kernel, stride if strided else 1) for op in pattern]
    reshapes = stride != 1 or in_channels != channels
    if conv_every_unit or (reshapes and projection == 'B'):
        kind = 'conv'
    else:
        kind = 'pad' if reshapes else None
    n_pre = len(pre) if preact == 'shared' and pre else 0
    return UnitPlan(place, combiner, ops, n_pre, kind, dict(SHORTCUT_DEFAULTS, **shortcut_opts))


class ResidualUnit(HybridBlock):
    """One residual unit (paper Eqn. 1-2, Fig. 4): `block` x `placement` x `shortcut`.

    preact: 'own'    -- the unit's pre-activation (BN-ReLU in (e)) is the start of F only;
                        h reads the raw x, the clean path of Fig. 1(b);
            'shared' -- where the unit changes width or stride, the pre-activation comes
                        before the split and the projection reads the pre-activated tensor
                        (the authors' reference code);
            'none'   -- the first unit of the network: the stem's BN-ReLU already
                        pre-activated x, before the split.
    projection: 'B' (1x1 conv) or 'A' (zero padding) where dimensions change.
    """

    def __init__(self, in_channels, channels, stride, block='basic', placement='full_preact',
                 shortcut='identity', preact='own', projection='B', bottleneck_stride='1x1',
                 prefix=None, **shortcut_opts):
        super().__init__(prefix=prefix)
        plan = unit_plan(in_channels, channels, stride, block, placement, shortcut, preact,
                         projection, bottleneck_stride, **shortcut_opts)
        with self.name_scope():
            ops = [b for op, i, c, k, st in plan.ops for b in make_ops((op,), i, c, k, st)]
            self.preact = sequential(ops[:plan.n_pre], prefix='')
            self.body = sequential(ops[plan.n_pre:], prefix='')
            if plan.shortcut == 'conv':
                self.shortcut = ShortcutConv(channels, stride, plan.place.shortcut_bn,
                                             prefix='sc_')
            elif plan.shortcut == 'pad':
                self.shortcut = ZeroPadShortcut(channels - in_channels, stride, prefix='sc_')
            else:
                self.shortcut = None
            self.combine = plan.combiner(channels, plan.place.shortcut_bn, plan.opts, prefix='')
            self.post = sequential(make_ops(plan.place.post, '_post'), prefix='')

    def hybrid_forward(self, F, x):
        x = self.preact(x)   # empty unless the pre-activation is shared by both paths
        f = self.body(x)
        s = self.shortcut(x) if self.shortcut is not None else x
        return self.post(self.combine(s, f))
