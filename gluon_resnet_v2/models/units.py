"""The residual unit of "Identity Mappings in Deep Residual Networks" with its ablations as data.

A unit computes  y = combine(h(x), F(x)),  x_next = post(y)   (paper Eqn. 1-2), where

* F, the residual branch, is K weight layers (K = 2 basic, 3 bottleneck, 1 for the
  "1-layer" ResNet-110 of Table 3) whose BN/ReLU ordering is looked up in `PLACEMENTS`
  (Table 2 / Fig. 4 (a)-(e));
* h, the shortcut, is the identity, or a 1x1 projection (option B) / zero padding
  (option A) where the unit changes width or stride, or a 1x1 conv in every unit
  (the `conv1x1` row of Table 1);
* combine is one of the Table 1 / Fig. 2 shortcut variants in `SHORTCUTS`.

The tables (placements, shortcuts, branches) and the unit plan live in tables.py, shared
with the symbol builder of `legacy_symbol`.

Parameter names are fixed by explicit prefixes (`conv1_`, `bn1_`, `sc_conv_`, ...) so the
symbolic builder in `legacy_symbol` can name its variables identically.
"""
from mxnet import init
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from .tables import unit_plan


def make_ops(ops, index, channels=None, kernel=3, stride=1, norm_layer=nn.BatchNorm):
    """Blocks for an op sequence of weight layer `index`: conv{index}, bn{index}, relu.

    `norm_layer(prefix=..., **kwargs)` makes every BN of the network (nn.BatchNorm, or
    SyncBatchNorm for --sync-bn: the same parameters under the same names)."""
    blocks = []
    for op in ops:
        if op == 'conv':
            blocks.append(nn.Conv2D(channels, kernel, stride, kernel // 2, use_bias=False,
                                    prefix='conv%s_' % index))
        elif op == 'bn':
            blocks.append(norm_layer(prefix='bn%s_' % index))
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

    def __init__(self, channels, stride, bn, bias=None, prefix=None, norm_layer=nn.BatchNorm):
        super().__init__(prefix=prefix)
        with self.name_scope():
            bias_init = init.Constant(bias) if bias is not None else 'zeros'
            self.conv = nn.Conv2D(channels, 1, stride, use_bias=(bias is not None and not bn),
                                  bias_initializer=bias_init, prefix='conv_')
            self.bn = norm_layer(beta_initializer=bias_init, prefix='bn_') if bn else None

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
    norm_layer: the class (or factory) of every BN of the unit, see make_ops.
    """

    def __init__(self, in_channels, channels, stride, block='basic', placement='full_preact',
                 shortcut='identity', preact='own', projection='B', bottleneck_stride='1x1',
                 prefix=None, norm_layer=nn.BatchNorm, **shortcut_opts):
        super().__init__(prefix=prefix)
        plan = unit_plan(in_channels, channels, stride, block, placement, shortcut, preact,
                         projection, bottleneck_stride, **shortcut_opts)
        with self.name_scope():
            ops = [b for op, i, c, k, st in plan.ops
                   for b in make_ops((op,), i, c, k, st, norm_layer)]
            self.preact = sequential(ops[:plan.n_pre], prefix='')
            self.body = sequential(ops[plan.n_pre:], prefix='')
            if plan.shortcut == 'conv':
                self.shortcut = ShortcutConv(channels, stride, plan.place.shortcut_bn,
                                             prefix='sc_', norm_layer=norm_layer)
            elif plan.shortcut == 'pad':
                self.shortcut = ZeroPadShortcut(channels - in_channels, stride, prefix='sc_')
            else:
                self.shortcut = None
            # the learned gate g = W_g s + b_g of the gating shortcuts (Table 1)
            self.gate = (ShortcutConv(channels, 1, plan.place.shortcut_bn,
                                      bias=plan.opts['gate_bias'], prefix='gate_',
                                      norm_layer=norm_layer)
                         if plan.combine.gate else None)
            self.combine, self.opts = plan.combine.combine, plan.opts
            self.post = sequential(make_ops(plan.place.post, '_post', norm_layer=norm_layer),
                                   prefix='')

    def hybrid_forward(self, F, x):
        x = self.preact(x)   # empty unless the pre-activation is shared by both paths
        f = self.body(x)
        s = self.shortcut(x) if self.shortcut is not None else x
        g = self.gate(s) if self.gate is not None else None
        return self.post(self.combine(F, s, f, g, self.opts))
