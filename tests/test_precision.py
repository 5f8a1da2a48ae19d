"""--dtype float16 (precision.LossScaler, multi-precision updates) and --sync-bn, as far as a
CPU can show them.

MXNet's CPU build has no float16 convolution or fully connected layer, and its
SyncBatchNorm deadlocks on CPU contexts under the engine settings the tools use. So:
* the scaler's rules are tested alone; its update path on float32 ResNets, where it must
  equal trainer.step bit for bit, and on a conv-free float16 network (float32 master
  weights and BN parameters), also through engine.fit with the CPU refusal lifted;
* SyncBatchNorm runs in a child process whose engine has a worker thread per device and
  many temporary-memory copies, the settings under which it completes on CPU (measured).
"""
import json
import subprocess
import sys
from functools import partial

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

from gluon_resnet_v2 import checkpoint, engine, factory, schedule
from gluon_resnet_v2.config import (Config, ConfigError, DataConfig, ModelConfig, OptimConfig,
                                    RunConfig)
from gluon_resnet_v2.data import DATASETS, DatasetSpec, InMemoryData
from gluon_resnet_v2.errors import TrainingDiverged, UserError
from gluon_resnet_v2.precision import LossScaler, all_finite
from gluon_resnet_v2.steps import train_step

from support import REPO, env1

LOSS = gluon.loss.SoftmaxCrossEntropyLoss()


# ---------------------------------------------------------------- the scaler's rules

def test_overflow_skips_and_halves_a_clean_window_doubles():
    s = LossScaler(scale=2.0 ** 4, window=3)
    for finite in (True, True, False):          # an overflow restarts the clean count
        s.record(finite)
    assert s.state() == {'scale': 8.0, 'clean': 0, 'skipped': 1}
    for _ in range(3):
        s.record(True)
    assert s.state() == {'scale': 16.0, 'clean': 0, 'skipped': 1}
    s.record(True)
    assert s.state() == {'scale': 16.0, 'clean': 1, 'skipped': 1}
    top = LossScaler(scale=2.0 ** 24, window=1)
    top.record(True)
    assert top.scale == 2.0 ** 24                # the ceiling


def test_scaler_state_round_trips_and_resumes_alike():
    a = LossScaler(scale=2.0 ** 10, window=4)
    for finite in (True, False, True, True):
        a.record(finite)
    b = LossScaler(window=4, saved=a.state())
    assert b.state() == a.state() == {'scale': 512.0, 'clean': 2, 'skipped': 1}
    for _ in range(2):
        a.record(True)
        b.record(True)
    assert b.state() == a.state() and a.scale == 1024.0


def test_overflow_at_scale_one_stops_the_run():
    s = LossScaler(scale=2.0, window=10)
    s.record(False)
    assert s.scale == 1.0
    with pytest.raises(TrainingDiverged, match='loss scale down to 1 .2 steps skipped.*'
                                               '--dtype float32'):
        s.record(False)


def test_all_finite_over_mixed_dtypes_and_chunks():
    arrays = [mx.nd.ones(2) for _ in range(450)] + [mx.nd.ones(3, dtype='float16')]
    assert all_finite(arrays)
    assert not all_finite(arrays + [mx.nd.array([1, np.nan])])          # past one chunk
    assert not all_finite(arrays + [mx.nd.array([7e4]).astype('float16')])   # inf in float16


# ---------------------------------------------------------------- the update path

def dense(ctxs):
    net = gluon.nn.Dense(3, in_units=4, prefix='d_')
    net.initialize(mx.init.Normal(1.0), ctx=ctxs)
    return net


