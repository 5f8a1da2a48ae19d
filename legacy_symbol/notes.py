"""The MXNet notes' network, kept as they wrote it (../shared/seeds/000_*.txt, "Implementation").

The notes' `residual_unit` / `ResNet(units, nums)` are the `mx.sym` code this project grew
from. They are kept faithful on purpose, quirks included, so that what the Gluon port
changed and why stays checkable; every quirk is marked `QUIRK` below against the rule it
breaks in ../shared/PAPER.md, "Architecture rules that reimplementations get wrong"
(`legacy_symbol.paper` is the paper-exact symbol). The only addition: the build runs in
a fresh `mx.name.NameManager`, so the unnamed stem conv is `convolution0` however many
networks a process builds (its name would otherwise depend on a global counter).

`ResNet(12, [64, 128, 256])` on a 32x32 CIFAR batch of N (verified by `infer_shape` in
tests/test_legacy_symbol.py):

    stem conv         (N, 16, 32, 32)
    stage 64,  r641.. (N, 64, 16, 16)    the first unit of *every* stage has stride 2
    stage 128         (N, 128, 8, 8)
    stage 256         (N, 256, 4, 4)     = relu1 output
    pool1 3x3 avg     (N, 256, 2, 2)     stride 1, no padding: 4 - 3 + 1 = 2
    flat1             (N, 1024)          = 256 * 2 * 2, the FC input size
    fc1 / softmax     (N, 10)            fc1_weight (10, 1024)

36 units of two 3x3 convs: 74 weight layers (6n+2 with n=12), a "ResNet-74" at 4x the
paper's widths. 18,268,586 parameters (arguments without data/label; 256 of them,
`batch1_gamma`, are pinned to 1 by fix_gamma, so 18,268,330 are learned) plus 21,536
BatchNorm running statistics. The paper's ResNet-110 has 1.7M.
"""
import mxnet as mx

NOTES_UNITS = 12                  # units per stage in the notes' call
NOTES_WIDTHS = (64, 128, 256)     # QUIRK: the paper's CIFAR stages are 16/32/64 wide
NOTES_PARAM_COUNT = 18268586      # all weight arguments, incl. the pinned batch1_gamma
NOTES_FIXED_GAMMA = 256           # batch1_gamma: fix_gamma=True keeps it at 1
NOTES_AUX_COUNT = 21536           # running mean + var of every BatchNorm
NOTES_POOL_SHAPE = (256, 2, 2)    # per sample, after the 3x3 average pooling
NOTES_FC_INPUTS = 1024            # 256 * 2 * 2


def residual_unit(x, channels, name, same_shape=True):
    """The notes' pre-activation unit: BN-ReLU-conv-BN-ReLU-conv + shortcut (Fig. 4(e))."""
    # QUIRK: every unit that is not `same_shape` has stride 2, including the first unit of
    # the first stage; the paper's stages have strides 1/2/2 (32, 16, 8 pixels), here they
    # are 16, 8, 4.
    stride = 1 if same_shape else 2
    # QUIRK: this BN-ReLU is the unit's own, in the residual branch only. The paper's rule:
    # where a unit changes width or stride its BN-ReLU is shared by both paths, and the
    # first unit's comes right after the stem conv, before the split.
    net = mx.sym.BatchNorm(data=x, fix_gamma=False, name='%s_bn1' % (name), momentum=0.9)
    net = mx.sym.Activation(data=net, act_type='relu', name='%s_relu1' % (name))
    # QUIRK: mx.sym.Convolution has a bias by default; the reference convs have none
    # ("BN follows every weight layer"). eps is mx.sym.BatchNorm's 1e-3, not 1e-5.
    net = mx.sym.Convolution(data=net, num_filter=channels, kernel=(3, 3),
                             pad=(1, 1), stride=(stride, stride), name='%s_conv1' % (name))
    net = mx.sym.BatchNorm(data=net, fix_gamma=False, name='%s_bn2' % (name), momentum=0.9)
    net = mx.sym.Activation(data=net, act_type='relu', name='%s_relu2' % (name))
    net = mx.sym.Convolution(data=net, num_filter=channels, kernel=(3, 3),
                             pad=(1, 1), name='%s_conv2' % (name))
    if not same_shape:
        # QUIRK: the 1x1 projection (option B, correctly only where dimensions change)
        # reads the raw input x, not the pre-activated tensor the paper's rule prescribes.
        x = mx.sym.Convolution(data=x, num_filter=channels, pad=(0, 0),
                               stride=(stride, stride), kernel=(1, 1), name="%s_conv3" % (name))
    return net + x


