"""The two sides of the equivalence check: one Gluon run and one Module run of a case.

Both return the same dict: logits in inference and train mode, every parameter gradient
for one given head gradient dL/dlogits, the BN running statistics after the train-mode
forward and after the backward, the same again under 'softmax' for each framework's own
loss (SoftmaxOutput / SoftmaxCrossEntropyLoss), and the logits of a Module bound without
gradients (for Gluon, its inference / train-mode logits: Gluon has no such bind). The
default-backend child process of the equivalence check runs `module_run` as well.
"""
import collections
import os

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

import gluon_resnet_v2 as grv
from gluon_resnet_v2 import environ

from gluon_resnet_v2.models import FAMILIES, registry

from legacy_symbol import paper, weights

from . import child

# One case: the network, its starting weights (numpy float32) and one batch.
Setup = collections.namedtuple('Setup', 'name overrides logits args aux x y')


def make_case(name, overrides, batch, seed):
    """He-initialised weights with randomised BN gamma/beta/statistics, and a batch."""
    net = grv.init_model(grv.get_model(name, **overrides))
    rng = np.random.RandomState(seed)
    size = input_size(name)
    x = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    net(mx.nd.array(x[:1]))                       # completes the deferred shapes
    randomise_batchnorm(net, rng)
    logits = paper.get_symbol(name, **overrides)
    args, aux = weights.gluon_to_symbol(net, logits, data_shape=x.shape)
    classes = logits.infer_shape(data=x.shape)[1][0][1]
    y = rng.randint(0, classes, batch).astype(np.float32)
    return Setup(name, overrides, logits, {k: v.asnumpy() for k, v in args.items()},
                 {k: v.asnumpy() for k, v in aux.items()}, x, y)


def input_size(name):
    """32x32 (CIFAR's), or twice the registered network's total stride where that is more
    (ImageNet's stem and pool divide by 4, its stages by 8: 64x64; the nets pool globally)."""
    arch = registry.architecture(name)
    fam = FAMILIES[arch['family']]
    stages = fam.spec(arch['depth'], arch.get('block')).strides
    stride = fam.stem.stride * (2 if fam.stem.max_pool else 1) * int(np.prod(stages))
    return max(32, 2 * stride)


def randomise_batchnorm(net, rng):
    """gamma ~ U(0.5, 1.5), beta ~ N(0, 0.2), mean ~ N(0, 0.2), var ~ U(0.5, 2): at the
    initial 1, 0, 0, 1 a swapped gamma/beta or mean/var would compute the same thing."""
    draws = {'gamma': lambda s: rng.uniform(0.5, 1.5, s), 'beta': lambda s: rng.normal(0, 0.2, s),
             'running_mean': lambda s: rng.normal(0, 0.2, s),
             'running_var': lambda s: rng.uniform(0.5, 2.0, s)}
    for name, p in net.collect_params().items():
        for suffix, draw in draws.items():
            if name.endswith('_' + suffix) and not name.endswith('gate_bn_beta'):   # b_g stays
                p.set_data(mx.nd.array(draw(p.shape)))


def _nd(arrays, dtype):
    return {k: mx.nd.array(v, dtype=dtype) for k, v in arrays.items()}


def _stats(arrays):
    mx.nd.waitall()   # BatchNorm writes its running statistics untracked by asnumpy's wait
    return {k: v.asnumpy() for k, v in arrays.items()}


def exact_head(logits, y):
    """dL/dlogits of the summed softmax cross-entropy, softmax - onehot, in float64."""
    z = np.asarray(logits, np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), np.asarray(y, int)] -= 1
    return p


def _gluon_net(setup, dtype):
    """A fresh Gluon net with the case's starting weights, hybridized as the engine runs it."""
    net = grv.get_model(setup.name, **setup.overrides)
    weights.symbol_to_gluon(_nd(setup.args, 'float32'), _nd(setup.aux, 'float32'), net)
    net.cast(dtype)
    net.hybridize(static_alloc=True, static_shape=True)
    return net


