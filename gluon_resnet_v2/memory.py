"""--memory-saving: the Gluon network trained through MXNet's graph executor with the
mirroring plan of mirror.py (Chen et al. 2016, "Training Deep Nets with Sublinear Memory
Cost"), so that deep networks fit at the paper's batch: ResNet-1001's peak memory at batch
128 goes from 19.3 to 3.1 GB (batch 64: 9.9 to 1.8 GB), at 0.72x (0.87x) the speed
(docs/results/memory.md, scripts/bench_memory.py).

    backend = MirroredBackend(run, saved)       # what engine.fit trains with --memory-saving

Why a graph executor: a hybridized Gluon net trains as a CachedOp under autograd, which
keeps every forward result until the backward pass and cannot recompute any; in MXNet 1.x
only the graph executor's backward pass can (the `__force_mirroring__` attribute). So the
hybridized network is exported to a symbol with the engine's loss (per-image softmax
cross-entropy: the gradient is that of the summed losses, so `trainer.step(global batch)`
averages over the global batch exactly as train_step does), planned (`mirror.apply`), and
bound once per device with the Gluon Parameters' own data, gradient and BN-statistic
arrays. The executors read and write the very arrays the Trainer updates, checkpoints save,
evaluation (the hybridized Gluon net, inference mode) reads and `sync_running_stats`
averages; only the step differs: forward(is_train=True) and backward on every device's
executor, then the same `trainer.step`.

The numbers do not change: the exported graph has the CachedOp's ops, a recomputed op is
the same op on the same inputs, and BatchNorm updates its statistics in its backward,
which runs once. With --deterministic a run is bit-identical with and without it, also when
a resume switches it on or off (tests/test_memory_saving.py), so it is not a frozen field.
The cost is one more forward pass per step, and planning at start (~20 s for ResNet-1001).
"""
import contextlib

import mxnet as mx
from mxnet import gluon

from . import environ, mirror
from .engine import GluonBackend
from .errors import UserError
from .steps import reseed

# A bound symbol is partitioned by the MKLDNN subgraph backend unless this is NONE, and that
# backend computes pre-activation ResNets wrongly in some binds (legacy_symbol/README.md,
# "Why MXNET_SUBGRAPH_BACKEND=NONE"). MXNet reads it at every bind; a user's value stands.
EXACT_BACKEND = {'MXNET_SUBGRAPH_BACKEND': 'NONE'}
DATA, LABEL = 'data', 'label'        # the executor's inputs; no Parameter has these names


def check(cfg):
    """Refuse, in one line, what --memory-saving cannot do."""
    if not cfg.run.hybridize:
        raise UserError('--memory-saving trains the network as one graph (the executor the '
                        'mirroring plan applies to), --no-hybridize asks for op-by-op '
                        'imperative training: drop one of them')
    # both need GPUs, which this was not tried on; the step has no loss scaling, and a
    # recomputed SyncBatchNorm would meet the other devices' barrier a second time
    if cfg.optim.dtype != 'float32':
        raise UserError('--memory-saving is float32 only (no loss scaling in its step; '
                        'untested on GPUs): drop --dtype %s or --memory-saving'
                        % cfg.optim.dtype)
    if cfg.run.sync_bn:
        raise UserError('--memory-saving with --sync-bn is untested (GPUs only; a recomputed '
                        'SyncBatchNorm would synchronise the devices again): drop one of them')


def training_symbol(net, loss_fn):
    """The symbol of one training step of `net` on inputs DATA and LABEL: outputs the
    per-image loss, with gradient 1 per image (MakeLoss: autograd.backward's head gradient
    on the summed losses), and the scores, which pass no gradient back."""
    scores = net(mx.sym.var(DATA))
    loss = loss_fn(scores, mx.sym.var(LABEL))
    return mx.sym.Group([mx.sym.MakeLoss(loss, name='loss'),
                         mx.sym.BlockGrad(scores, name='scores')])


@contextlib.contextmanager
def exact_binds():
    """The scope of this module's binds (the plan's trial binds too): EXACT_BACKEND, and
    MXNet's line about it, logged at every bind, held back."""
    with environ.scoped(defaults=EXACT_BACKEND), \
            environ.native_log_without(environ.NONE_BACKEND_LINE):
        yield


