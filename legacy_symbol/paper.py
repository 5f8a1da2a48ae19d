"""The paper's networks as `mx.sym` graphs that reproduce the Gluon models op for op.

He et al. 2016, "Identity Mappings in Deep Residual Networks": every activation placement
of Table 2 / Fig. 4 (a)-(e), every shortcut of Table 1 / Fig. 2, basic / bottleneck /
1-layer units, CIFAR and ImageNet, any valid depth. The unit and network logic mirror
`gluon_resnet_v2.models.units.ResidualUnit` and `...resnet.ResNet` line by line, and the
tables (`gluon_resnet_v2.models.tables`: placements, shortcuts and their combine functions,
the unit plan, depth formulas, stems, registry defaults) are read from there, never
copied, so the two builders cannot drift apart silently: a shortcut's combine function
is one function, called with F = mx.sym here and F = mx.nd / mx.sym by Gluon.

Every argument / auxiliary state is an explicit `mx.sym.Variable` named exactly like the
Gluon parameter (`stage2_unit1_conv1_weight`, `stem_bn_running_mean`, `fc_bias`): by
default `mx.sym.BatchNorm` would call its statistics `*_moving_mean`, Gluon calls them
`*_running_mean`. Equal names let `legacy_symbol.weights` move weights by name alone.

    sym = get_symbol('cifar_resnet164_v2', classes=100)          # logits
    train_sym = get_training_symbol('resnet50_v1')               # + SoftmaxOutput
"""
import mxnet as mx

from gluon_resnet_v2.models import registry
from gluon_resnet_v2.models.tables import FAMILIES, PLACEMENTS, lookup, preact_ops, unit_plan

# Gluon's nn.BatchNorm defaults; mx.sym.BatchNorm's own are eps=1e-3 and fix_gamma=True,
# which would silently change every unit (the notes network in notes.py has them).
BN_SETTINGS = dict(axis=1, eps=1e-5, momentum=0.9, fix_gamma=False, use_global_stats=False)


# ---- single ops, named like the Gluon blocks' parameters ----