def ResNet(units, nums):  # noqa: N802  (the notes' name)
    """The notes' network: `units` units per stage at the widths `nums`, SoftmaxOutput."""
    with mx.name.NameManager():   # fresh counter: the stem conv is always `convolution0`
        data = mx.sym.Variable('data')
        # QUIRK: the stem is a bare conv. The paper's stem is conv-BN-ReLU, that BN-ReLU
        # being the first unit's pre-activation before the split; here the first unit's
        # projection reads the un-normalised, un-activated conv output.
        net = mx.sym.Convolution(data, num_filter=16, kernel=(3, 3), pad=(1, 1))

        # QUIRK: unit names 'r%s%s' % (num, i) run digits together ('r641' is stage 64,
        # unit 1; 'r6412' unit 12): unique here, but not parseable.
        for num in nums:
            net = residual_unit(net, num, 'r%s%s' % (num, 1), False)
            for i in range(2, units + 1):
                net = residual_unit(net, num, 'r%s%s' % (num, i))

        # The extra BN-ReLU after the last unit, as the paper's rule asks ...
        # QUIRK: ... but with mx.sym.BatchNorm's defaults fix_gamma=True (gamma pinned to 1,
        # unlike every other BN here) and eps=1e-3.
        net = mx.sym.BatchNorm(net, name='batch1', momentum=0.9)
        net = mx.sym.Activation(net, act_type='relu', name='relu1')
        # QUIRK: a 3x3 average pool with stride 1, not the paper's global (8x8) pooling: on
        # the 4x4 map it leaves 2x2, so the FC sees 1024 inputs and the net only takes
        # 32x32 inputs.
        net = mx.sym.Pooling(net, pool_type='avg', kernel=(3, 3), name='pool1')
        net = mx.sym.Flatten(net, name='flat1')
        net = mx.sym.FullyConnected(net, name='fc1', num_hidden=10)
        net = mx.sym.SoftmaxOutput(net, name='softmax')
    return net


def notes_network():
    """The network the notes train: `ResNet(12, [64, 128, 256])`."""
    return ResNet(NOTES_UNITS, list(NOTES_WIDTHS))


# The quirks against the paper's rules as data (README.md has them as a table), for a CLI to print.
QUIRKS = (
    ('stem', 'bare 3x3 conv, no BN-ReLU',
     "conv-BN-ReLU; its BN-ReLU is the first unit's pre-activation, before the split"),
    ('projection input', 'raw input x', 'the pre-activated tensor (BN-ReLU shared by both paths)'),
    ('widths', '64 / 128 / 256', '16 / 32 / 64 (basic units)'),
    ('strides', '2 / 2 / 2 (maps 16, 8, 4)', '1 / 2 / 2 (maps 32, 16, 8)'),
    ('pooling', '3x3 average, stride 1 -> 2x2, FC of 1024 inputs',
     'global 8x8 average -> 64 inputs'),
    ('final BN', 'fix_gamma=True (gamma pinned to 1), eps 1e-3', 'a learned BN like the others'),
    ('conv bias', 'every conv has one (mx.sym default)', 'none: BN follows every weight layer'),
    ('BN eps', '1e-3 (mx.sym.BatchNorm default)', '1e-5 (Torch reference, Gluon default)'),
    ('depth', '12 units/stage: 74 layers, 18.27M parameters', 'ResNet-110: 18 units/stage, 1.7M'),
)