def planned_symbol(net, loss_fn, shapes):
    """(training symbol of `net` marked with mirror.py's plan for the per-device input
    `shapes` {DATA: ..., LABEL: ...}, the plan); planning binds but runs nothing."""
    with exact_binds():
        return mirror.apply(training_symbol(net, loss_fn), shapes, 'segments')


def bind_shared(symbol, params, ctx, shapes, label_dtype):
    """`symbol` bound on `ctx` to the Gluon `params` ({name: Parameter}) of that device: their
    data as arguments and BN statistics, their gradients as the gradient outputs; fresh
    arrays for the DATA and LABEL inputs of `shapes`, which get no gradient."""
    args, grads, req = {}, {}, {}
    for name in symbol.list_arguments():
        if name in shapes:
            args[name] = mx.nd.zeros(shapes[name], ctx=ctx,
                                     dtype=label_dtype if name == LABEL else 'float32')
            req[name] = 'null'
            continue
        param = params[name]
        args[name], req[name] = param.data(ctx), param.grad_req
        if param.grad_req != 'null':
            grads[name] = param.grad(ctx)
    aux = {name: params[name].data(ctx) for name in symbol.list_auxiliary_states()}
    return symbol.bind(ctx, args, args_grad=grads, grad_req=req, aux_states=aux)


class MirroredBackend(GluonBackend):
    """GluonBackend whose training step runs the mirrored graph executor (module doc)."""

    def __init__(self, run, saved=None, loss_fn=None, network=None, echo=print):
        check(run.cfg)
        super().__init__(run, saved, loss_fn, network)
        if not isinstance(self.net, gluon.HybridBlock):
            raise UserError('--memory-saving exports the network to a symbol, which needs a '
                            'HybridBlock; %s is not one' % type(self.net).__name__)
        params = {p.name: p for p in self.net.collect_params().values()}
        per_device = run.local_batch // len(self.ctxs)
        shapes = {DATA: (per_device, 3) + run.input_size(), LABEL: (per_device,)}
        planned, self.plan = planned_symbol(self.net, self.loss_fn, shapes)
        with exact_binds(), mirror.bind_env('segments'):
            self.executors = [bind_shared(planned, params, c, shapes, 'int32')
                              for c in self.ctxs]
        self.plan['bound_mb'] = mirror.bound_mb(self.executors[0])
        # autograd marks a Parameter's gradient fresh at backward; the Trainer refuses stale
        # ones, and the executor's backward does not mark them: step() does
        self.fresh = [a for p in params.values() if p.grad_req != 'null' for a in p.list_data()]
        # as GluonBackend leaves it: the binds drew nothing, but the first step must see the
        # generator exactly as the Gluon step would (dropout)
        reseed(run.cfg.run.seed, saved['iteration'] if saved else 0)
        if run.writer:
            echo('memory saving: executor plan %d -> %d MB per device (%d tensors kept, %d ops '
                 'recomputed in backward)' % (self.plan['unmirrored_mb'], self.plan['bound_mb'],
                                              len(self.plan['kept']), self.plan['marked']))

    def step(self, x, y):
        """forward / backward on every device's executor, then the Trainer's step."""
        xs = gluon.utils.split_and_load(x, self.ctxs)
        ys = gluon.utils.split_and_load(y, self.ctxs)
        for ex, xi, yi in zip(self.executors, xs, ys):
            xi.copyto(ex.arg_dict[DATA])
            yi.astype(ex.arg_dict[LABEL].dtype, copy=False).copyto(ex.arg_dict[LABEL])
            ex.forward(is_train=True)
        for ex in self.executors:
            ex.backward()
        for array in self.fresh:
            array._fresh_grad = True
        self.trainer.step(self.run.batch)
        # the loss is copied: the executor rewrites its output at the next forward, and the
        # Loop waits for the previous step's loss to stay one step ahead of the devices
        return [(ex.outputs[0].copy(), ex.outputs[1], yi) for ex, yi in zip(self.executors, ys)]

    def finish(self, run_dir, iteration):
        """The executor plan per device without and with mirroring (MB), in the summary."""
        return dict(super().finish(run_dir, iteration),
                    memory_plan_mb=(self.plan['unmirrored_mb'], self.plan['bound_mb']))