def gluon_run(setup, dtype, train=True):
    """Gluon, autograd. Train mode twice from the same start: backpropagating the exact head
    gradient (compared with the Module fed the same one), and the Gluon loss (compared with
    the Module's SoftmaxOutput, the notes' training step)."""
    x, y = mx.nd.array(setup.x, dtype=dtype), mx.nd.array(setup.y, dtype=dtype)
    net = _gluon_net(setup, dtype)
    out = {'inference': net(x).asnumpy()}          # leaves the running statistics alone
    out['bind_inference'] = out['inference']      # Gluon has no bind; same answer expected
    if train:
        out.update(_gluon_train(net, x, y, setup, head=True))
        out['bind_train'] = out['train']
        out['softmax'] = _gluon_train(_gluon_net(setup, dtype), x, y, setup, head=False)
    return out


def _gluon_train(net, x, y, setup, head):
    params = net.collect_params()
    running = {k: p.data() for k, p in params.items() if k in setup.aux}
    with autograd.record():
        logits = net(x)
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(logits, y).sum()
    res = {'train': logits.asnumpy(), 'stats_forward': _stats(running)}
    if head:
        res['head_grad'] = exact_head(res['train'], setup.y).astype(res['train'].dtype)
        logits.backward(mx.nd.array(res['head_grad'], dtype=res['train'].dtype))
    else:
        loss.backward()
    res.update(stats=_stats(running),
               grads={k: p.grad().asnumpy() for k, p in params.items() if k in setup.args})
    return res


def module_run(setup, dtype, head_grad=None):
    """mx.mod.Module: bind for training, forward(is_train), backward. With `head_grad`,
    train mode twice from the same start: the logits symbol backpropagating `head_grad`,
    and the notes' training symbol (SoftmaxOutput, logits riding along as BlockGrad)."""
    x, y = mx.nd.array(setup.x, dtype=dtype), mx.nd.array(setup.y, dtype=dtype)
    mod = _bound_module(setup.logits, setup, x, dtype, labels=False)
    mod.forward(mx.io.DataBatch([x]), is_train=False)
    out = {'inference': mod.get_outputs()[0].asnumpy()}
    if head_grad is not None:
        out.update(_module_train(mod, mx.io.DataBatch([x]), setup,
                                 [mx.nd.array(head_grad, dtype=dtype)]))
        sym = mx.sym.Group([paper.with_softmax(setup.logits), mx.sym.BlockGrad(setup.logits)])
        out['softmax'] = _module_train(_bound_module(sym, setup, x, dtype, labels=True),
                                       mx.io.DataBatch([x], [y]), setup, None, output=1)
    out.update(nograd_run(setup, x, dtype, head_grad is not None))
    return out


def _bound_module(sym, setup, x, dtype, labels):
    label_shapes = [mx.io.DataDesc('softmax_label', (x.shape[0],), dtype)] if labels else None
    mod = mx.mod.Module(sym, data_names=['data'], label_names=['softmax_label'] if labels else None,
                        context=mx.cpu())
    with environ.native_log_without(environ.NONE_BACKEND_LINE):
        mod.bind([mx.io.DataDesc('data', x.shape, dtype)], label_shapes, for_training=True)
    mod.set_params(_nd(setup.args, dtype), _nd(setup.aux, dtype))   # raises on a name mismatch
    return mod


def _module_train(mod, batch, setup, out_grads, output=0):
    # Module has no public accessor for parameter gradients; its executor has them.
    exe = mod._exec_group.execs[0]
    mod.forward(batch, is_train=True)
    res = {'train': mod.get_outputs()[output].asnumpy(),
           'stats_forward': _stats({k: exe.aux_dict[k] for k in setup.aux})}
    mod.backward(out_grads)
    res.update(stats=_stats({k: exe.aux_dict[k] for k in setup.aux}),
               grads={k: exe.grad_dict[k].asnumpy() for k in setup.args})
    return res