@pytest.mark.parametrize('devices', [1, 2])
def test_a_skipped_step_moves_only_the_schedule_on(devices):
    """Overflow at iteration 0 (warm-up rate 0.01): nothing changes, and iteration 1 is
    made at the base rate 0.1, as a run whose schedule starts at iteration 1."""
    ctxs = [mx.cpu(i) for i in range(devices)]
    optim = OptimConfig(warmup_iters=1, lr_steps=())
    x, y = mx.nd.array(np.arange(16).reshape(4, 4) / 10.0), mx.nd.array([0, 1, 2, 0])
    results = {}
    for name, begin, first in (('skipped', 0, True), ('from 1', 1, False),
                               ('from 0', 0, False)):
        mx.random.seed(0)
        net = dense(ctxs)
        start = net.weight.data(ctxs[0]).asnumpy()
        trainer = gluon.Trainer(net.collect_params(), 'nag', schedule.optimizer_params(
            optim, begin), kvstore='device', update_on_kvstore=False)
        scaler = LossScaler(scale=8.0)
        if first:
            train_step(net, trainer, LOSS, x * np.nan, y, ctxs, 4, scaler)
            assert scaler.state() == {'scale': 4.0, 'clean': 0, 'skipped': 1}
            np.testing.assert_array_equal(net.weight.data(ctxs[0]).asnumpy(), start)
        train_step(net, trainer, LOSS, x, y, ctxs, 4, scaler)
        results[name] = [net.weight.data(c).asnumpy() for c in ctxs]
        assert trainer.optimizer.num_update == begin + 1 + first
    for got, want in zip(results['skipped'], results['from 1']):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert np.abs(results['skipped'][0] - results['from 0'][0]).max() > 1e-3


def child_scaled_steps_equal_trainer_step():
    """In a child (deterministic kernels): ResNet-8, 2 NAG steps on 1 and 2 devices, with
    trainer.step and with the scaler at several powers of two; prints which are equal."""
    import gluon_resnet_v2 as grv
    from gluon_resnet_v2 import he_init
    rng = np.random.default_rng(0)
    x, y = mx.nd.array(rng.normal(size=(8, 3, 16, 16))), mx.nd.array(rng.integers(0, 10, 8))
    out = {}
    for devices in (1, 2):
        ctxs = [mx.cpu(i) for i in range(devices)]
        params = {}
        for scale in (None, 1.0, 2.0 ** 16, 2.0 ** -3):
            net = grv.build_resnet(8)
            mx.random.seed(3)
            net.initialize(he_init(), ctx=ctxs)
            net(mx.nd.zeros((1, 3, 16, 16), ctx=ctxs[0]))
            start = net.output.weight.data(ctxs[0]).asnumpy()
            net.hybridize(static_alloc=True, static_shape=True)
            trainer = gluon.Trainer([p for p in net.collect_params().values()
                                     if p.grad_req != 'null'], 'nag', schedule.optimizer_params(
                OptimConfig(warmup_iters=0)), kvstore='device',
                update_on_kvstore=False if scale else None)
            scaler = LossScaler(scale) if scale else None
            for _ in range(2):
                train_step(net, trainer, LOSS, x, y, ctxs, 8, scaler)
            params[scale] = {k: p.data(ctxs[-1]).asnumpy() for k, p in
                             net.collect_params().items()}
        ref = params.pop(None)
        out[devices] = {str(s): all(np.array_equal(p[k], ref[k]) for k in ref)
                        for s, p in params.items()}
        # every net starts alike (seed 3): equal results must not be unchanged weights
        out[devices]['moved'] = bool(np.abs(ref['fc_weight'] - start).min() > 0)
    print(json.dumps(out))


def run_child(name, **env):
    code = 'import test_precision as t; t.%s()' % name
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=180, cwd=str(REPO / 'tests'),
                          env=dict(env1(**env), PYTHONPATH='%s:%s' % (REPO, REPO / 'tests')))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_float32_scaled_update_is_bit_identical_to_trainer_step():
    """Scaling by a power of two is exact in float32 and the update divides it out."""
    got = run_child('child_scaled_steps_equal_trainer_step')
    assert got == {d: {'1.0': True, '65536.0': True, '0.125': True, 'moved': True}
                   for d in ('1', '2')}


class Toy(gluon.HybridBlock):
    """A conv-free network CPUs can run in float16: the 3 channel means of BN'd images and
    their sum as 4 scores, times a weight per class. Its float16 weight comes first (the
    dtype evaluate() reads)."""

    def __init__(self, classes=4):
        super().__init__(prefix='toy_')
        with self.name_scope():
            self.w = self.params.get('w', shape=(1, classes), init=mx.init.Normal(1.0))
            self.bn = gluon.nn.BatchNorm(in_channels=3)

    def hybrid_forward(self, F, x, w):
        m = F.mean(self.bn(x), axis=(2, 3))
        return F.broadcast_mul(F.concat(m, F.sum(m, axis=1, keepdims=True), dim=1), w)


