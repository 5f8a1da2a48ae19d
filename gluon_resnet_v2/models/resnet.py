"""Whole networks: the CIFAR (6n+2 / 9n+2 / 3n+2) and ImageNet ResNets of the paper.

Paper-exact rules (../shared/PAPER.md, "Architecture rules"; the authors' resnet-1k-layers
and fb.resnet.torch pre-activation code):
* stem: conv-BN-ReLU (3x3/16 on CIFAR; 7x7/64 stride 2 + 3x3 max pool on ImageNet). For
  pre-activation units this BN-ReLU *is* the first unit's pre-activation, applied before
  the split into two paths, so the first unit has none of its own;
* the first unit of every later stage changes width and stride; its pre-activation is
  shared by both paths and the 1x1 projection (option B) reads the pre-activated tensor;
* after the last unit, the pre-activation of the classifier (an extra BN-ReLU in (e));
* global average pooling (8x8 on CIFAR) and a fully connected layer. Pooling is global,
  so ImageNet nets accept any test crop (e.g. the paper's 320x320).
"""
from dataclasses import dataclass
from typing import Tuple

from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from .units import PLACEMENTS, ResidualUnit, check_choice, lookup, make_ops, preact_ops

# weight layers in a unit, and the output/input width ratio of a unit
LAYERS_PER_UNIT = {'basic': 2, 'bottleneck': 3, '1layer': 1}
EXPANSION = {'basic': 1, 'bottleneck': 4, '1layer': 1}

# ImageNet units per stage, from the first ResNet paper's Table 1 and this paper's Sec. 5
# (ResNet-200: [3, 24, 36, 3]); depth = LAYERS_PER_UNIT * sum(units) + 2.
IMAGENET_UNITS = {
    18: ('basic', (2, 2, 2, 2)), 34: ('basic', (3, 4, 6, 3)),
    50: ('bottleneck', (3, 4, 6, 3)), 101: ('bottleneck', (3, 4, 23, 3)),
    152: ('bottleneck', (3, 8, 36, 3)), 200: ('bottleneck', (3, 24, 36, 3)),
}


@dataclass(frozen=True)
class ArchSpec:
    family: str                # 'cifar' | 'imagenet': selects the stem
    depth: int                 # weight layers on the longest path: stem + units + classifier
    block: str                 # 'basic' | 'bottleneck' | '1layer'
    units: Tuple[int, ...]     # residual units per stage
    widths: Tuple[int, ...]    # output channels of each stage's units
    strides: Tuple[int, ...]   # stride of each stage's first unit


def default_cifar_block(depth):
    """The paper's choice: bottleneck for the 9n+2 depths from 164 up, else basic."""
    return 'bottleneck' if depth >= 164 and (depth - 2) % 9 == 0 else 'basic'


def cifar_spec(depth, block=None):
    """Three stages of n units at widths 16/32/64 (x4 for bottleneck), strides 1/2/2."""
    block = block or default_cifar_block(depth)
    check_choice(block, tuple(LAYERS_PER_UNIT), 'block')
    per_stage = 3 * LAYERS_PER_UNIT[block]
    n, rest = divmod(depth - 2, per_stage)
    if n < 1 or rest:
        raise ValueError('invalid CIFAR depth %d for %s units: the depth must be %dn+2 '
                         '(e.g. %s)' % (depth, block, per_stage,
                                        ', '.join(str(per_stage * k + 2) for k in (1, 2, 3, 6, 18))))
    widths = tuple(w * EXPANSION[block] for w in (16, 32, 64))
    return ArchSpec('cifar', depth, block, (n,) * 3, widths, (1, 2, 2))


def imagenet_spec(depth, block=None):
    """Four stages at widths 64..512 (x4 for bottleneck), strides 1/2/2/2."""
    table_block, units = lookup(IMAGENET_UNITS, depth, 'ImageNet depth')
    if block not in (None, table_block):
        raise ValueError('ImageNet ResNet-%d uses %s units; choose one of %s for %s units'
                         % (depth, table_block, ', '.join(str(d) for d, (b, _) in
                                                          sorted(IMAGENET_UNITS.items())
                                                          if b == block) or 'none', block))
    widths = tuple(w * EXPANSION[table_block] for w in (64, 128, 256, 512))
    return ArchSpec('imagenet', depth, table_block, units, widths, (1, 2, 2, 2))


class ResNet(HybridBlock):
    """A ResNet of `spec` built from one `ResidualUnit` type (paper Sec. 3-4, Fig. 4).

    placement: Table 2 / Fig. 4 name ('original' = v1, 'full_preact' = v2).
    shortcut: Table 1 / Fig. 2 name, with its options (`scale`, `scale_residual`,
        `gate_bias`, `drop_rate`) passed through **shortcut_opts.
    projection: 'B' (1x1 conv) or 'A' (zero padding) where a unit changes dimensions.
    bottleneck_stride: '1x1' (the authors' resnet-1k-layers code) or '3x3'
        (fb.resnet.torch and gluoncv): which conv of a bottleneck carries the stride.
    """

    def __init__(self, spec, classes=10, placement='full_preact', shortcut='identity',
                 projection='B', bottleneck_stride='1x1', prefix='', **shortcut_opts):
        super().__init__(prefix=prefix)
        if classes < 1:
            raise ValueError('classes must be a positive number, got %d' % classes)
        self.spec = spec
        place = lookup(PLACEMENTS, placement, 'placement')
        unit_kw = dict(block=spec.block, placement=placement, shortcut=shortcut,
                       projection=projection, bottleneck_stride=bottleneck_stride, **shortcut_opts)
        with self.name_scope():
            self.features = nn.HybridSequential(prefix='')
            self.features.add(*self._stem(spec.family))
            in_channels = 64 if spec.family == 'imagenet' else 16
            for s, (count, width, stride) in enumerate(zip(spec.units, spec.widths, spec.strides), 1):
                stage = nn.HybridSequential(prefix='stage%d_' % s)
                with stage.name_scope():
                    for u in range(1, count + 1):
                        first = u == 1
                        preact = ('none' if s == 1 else 'shared') if first else 'own'
                        stage.add(ResidualUnit(in_channels, width, stride if first else 1,
                                               preact=preact, prefix='unit%d_' % u, **unit_kw))
                        in_channels = width
                self.features.add(stage)
            # the classifier is the last weight layer: it gets the pre-activation too
            self.features.add(*make_ops(preact_ops(place), '_final'))
            self.features.add(nn.GlobalAvgPool2D())
            self.output = nn.Dense(classes, prefix='fc_')

    @staticmethod
    def _stem(family):
        if family == 'cifar':
            conv = nn.Conv2D(16, 3, 1, 1, use_bias=False, prefix='stem_conv_')
            return [conv, nn.BatchNorm(prefix='stem_bn_'), nn.Activation('relu')]
        conv = nn.Conv2D(64, 7, 2, 3, use_bias=False, prefix='stem_conv_')
        return [conv, nn.BatchNorm(prefix='stem_bn_'), nn.Activation('relu'),
                nn.MaxPool2D(3, 2, 1)]

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))
