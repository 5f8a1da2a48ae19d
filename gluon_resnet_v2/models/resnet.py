"""Whole networks: the CIFAR (6n+2 / 9n+2 / 3n+2) and ImageNet ResNets of the paper.

The depth formulas, stems and per-family defaults are tables (tables.FAMILIES). Paper-exact rules (../shared/PAPER.md, "Architecture rules"; the authors' resnet-1k-layers
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
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from .tables import FAMILIES, PLACEMENTS, lookup, preact_ops
from .units import ResidualUnit, make_ops


class GlobalAvgPool(HybridBlock):
    """Global average pooling as a mean over height and width.

    Not nn.GlobalAvgPool2D: in MXNet 1.9.1 its oneDNN backward returns the gradient in a
    layout (acdB16b) that sends the backward of the final BN-ReLU to oneDNN's reference
    implementations (DNNL_VERBOSE: `bnorm_ref:any`, `pooling_v2,ref:any`), measured 5 %
    of a ResNet-110 training step (README, Benchmarks). A mean's gradient comes back in
    MXNet's default layout, which BatchNorm's backward reorders to its own."""

    def hybrid_forward(self, F, x):
        return F.mean(x, axis=(2, 3), keepdims=True)


class ResNet(HybridBlock):
    """A ResNet of `spec` built from one `ResidualUnit` type (paper Sec. 3-4, Fig. 4).

    placement: Table 2 / Fig. 4 name ('original' = v1, 'full_preact' = v2).
    shortcut: Table 1 / Fig. 2 name, with its options (`scale`, `scale_residual`,
        `gate_bias`, `drop_rate`) passed through **shortcut_opts.
    projection: 'B' (1x1 conv) or 'A' (zero padding) where a unit changes dimensions.
    bottleneck_stride: '1x1' (the authors' resnet-1k-layers code) or '3x3'
        (fb.resnet.torch and gluoncv): which conv of a bottleneck carries the stride.
    norm_layer: makes every BN (default nn.BatchNorm; SyncBatchNorm for --sync-bn, whose
        parameters have the same names, so either network loads the other's weights).
    """

    def __init__(self, spec, classes=10, placement='full_preact', shortcut='identity',
                 projection='B', bottleneck_stride='1x1', prefix='', norm_layer=None,
                 **shortcut_opts):
        super().__init__(prefix=prefix)
        if classes < 1:
            raise ValueError('classes must be a positive number, got %d' % classes)
        self.spec = spec
        place = lookup(PLACEMENTS, placement, 'placement')
        norm_layer = norm_layer or nn.BatchNorm
        unit_kw = dict(block=spec.block, placement=placement, shortcut=shortcut,
                       projection=projection, bottleneck_stride=bottleneck_stride,
                       norm_layer=norm_layer, **shortcut_opts)
        with self.name_scope():
            self.features = nn.HybridSequential(prefix='')
            stem = FAMILIES[spec.family].stem
            self.features.add(*self._stem(stem, norm_layer))
            in_channels = stem.channels
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
            self.features.add(*make_ops(preact_ops(place), '_final', norm_layer=norm_layer))
            self.features.add(GlobalAvgPool())
            self.output = nn.Dense(classes, prefix='fc_')

    @staticmethod
    def _stem(stem, norm_layer):
        layers = [nn.Conv2D(stem.channels, stem.kernel, stem.stride, stem.kernel // 2,
                            use_bias=False, prefix='stem_conv_'),
                  norm_layer(prefix='stem_bn_'), nn.Activation('relu')]
        return layers + [nn.MaxPool2D(3, 2, 1)] if stem.max_pool else layers

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))