def toy_steps(dtype, scale, steps=4):
    rng = np.random.default_rng(0)
    x, y = mx.nd.array(rng.normal(size=(8, 3, 4, 4))).astype(dtype), mx.nd.array(
        rng.integers(0, 4, 8))
    net = Toy()
    mx.random.seed(0)
    net.initialize(ctx=mx.cpu())
    net.cast(dtype)
    net.hybridize()
    params = schedule.optimizer_params(OptimConfig(warmup_iters=0, dtype=dtype))
    trainer = gluon.Trainer(net.collect_params(), 'nag', params, update_on_kvstore=False)
    scaler = LossScaler(scale) if scale else None
    losses = [float(train_step(net, trainer, LOSS, x, y, [mx.cpu()], 8, scaler)[0][0].sum()
                    .asscalar()) for _ in range(steps)]
    return net, trainer, scaler, losses


def test_float16_keeps_float32_master_weights_and_batchnorm():
    ref, _, _, ref_losses = toy_steps('float32', None)
    net, trainer, scaler, losses = toy_steps('float16', 2.0 ** 10)
    dtypes = {k.split('_', 1)[1]: np.dtype(p.dtype).name for k, p in net.collect_params().items()}
    assert dtypes == {'w': 'float16', 'batchnorm0_gamma': 'float32', 'batchnorm0_beta': 'float32',
                      'batchnorm0_running_mean': 'float32', 'batchnorm0_running_var': 'float32'}
    assert scaler.state() == {'scale': 1024.0, 'clean': 4, 'skipped': 0}
    momentum, master = trainer._updaters[0].states[trainer._param2idx[net.w.name]]   # of w
    assert master.dtype == np.float32 and momentum.dtype == np.float32
    w16 = net.w.data().asnumpy()
    np.testing.assert_array_equal(w16, master.asnumpy().astype(np.float16))
    np.testing.assert_allclose(master.asnumpy(), ref.w.data().asnumpy(), atol=2e-3)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-3)
    assert abs(losses[-1] - losses[0]) > 0.1                      # it trained


def test_float16_gradient_overflow_is_skipped():
    net, trainer, scaler, _ = toy_steps('float16', 2.0 ** 30, steps=0)
    before = {k: p.data().asnumpy() for k, p in net.collect_params().items()}
    x = mx.nd.ones((8, 3, 4, 4), dtype='float16') * mx.nd.arange(8).reshape((8, 1, 1, 1)
                                                                            ).astype('float16')
    train_step(net, trainer, LOSS, x, mx.nd.zeros(8), [mx.cpu()], 8, scaler)
    assert scaler.state() == {'scale': 2.0 ** 29, 'clean': 0, 'skipped': 1}
    for k, p in net.collect_params().items():
        if p.grad_req != 'null':
            np.testing.assert_array_equal(p.data().asnumpy(), before[k])


# ---------------------------------------------------------------- through engine.fit

