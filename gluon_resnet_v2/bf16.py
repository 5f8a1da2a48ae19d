"""bfloat16 training on CPUs (--dtype bfloat16): where it can run, and its cast plan.

bfloat16 keeps float32's 8 exponent bits and 7 of its 23 mantissa bits, so it needs no
loss scaling (its range is float32's); what it loses is precision (about 3 significant
digits). MXNet 1.9's only bfloat16 kernels are oneDNN's, for CPUs with AVX512-BF16
(measured on a 2-core AMD Zen 5: ResNet-110's training step 1.7x float32's, ResNet-20's
1.15-1.5x, the same test error within 0.33 points: docs/results/accuracy-bf16.md; on an
AVX2-only CPU oneDNN fails at the first convolution, "could not create a primitive
descriptor").

The cast plan is MXNet AMP's (`mxnet.contrib.amp.lists.symbol_bf16`), applied to the
network's graph with `amp.convert_symbol`, never with `amp.init()`: init rewrites
MXNet's operator namespaces for the whole process, so every network built after it,
float32 ones too, would compute in bfloat16. Here one graph is converted and nothing
else changes:
* convolutions and the classifier (FullyConnected) take bfloat16 inputs and weights,
  each an `amp_cast` of the float32 array, and give bfloat16 outputs;
* the ops that work in either type (BatchNorm, ReLU, pooling, the residual addition)
  run in the type of their inputs (the wider one where they differ), so activations
  stay bfloat16 from one convolution to the next; BatchNorm's gamma, beta and running
  statistics stay
  float32 (AMP's BF16_USE_FP32_PARAMS) and oneDNN accumulates its mean and variance in
  float32;
* the network's output is cast to float32, so the softmax and the loss are float32.
The parameters are the float32 network's own (the converted graph is a SymbolBlock on
the same Parameter objects): the gradients reach them through the casts as float32,
the optimizer (its momentum included) updates float32 weights, and checkpoints,
`evaluate` and `export` see a float32 network.
"""
import os

FLAG = 'avx512_bf16'      # /proc/cpuinfo: AVX512-BF16 (Intel Cooper Lake+, AMD Zen 4+)
INPUT = 'data'


def cpu_flags(path='/proc/cpuinfo'):
    """The CPU's feature flags (Linux), an empty set where they cannot be read."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith('flags'):
                    return frozenset(line.split(':', 1)[1].split())
    except OSError:
        pass
    return frozenset()


def refusal(device_types, flags, onednn_built, onednn_on):
    """Why a bfloat16 run cannot train with these facts ('<problem>: <fix>'), or None.

    A pure function of what check() gathers, so every case is testable on any machine:
    `device_types` of the run's contexts, the CPU's `flags`, whether MXNet was built with
    oneDNN (MKLDNN) and whether it is on (MXNET_MKLDNN_ENABLED, which --deterministic sets
    to 0 before MXNet is imported: native kernels only)."""
    if any(t != 'cpu' for t in device_types):
        return ('--dtype bfloat16 is for CPUs (MXNet 1.9 has bfloat16 kernels only in '
                'oneDNN): use --dtype float16 on --gpus')
    if not onednn_built:
        return ('--dtype bfloat16 needs oneDNN (MKLDNN), which this MXNet build lacks: install '
                'the mxnet wheel with oneDNN (pip install mxnet==1.9.1), or use --dtype float32')
    if not onednn_on:
        return ('--dtype bfloat16 needs oneDNN\'s kernels, which MXNET_MKLDNN_ENABLED=0 turns off '
                '(--deterministic sets it: bfloat16 runs are not bit-reproducible): drop '
                '--deterministic or unset MXNET_MKLDNN_ENABLED, or use --dtype float32')
    if FLAG not in flags:
        return ('--dtype bfloat16 needs a CPU with AVX512-BF16 (no %s among this CPU\'s flags; '
                'oneDNN has no bfloat16 convolution without it): use --dtype float32' % FLAG)
    return None


def check(ctxs):
    """Refuse (UserError) a bfloat16 run on `ctxs` that cannot train in this process."""
    import mxnet as mx
    from .errors import UserError
    why = refusal([c.device_type for c in ctxs], cpu_flags(),
                  mx.runtime.Features().is_enabled('MKLDNN'),
                  os.environ.get('MXNET_MKLDNN_ENABLED', '1') != '0')
    if why:
        raise UserError(why)


def cast_symbol(sym, data_names=(INPUT,)):
    """`sym` (a float32 graph) with AMP's bfloat16 casts; `data_names` are its float32
    inputs that are not parameters (the images; a Module's label)."""
    from mxnet.contrib import amp       # importing it patches nothing (amp.init() would)
    return amp.convert_symbol(sym, target_dtype='bfloat16', data_names=list(data_names),
                              cast_optional_params=False)      # parameters stay float32


def training_block(net):
    """A block computing `net` (float32, shapes known) with the bfloat16 cast plan, on
    net's own Parameters: train it, and the float32 `net` holds what it learnt."""
    import mxnet as mx
    from mxnet import gluon
    data = mx.sym.var(INPUT, dtype='float32')
    return gluon.SymbolBlock(cast_symbol(net(data)), data, params=net.collect_params())


def node_dtypes(sym, inputs=(INPUT,)):
    """{output name: numpy dtype} of every node of `sym`, inputs float32 (for tests and
    for reading what a plan does). bfloat16 shows as MXNet's structured dtype."""
    internals = sym.get_internals()
    _, types, _ = internals.infer_type(**{k: 'float32' for k in inputs})
    return dict(zip(internals.list_outputs(), types))