def conv(x, name, channels, kernel, stride=1, bias=None):
    """nn.Conv2D(channels, kernel, stride, kernel // 2): `name`_weight (+ `name`_bias
    initialised to `bias` when one is given; the gate conv of Table 1 without BN)."""
    weight = mx.sym.Variable(name + '_weight')
    common = dict(kernel=(kernel,) * 2, stride=(stride,) * 2, dilate=(1, 1),
                  pad=(kernel // 2,) * 2, num_filter=channels, num_group=1, layout='NCHW',
                  name=name)
    if bias is None:
        return mx.sym.Convolution(x, weight=weight, no_bias=True, **common)
    b = mx.sym.Variable(name + '_bias', init=mx.init.Constant(bias))
    return mx.sym.Convolution(x, weight=weight, bias=b, no_bias=False, **common)


def batch_norm(x, name, beta_init=None):
    """nn.BatchNorm(): gamma, beta and the running statistics as Gluon names them.

    The `init` attributes let `Module.init_params` initialise names it does not know
    (`*_running_var` is not one of mx.init's patterns) the way Gluon does."""
    beta = (mx.sym.Variable(name + '_beta', init=mx.init.Constant(beta_init))
            if beta_init is not None else mx.sym.Variable(name + '_beta'))
    mean = mx.sym.Variable(name + '_running_mean', init=mx.init.Zero())
    var = mx.sym.Variable(name + '_running_var', init=mx.init.One())
    return mx.sym.BatchNorm(x, gamma=mx.sym.Variable(name + '_gamma'), beta=beta,
                            moving_mean=mean, moving_var=var, name=name, **BN_SETTINGS)


def apply_ops(x, ops, prefix, index, channels=None, kernel=3, stride=1):
    """The op sequence `ops` of weight layer `index` (units.make_ops, as symbols)."""
    for op in ops:
        if op == 'conv':
            x = conv(x, '%sconv%s' % (prefix, index), channels, kernel, stride)
        elif op == 'bn':
            x = batch_norm(x, '%sbn%s' % (prefix, index))
        else:
            x = mx.sym.Activation(x, act_type='relu', name='%srelu%s' % (prefix, index))
    return x


def shortcut_conv(x, prefix, channels, stride, bn, bias=None):
    """units.ShortcutConv: 1x1 conv, then BN where the placement says so; `bias` (the gate
    bias b_g of Table 1) is BN's beta with BN, the conv's bias without."""
    x = conv(x, prefix + 'conv', channels, 1, stride, bias=None if bn else bias)
    return batch_norm(x, prefix + 'bn', beta_init=bias) if bn else x


def zero_pad_shortcut(x, extra_channels, stride, name):
    """Option A of the first ResNet paper: subsample by `stride`, append zero channels."""
    if stride > 1:
        x = mx.sym.slice(x, begin=(None,) * 4, end=(None,) * 4, step=(1, 1, stride, stride),
                         name=name + 'subsample')
    zeros = mx.sym.broadcast_to(mx.sym.zeros_like(mx.sym.slice_axis(x, axis=1, begin=0, end=1)),
                                shape=(0, extra_channels, 0, 0))
    return mx.sym.concat(x, zeros, dim=1, name=name + 'pad')


def residual_unit(x, prefix, in_channels, channels, stride, block='basic', placement='full_preact',
                  shortcut='identity', preact='own', projection='B', bottleneck_stride='1x1',
                  **shortcut_opts):
    """One unit (Eqn. 1-2, Fig. 4), the symbol twin of units.ResidualUnit.

    preact 'shared': where the unit changes width or stride, its pre-activation is applied
    before the split and the projection reads the pre-activated tensor; 'none': the first
    unit, pre-activated by the stem; 'own': the clean identity path of Fig. 1(b)."""
    plan = unit_plan(in_channels, channels, stride, block, placement, shortcut, preact,
                     projection, bottleneck_stride, **shortcut_opts)
    for op, i, c, k, st in plan.ops[:plan.n_pre]:      # shared by both paths
        x = apply_ops(x, (op,), prefix, i, c, k, st)
    f = x
    for op, i, c, k, st in plan.ops[plan.n_pre:]:
        f = apply_ops(f, (op,), prefix, i, c, k, st)
    if plan.shortcut == 'conv':
        s = shortcut_conv(x, prefix + 'sc_', channels, stride, plan.place.shortcut_bn)
    elif plan.shortcut == 'pad':
        s = zero_pad_shortcut(x, channels - in_channels, stride, prefix + 'sc_')
    else:
        s = x
    # the gating shortcuts' learned g = W_g s + b_g (Table 1), as units.ResidualUnit.gate
    g = (shortcut_conv(s, prefix + 'gate_', channels, 1, plan.place.shortcut_bn,
                       plan.opts['gate_bias']) if plan.combine.gate else None)
    y = plan.combine.combine(mx.sym, s, f, g, plan.opts)   # the Gluon unit's own function
    return apply_ops(y, plan.place.post, prefix, '_post')   # the paper's f after the addition


def stem(x, stem):
    """conv-BN-ReLU [+ 3x3/2 max pool] of a tables.Stem (CIFAR 3x3/16; ImageNet 7x7/64/2 + pool)."""
    x = conv(x, 'stem_conv', stem.channels, stem.kernel, stem.stride)
    x = mx.sym.Activation(batch_norm(x, 'stem_bn'), act_type='relu', name='stem_relu')
    if stem.max_pool:
        x = mx.sym.Pooling(x, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type='max',
                           pooling_convention='valid', layout='NCHW', name='stem_pool')
    return x


def resnet_symbol(spec, classes=10, placement='full_preact', shortcut='identity', projection='B',
                  bottleneck_stride='1x1', **shortcut_opts):
    """The logits of a ResNet of `spec` (resnet.ArchSpec), the symbol twin of resnet.ResNet:
    stem BN-ReLU before the first split, shared pre-activations where units reshape, the
    classifier's pre-activation (extra BN-ReLU in (e)) after the last unit, global average
    pooling (so any input size works), a fully connected layer."""
    if classes < 1:
        raise ValueError('classes must be a positive number, got %d' % classes)
    place = lookup(PLACEMENTS, placement, 'placement')
    unit_kw = dict(block=spec.block, placement=placement, shortcut=shortcut,
                   projection=projection, bottleneck_stride=bottleneck_stride, **shortcut_opts)
    family = FAMILIES[spec.family]
    x = stem(mx.sym.Variable('data'), family.stem)
    in_channels = family.stem.channels
    for s, (count, width, stride) in enumerate(zip(spec.units, spec.widths, spec.strides), 1):
        for u in range(1, count + 1):
            preact = ('none' if s == 1 else 'shared') if u == 1 else 'own'
            x = residual_unit(x, 'stage%d_unit%d_' % (s, u), in_channels, width,
                              stride if u == 1 else 1, preact=preact, **unit_kw)
            in_channels = width
    x = apply_ops(x, preact_ops(place), '', '_final')
    # the mean of models.resnet.GlobalAvgPool (oneDNN's global pooling backward is slow)
    x = mx.sym.mean(x, axis=(2, 3), keepdims=True, name='pool')
    return mx.sym.FullyConnected(x, weight=mx.sym.Variable('fc_weight'),
                                 bias=mx.sym.Variable('fc_bias'), num_hidden=classes,
                                 no_bias=False, flatten=True, name='fc')


def get_symbol(name_or_depth, family='cifar', version='v2', **overrides):
    """Logits symbol for a registry name (with get_model's overrides) or a depth.

    `get_symbol('cifar_resnet110_v1', shortcut='gate_exclusive')` is the twin of
    `gluon_resnet_v2.get_model` with the same arguments; `get_symbol(56, 'cifar', 'v2')`
    the twin of `build_resnet(56, 'cifar', 'v2')`."""
    if isinstance(name_or_depth, str):
        arch = dict(registry.architecture(name_or_depth), **overrides)   # overrides win, as in get_model
    else:
        arch = dict(overrides, depth=name_or_depth, family=family, version=version)
    return _build(**arch)


def _build(depth, family='cifar', version='v2', **options):
    """registry.build_resnet, returning a symbol."""
    spec, kwargs = registry.resolve(depth, family, version, **options)
    return resnet_symbol(spec, **kwargs)


def with_softmax(logits):
    """The Module training head: SoftmaxOutput (label `softmax_label`). Its backward is
    softmax - onehot per sample, the gradient of the summed cross-entropy."""
    return mx.sym.SoftmaxOutput(logits, name='softmax')


def get_training_symbol(name_or_depth, *args, **overrides):
    """`get_symbol(...)` with the SoftmaxOutput head, for mx.mod.Module training."""
    return with_softmax(get_symbol(name_or_depth, *args, **overrides))