def nograd_run(setup, x, dtype, train):
    """The deployment path (`Module.predict`): bound with for_training=False. Without
    gradients MXNet applies its inference-only graph rewrites (MKLDNN's conv+BN folding)."""
    mod = mx.mod.Module(setup.logits, data_names=['data'], label_names=None, context=mx.cpu())
    with environ.native_log_without(environ.NONE_BACKEND_LINE):
        mod.bind([mx.io.DataDesc('data', x.shape, dtype)], for_training=False)
    mod.set_params(_nd(setup.args, dtype), _nd(setup.aux, dtype))
    out = {}
    for key, is_train in (('bind_inference', False), ('bind_train', True))[:2 if train else 1]:
        mod.forward(mx.io.DataBatch([x]), is_train=is_train)
        out[key] = mod.get_outputs()[0].asnumpy()
    return out


def stats_change(setup, gluon_out, module_out):
    """How far the running statistics moved from their start, after forward / backward."""
    if 'stats' not in gluon_out:
        return {}
    moments = (('after_forward', 'stats_forward'), ('after_backward', 'stats'))
    return {side: {when: max(_rel_change(out[key][k], setup.aux[k]) for k in setup.aux)
                   for when, key in moments}
            for side, out in (('gluon', gluon_out), ('module', module_out))}


def _rel_change(after, before):
    return float(np.abs(after - before).max() / max(np.abs(before).max(), 1e-30))


# ---- the default (MKLDNN subgraph) backend, in a process of its own ----

def run_default_backend(jobs, tmp):
    """Module float32 runs of `jobs`, (setup, head gradient or None) pairs, in a child
    process with MXNET_SUBGRAPH_BACKEND unset; returns (results, the child's stderr, where
    MXNet logs the backend it uses). The arrays travel as npz files under `tmp`."""
    for i, (s, head_grad) in enumerate(jobs):
        d = os.path.join(tmp, str(i))
        os.makedirs(d)
        s.logits.save(os.path.join(d, 'logits.json'))
        head = {} if head_grad is None else {'head_grad': head_grad}
        np.savez(os.path.join(d, 'inputs.npz'), x=s.x, y=s.y, **head,
                 **{'arg:' + k: v for k, v in s.args.items()},
                 **{'aux:' + k: v for k, v in s.aux.items()})
    # the default backend, and its 'Subgraph backend MKLDNN is activated' line (the proof
    # it ran) not silenced
    env = {k: v for k, v in os.environ.items()
           if k not in ('MXNET_SUBGRAPH_BACKEND', 'MXNET_SUBGRAPH_VERBOSE')}
    paths, log = child.run_logged('legacy_symbol.compare.sides:default_backend_worker',
                                  {'workdir': tmp}, env)
    return [_load_result(p) for p in paths], log


def default_backend_worker(workdir):
    """The child's side: run every case directory under `workdir`, each into its
    result.npz; returns their paths in case order."""
    paths = []
    for i in range(len(os.listdir(workdir))):
        d = os.path.join(workdir, str(i))
        inputs = np.load(os.path.join(d, 'inputs.npz'))
        setup = Setup(None, {}, mx.sym.load(os.path.join(d, 'logits.json')),
                      _pick(inputs, 'arg:'), _pick(inputs, 'aux:'), inputs['x'], inputs['y'])
        out = module_run(setup, 'float32', inputs['head_grad'] if 'head_grad' in inputs else None)
        paths.append(os.path.join(d, 'result.npz'))
        np.savez(paths[-1], **_flatten(out))
    return paths


def _pick(npz, prefix):
    return {k[len(prefix):]: npz[k] for k in npz.files if k.startswith(prefix)}


def _flatten(tree, prefix=''):
    """{'softmax': {'grads': {'fc_weight': a}}} -> {'softmax/grads/fc_weight': a}."""
    flat = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, prefix + k + '/'))
        else:
            flat[prefix + k] = v
    return flat


def _load_result(path):
    data, tree = np.load(path), {}
    for key in data.files:
        *groups, name = key.split('/')
        node = tree
        for g in groups:
            node = node.setdefault(g, {})
        node[name] = data[key]
    return tree