def toy_data(cfg, data_dir):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (80, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(80) % 4
    return InMemoryData('toy16', (images[:64], labels[:64]), (images[64:], labels[64:]), 4,
                        pad=1, num_workers=0)


def test_float16_run_checkpoints_its_loss_scale_and_resumes_exactly(tmp_path, monkeypatch):
    """engine.fit in float16 on CPU (the Toy network; check_dtype's refusal lifted): 5 + 5
    iterations resumed from the checkpoint end as 10 in one go, scale and counts included."""
    monkeypatch.setitem(DATASETS, 'toy16', DatasetSpec(toy_data, 'cifar', 4, lambda c: None,
                                                       'pad 1, crop, flip'))
    monkeypatch.setattr(engine, 'check_dtype', lambda dtype, ctxs: None)

    def cfg(run_dir, iters):
        return Config(model=ModelConfig(depth=8), data=DataConfig(dataset='toy16', num_workers=0),
                      optim=OptimConfig(batch_size=8, warmup_iters=2, lr_steps=(6,),
                                        max_iters=iters, dtype='float16'),
                      run=RunConfig(run_dir=str(run_dir), log_interval=5, eval_interval=5,
                                    checkpoint_interval=5))
    fit = partial(engine.fit, progress=False, echo=lambda *a: None, network=Toy)
    whole = fit(cfg(tmp_path / 'whole', 10))
    fit(cfg(tmp_path / 'cut', 5))
    resumed = fit(cfg(tmp_path / 'cut', 10))
    a, b = (checkpoint.load(checkpoint.path(tmp_path / d, 'latest')) for d in ('whole', 'cut'))
    assert resumed['resumed'] and a['iteration'] == b['iteration'] == 10
    assert a['loss_scaler'] == b['loss_scaler']
    assert a['loss_scaler']['skipped'] >= 1 and a['loss_scaler']['scale'] < 2.0 ** 16
    assert whole['skipped_steps'] == a['loss_scaler']['skipped'] == resumed['skipped_steps']
    assert whole['loss_scale'] == a['loss_scaler']['scale']
    for k in a['params']:
        np.testing.assert_array_equal(a['params'][k], b['params'][k])
    assert a['params']['toy_w'].dtype == np.float16


# ---------------------------------------------------------------- --sync-bn

def test_sync_bn_is_refused_on_cpu_and_with_float16_and_is_frozen():
    with pytest.raises(ConfigError, match='--sync-bn needs --gpus'):
        RunConfig(sync_bn=True, cpus=2)
    assert RunConfig(sync_bn=True, gpus=(0, 1)).sync_bn
    with pytest.raises(UserError, match='--sync-bn is float32 only'):
        factory.norm_layer(True, [mx.gpu(0)], 'float16')
    assert factory.norm_layer(False, [mx.cpu()], 'float16') is None
    saved = Config(run=RunConfig(sync_bn=True, gpus=(0,))).to_dict()
    with pytest.raises(checkpoint.CheckpointError, match='run.sync_bn = True'):
        checkpoint.check_same_config(saved, Config().to_dict(), 'ckpt')
    with pytest.raises(UserError, match='not supported on CPU'):
        factory.check_dtype('float16', [mx.cpu()])


# between them, every kind of BN: stem, weight layer, shortcut and gate ('original'),
# after the addition ('bn_after_add'), before the classifier ('full_preact')
@pytest.mark.parametrize('placement', ['original', 'bn_after_add', 'full_preact'])
def test_sync_bn_network_has_the_batchnorm_parameters(placement):
    """Every BN is a SyncBatchNorm, under the same names and shapes as the plain network's:
    a --sync-bn checkpoint loads into the network evaluate and export build."""
    from mxnet.gluon.contrib.nn import SyncBatchNorm
    mcfg = ModelConfig(depth=11, block='bottleneck', shortcut='gate_exclusive',
                       placement=placement)
    nets = [factory.build_net(mcfg, 'cifar10', 10, norm_layer) for norm_layer in
            (None, factory.norm_layer(True, [mx.cpu(0), mx.cpu(1)]))]
    shapes = []
    for net in nets:
        net.initialize(ctx=mx.cpu())
        net(mx.nd.zeros((1, 3, 8, 8)))                     # inference mode: no sync
        shapes.append({k: p.shape for k, p in net.collect_params().items()})
    assert shapes[0] == shapes[1]
    bns = [b for b in blocks(nets[1]) if isinstance(b, gluon.nn.BatchNorm)]
    assert len(bns) == sum(k.endswith('_gamma') for k in shapes[0]) >= 10
    assert all(isinstance(b, SyncBatchNorm) and b._kwargs['ndev'] == 2 for b in bns)
    assert not any(isinstance(b, SyncBatchNorm) for b in blocks(nets[0]))


def blocks(block):
    yield block
    for child in block._children.values():
        yield from blocks(child)


def child_sync_bn_step():
    """In a child: 2 NAG steps of ResNet-8 (hybridized) on the full batch on 1 device, with
    --sync-bn on 2 devices and with plain BN on 2 devices; prints the largest differences
    to the first, and what a plain network loaded with the --sync-bn weights outputs."""
    rng = np.random.default_rng(0)
    x, y = mx.nd.array(rng.normal(size=(8, 3, 16, 16))), mx.nd.array(rng.integers(0, 10, 8))
    mcfg = ModelConfig(depth=8)
    got, nets = {}, {}
    for name, devices, sync in (('bn1', 1, False), ('sync2', 2, True), ('bn2', 2, False)):
        ctxs = [mx.cpu(i) for i in range(devices)]
        net = factory.build_net(mcfg, 'cifar10', 10, factory.norm_layer(sync, ctxs))
        mx.random.seed(3)
        net.initialize(mx.init.MSRAPrelu(), ctx=ctxs)
        net(mx.nd.zeros((1, 3, 16, 16), ctx=ctxs[0]))
        net.hybridize(static_alloc=True, static_shape=True)
        trainer = gluon.Trainer([p for p in net.collect_params().values() if p.grad_req != 'null'],
                                'nag', schedule.optimizer_params(OptimConfig(warmup_iters=0)),
                                kvstore='device')
        for _ in range(2):
            losses = train_step(net, trainer, LOSS, x, y, ctxs, 8)[0]
        got[name] = (np.concatenate([l.asnumpy() for l in losses]),
                     {k: p.data(ctxs[-1]).asnumpy() for k, p in net.collect_params().items()})
        nets[name] = net
    out = {}
    for name in ('sync2', 'bn2'):
        loss, params = got[name]
        out[name] = {'loss': float(np.abs(loss - got['bn1'][0]).max()),
                     'params': max(float(np.abs(v - got['bn1'][1][k]).max())
                                   for k, v in params.items())}
    plain = factory.build_net(mcfg, 'cifar10', 10)
    plain.initialize(ctx=mx.cpu())
    checkpoint.load_params_into(plain, got['sync2'][1], 'the --sync-bn weights')
    out['plain_vs_sync_inference'] = float(np.abs(
        plain(x).asnumpy() - nets['sync2'](x.as_in_context(mx.cpu(1))).asnumpy()).max())
    out['fit'] = sync_bn_fit()
    print(json.dumps(out))


def sync_bn_fit():
    """The largest difference between the weights of 4 iterations of engine.fit with
    --sync-bn on 2 CPU contexts and with BN on 1 (RunConfig refuses --sync-bn on CPU: the
    child's engine settings let it run, so the field is set past the check)."""
    import tempfile
    DATASETS['toy16'] = DatasetSpec(toy_data, 'cifar', 4, lambda c: None, 'pad 1, crop, flip')
    params = []
    for cpus in (1, 2):
        run = RunConfig(run_dir=tempfile.mkdtemp(), cpus=cpus, log_interval=2, eval_interval=0,
                        checkpoint_interval=0)
        object.__setattr__(run, 'sync_bn', cpus == 2)
        engine.fit(Config(model=ModelConfig(depth=8), data=DataConfig(dataset='toy16',
                                                                      num_workers=0),
                          optim=OptimConfig(batch_size=8, warmup_iters=1, lr_steps=(3,),
                                            max_iters=4), run=run),
                   progress=False, echo=lambda *a: None)
        params.append(checkpoint.load(checkpoint.path(run.run_dir, 'latest'))['params'])
    return max(float(np.abs(v - params[0][k]).max()) for k, v in params[1].items())


def test_sync_bn_on_two_devices_equals_batchnorm_on_one_with_the_full_batch():
    # a worker thread per device and enough temporary-memory copies: without them the
    # devices' SyncBatchNorm ops wait on each other for ever on CPU (measured)
    got = run_child('child_sync_bn_step', MXNET_CPU_WORKER_NTHREADS='2',
                    MXNET_CPU_TEMP_COPY='256')
    assert got['sync2']['loss'] < 1e-5 and got['sync2']['params'] < 1e-5
    assert got['bn2']['loss'] > 1e-3 and got['bn2']['params'] > 1e-3   # per-device BN differs
    assert got['plain_vs_sync_inference'] < 1e-5
    assert got['fit'] < 1e-5               # the same through GluonBackend and the Loop


def test_the_summary_names_the_loss_scaling_of_a_float16_run():
    from gluon_resnet_v2.train import summary_text
    s = dict(writer=True, selected_on='test', final_test_err=0.25, final_iteration=10,
             checkpoints=True, best_err=0.25, best_iteration=10, iteration=10, max_iters=10,
             seconds=3.0, img_per_sec=None, run_dir='runs/x', loss_scale=32768.0,
             skipped_steps=2)
    lines = summary_text(s).splitlines()
    assert 'final scale 32768, 2 step(s) skipped for overflow' in lines[3]
    assert lines[-1].startswith('done: 10 iterations')
    del s['loss_scale'], s['skipped_steps']
    assert 'loss scaling' not in summary_text(s)
