"""The training engine: schedule, multi-device step, checkpoints, CLI, exact resume, errors."""
import json
import os
import signal
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest
import yaml
from mxnet import gluon

from gluon_resnet_v2 import checkpoint, cli, schedule
from gluon_resnet_v2.config import Config, OptimConfig
from gluon_resnet_v2.steps import train_step
from gluon_resnet_v2.runlog import KEYS, read_log
from gluon_resnet_v2.train import main as train_main

from support import env1, write_rec
from support import run_cli as _run_cli

# a tiny, quick run on the embedded sample: ResNet-8 (one unit per stage)
QUICK = ['--dataset', 'cifar10-sample', '--depth', '8', '--subset', '256', '--batch-size', '32',
         '--num-workers', '0', '--warmup-iters', '2', '--lr-steps', '12']


def run_cli(args, capsys, command=train_main):
    return _run_cli(args, capsys, command)


# ------------------------------------------------------------------ the schedule

# The paper's appendix: 0.01 for iterations 0..399, 0.1 from 400, /10 at 32k and 48k.
PAPER_LR = {0: 0.01, 399: 0.01, 400: 0.1, 31999: 0.1, 32000: 0.01, 47999: 0.01, 48000: 0.001}


def tiny_dense(ctxs):
    net = gluon.nn.Dense(3, in_units=4)
    net.initialize(mx.init.Normal(1.0), ctx=ctxs)
    return net


def measured_lr(net, trainer, ctxs, global_batch=4):
    """The learning rate the update actually used: plain SGD (no momentum, no decay)
    moves w by -lr * (mean gradient over the global batch), so lr = -dw / mean gradient."""
    x = mx.nd.array(np.arange(16).reshape(4, 4) / 10.0)
    y = mx.nd.array([0, 1, 2, 0])
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    w0 = net.weight.data(ctxs[0]).copy()
    bias = net.bias.data(ctxs[0]).copy()
    w0.attach_grad()
    with mx.autograd.record():            # the reference gradient, computed independently
        loss = loss_fn(mx.nd.FullyConnected(x, w0, bias, num_hidden=3), y).mean()
    loss.backward()
    grad = w0.grad.asnumpy()
    train_step(net, trainer, loss_fn, x, y, ctxs, global_batch)
    dw = net.weight.data(ctxs[0]).asnumpy() - w0.asnumpy()
    big = np.abs(grad) > 1e-3
    return float(np.median(-dw[big] / grad[big]))


@pytest.mark.parametrize('devices', [1, 2])
@pytest.mark.parametrize('iteration', sorted(PAPER_LR))
def test_learning_rate_at_paper_iterations(devices, iteration):
    ctxs = [mx.cpu(i) for i in range(devices)]
    optim = OptimConfig(optimizer='sgd', momentum=0.0, wd=0.0)
    net = tiny_dense(ctxs)
    params = schedule.optimizer_params(optim, steps_done=iteration)
    trainer = gluon.Trainer(net.collect_params(), 'sgd', params, kvstore='device')
    assert schedule.lr_at(optim, iteration) == pytest.approx(PAPER_LR[iteration])
    assert measured_lr(net, trainer, ctxs) == pytest.approx(PAPER_LR[iteration], rel=1e-4)


@pytest.mark.parametrize('iteration', [0, 1, 49, 98, 99, 100, 149, 150])
def test_linear_warm_up_rises_to_the_base_rate_and_the_steps_follow(iteration):
    """--warmup-mode linear: iteration i < 100 takes 0.01 + 0.09 (i + 1) / 101, the base
    rate from iteration 100, the step decay as before; what the optimizer applies is it."""
    optim = OptimConfig(optimizer='sgd', momentum=0.0, wd=0.0, warmup_iters=100,
                        warmup_mode='linear', lr_steps=(150,))
    expected = 0.01 + 0.09 * (iteration + 1) / 101 if iteration < 100 else \
        0.1 if iteration < 150 else 0.01
    ctxs = [mx.cpu(0)]
    net = tiny_dense(ctxs)
    trainer = gluon.Trainer(net.collect_params(), 'sgd', schedule.optimizer_params(
        optim, steps_done=iteration), kvstore='device')
    assert schedule.lr_at(optim, iteration) == pytest.approx(expected)
    assert measured_lr(net, trainer, ctxs) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize('devices', [1, 2])
def test_learning_rate_counts_each_iteration_once(devices):
    """Steps taken one after another: two devices must not advance the schedule twice."""
    ctxs = [mx.cpu(i) for i in range(devices)]
    optim = OptimConfig(optimizer='sgd', momentum=0.0, wd=0.0, warmup_iters=3, lr_steps=(5,))
    net = tiny_dense(ctxs)
    trainer = gluon.Trainer(net.collect_params(), 'sgd', schedule.optimizer_params(optim),
                            kvstore='device')
    got = [measured_lr(net, trainer, ctxs) for _ in range(7)]
    np.testing.assert_allclose(got, [0.01, 0.01, 0.01, 0.1, 0.1, 0.01, 0.01], rtol=1e-4)


# ------------------------------------------------------------------ multi-device step

def bn_free_net(ctxs):
    net = gluon.nn.HybridSequential(prefix='net_')       # the same names in both builds
    with net.name_scope():
        net.add(gluon.nn.Conv2D(8, 3, padding=1, activation='relu'),
                gluon.nn.Conv2D(8, 3, strides=2, padding=1, activation='relu'),
                gluon.nn.GlobalAvgPool2D(), gluon.nn.Dense(10))
    mx.random.seed(7)
    net.initialize(mx.init.MSRAPrelu(factor_type='in', slope=0.0), ctx=ctxs)
    net.hybridize(static_alloc=True, static_shape=True)
    return net


def test_two_devices_equal_one_device_with_the_full_batch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, 16).astype(np.int32)
    params, start = {}, {}
    for n in (1, 2):
        ctxs = [mx.cpu(i) for i in range(n)]
        net = bn_free_net(ctxs)
        net(mx.nd.array(x[:1], ctx=ctxs[0]))               # finish deferred shapes (no BN)
        start[n] = {k: p.data(ctxs[0]).asnumpy() for k, p in net.collect_params().items()}
        trainer = gluon.Trainer(net.collect_params(), 'nag', schedule.optimizer_params(
            OptimConfig(warmup_iters=0)), kvstore='device')
        for _ in range(2):       # two steps: momentum state is involved too
            train_step(net, trainer, gluon.loss.SoftmaxCrossEntropyLoss(), x, y, ctxs, 16)
        params[n] = {k: [p.data(c).asnumpy() for c in ctxs]
                     for k, p in net.collect_params().items()}
    for name, (one,) in params[1].items():
        first, second = params[2][name]
        np.testing.assert_array_equal(first, second)          # the devices stay in sync
        np.testing.assert_allclose(first, one, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(start[1]['net_dense0_weight'], start[2]['net_dense0_weight'])
    # the two steps changed every parameter (an equality of unchanged weights proves nothing)
    assert all(np.abs(params[1][k][0] - start[1][k]).max() > 1e-6 for k in params[1])


# ------------------------------------------------------------------ checkpoints

def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / checkpoint.LATEST
    checkpoint.save(str(target), {'params': {'w': np.ones(3)}, 'iteration': 1})

    def crash(*args, **kwargs):
        raise OSError('disk full')
    monkeypatch.setattr(checkpoint.os, 'fsync', crash)       # dies mid-write
    with pytest.raises(OSError):
        checkpoint.save(str(target), {'params': {'w': np.zeros(3)}, 'iteration': 2})
    state = checkpoint.load(str(target))
    assert state['iteration'] == 1 and state['params']['w'].sum() == 3
    assert sorted(os.listdir(tmp_path)) == [checkpoint.LATEST]    # no temp file left


@pytest.mark.parametrize('content,words', [
    (b'', 'unreadable'), (b'\x80\x04garbage', 'unreadable'),
    (None, 'not a gluon-resnet-v2 checkpoint')])
def test_bad_checkpoint_files(tmp_path, content, words):
    target = tmp_path / 'c.pkl'
    if content is None:
        import pickle
        content = pickle.dumps({'something': 'else'})
    target.write_bytes(content)
    with pytest.raises(checkpoint.CheckpointError, match=words):
        checkpoint.load(str(target))


# ------------------------------------------------------------------ end to end

@pytest.fixture(scope='module')
def e2e_run(tmp_path_factory):
    """One CLI run on 2 CPU contexts through a real subprocess (python -m ...)."""
    run_dir = tmp_path_factory.mktemp('e2e') / 'run'
    args = QUICK + ['--cpus', '2', '--max-iters', '16', '--log-interval', '4',
                    '--eval-interval', '8', '--checkpoint-interval', '8', '--run-dir', str(run_dir)]
    proc = subprocess.run([sys.executable, '-m', 'gluon_resnet_v2.train'] + args, env=env1(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return run_dir, proc


def test_cli_run_writes_log_checkpoints_config_and_curves(e2e_run):
    run_dir, proc = e2e_run
    records = read_log(run_dir)
    assert all(list(r) == list(KEYS) for r in records)
    train = [r for r in records if r['train_loss'] is not None]
    test = [r for r in records if r['test_err'] is not None]
    assert [r['iteration'] for r in train] == [4, 8, 12, 16]
    assert [r['iteration'] for r in test] == [8, 16]
    assert all(r['lr'] is None and r['train_loss'] is None for r in test)
    # lr of the last iteration of each interval: warm-up 0.01 for 0..1, /10 from 12
    assert [r['lr'] for r in train] == pytest.approx([0.1, 0.1, 0.1, 0.01])
    assert all(0 < r['train_loss'] < 10 and 0 <= r['train_err'] <= 1 for r in train)
    assert all(r['img_per_sec'] > 0 for r in train)
    assert [r['epoch'] for r in train] == pytest.approx([0.5, 1.0, 1.5, 2.0])  # 8 batches/epoch
    latest = checkpoint.load(str(run_dir / checkpoint.LATEST))
    best = checkpoint.load(str(run_dir / checkpoint.BEST))
    assert latest['iteration'] == 16
    assert best['best'][0] == min(r['test_err'] for r in test)
    assert Config.from_dict(yaml.safe_load((run_dir / 'config.yaml').read_text())) == \
        Config.from_dict(latest['config'])
    assert latest['config']['run']['cpus'] == 2
    png = (run_dir / 'curves.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 10000
    summary = proc.stdout.strip().splitlines()[-1]
    assert summary.startswith('done: 16 iterations; final test error %.2f %%'
                              % (100 * test[-1]['test_err']))


def test_evaluate_and_export_reproduce_the_run(e2e_run, capsys, tmp_path):
    from gluon_resnet_v2 import evaluate, export
    run_dir, _ = e2e_run
    # the run's own devices and batch, and its kernels (env1): the same numbers exactly
    proc = subprocess.run([sys.executable, '-m', 'gluon_resnet_v2.evaluate', '--run-dir',
                           str(run_dir), '--which', 'latest', '--cpus', '2', '--batch-size', '32',
                           '--json'], env=env1(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    logged = [r for r in read_log(run_dir) if r['test_err'] is not None][-1]
    assert result['top1_err'] == logged['test_err']
    assert result['test_loss'] == pytest.approx(logged['test_loss'], rel=1e-6)
    assert result['top5_err'] <= result['top1_err']

    prefix = tmp_path / 'deploy' / 'm'
    code, out, err = run_cli(['--run-dir', run_dir, '--which', 'latest', '--out', prefix],
                             capsys, export.main)
    assert code == 0, err
    sym = gluon.SymbolBlock.imports(str(prefix) + '-symbol.json', ['data'],
                                    str(prefix) + '-0000.params')
    cfg, params = evaluate.load_run(str(run_dir), 'latest', {})
    net = evaluate.restore_net(cfg, params, [mx.cpu()], 10)
    x = mx.nd.random.normal(shape=(3, 3, 32, 32))
    np.testing.assert_allclose(sym(x).asnumpy(), net(x).asnumpy(), rtol=1e-5, atol=1e-6)
    # an export of params evaluates like the run itself
    code, out, err = run_cli(['--params', str(prefix) + '-0000.params', '--model',
                              'cifar_resnet8_v2', '--dataset', 'cifar10-sample', '--json'],
                             capsys, evaluate.main)
    assert code == 2 and 'cifar_resnet8_v2' in err        # not a registry name: one line
    code, out, err = run_cli(['--run-dir', run_dir, '--out', prefix], capsys, export.main)
    assert code == 2 and 'nothing was overwritten' in err


def test_export_carries_its_preprocessing_and_reproduces_evaluate_from_raw_pixels(
        e2e_run, capsys, tmp_path):
    """The exported files alone, fed raw uint8 test images normalised as preprocess.json
    says, give the logits of the run's network and the error `evaluate` reports."""
    from gluon_resnet_v2 import evaluate, export
    from gluon_resnet_v2.data import build_data
    run_dir, _ = e2e_run
    prefix = tmp_path / 'm'
    code, out, err = run_cli(['--run-dir', run_dir, '--out', prefix], capsys, export.main)
    assert code == 0 and 'checkpoint-latest.pkl, iteration 16' in out, err
    prep = json.loads((tmp_path / 'm-preprocess.json').read_text())
    assert prep['source'] == dict(checkpoint='checkpoint-latest.pkl', iteration=16,
                                  selected_on=None)
    assert prep['classes'] == 10 and len(prep['class_names']) == 10
    code, out, err = run_cli(['--run-dir', run_dir, '--batch-size', '1000', '--json'], capsys,
                             evaluate.main)
    assert code == 0, err
    reported = json.loads(out)
    assert (reported['checkpoint'], reported['iteration']) == ('checkpoint-latest.pkl', 16)
    sym = gluon.SymbolBlock.imports(str(prefix) + '-symbol.json', ['data'],
                                    str(prefix) + '-0000.params')
    cfg, params = evaluate.load_run(str(run_dir), 'latest', dict(num_workers=0))
    with build_data(cfg.data) as data:
        raw, labels = data.test_x, data.test_y              # uint8 NHWC RGB, as decoded
        net = evaluate.restore_net(cfg, params, [mx.cpu()], data.classes)
        ours = np.concatenate([net(mx.nd.array(x)).asnumpy() for x, _ in data.test_batches(1000)])
    spec = prep['input']
    x = (raw * spec['scale'] - np.array(spec['mean'])) / np.array(spec['std'])
    logits = sym(mx.nd.array(x.transpose(0, 3, 1, 2).astype(np.float32))).asnumpy()
    np.testing.assert_allclose(logits, ours, rtol=1e-4, atol=1e-4)
    assert np.mean(logits.argmax(1) != labels) == pytest.approx(reported['top1_err'])


# ------------------------------------------------------------------ exact resume

def wait_for(predicate, proc, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def test_sigkill_and_rerun_equals_an_uninterrupted_run(tmp_path):
    """Kill -9 mid-run, rerun the same command: same logged losses, same final weights.

    --deterministic alone sets the deterministic setting (the environment here has the
    tests' thread count and oneDNN on). The dropout shortcut makes the run draw from
    MXNet's generator too."""
    base = QUICK + ['--cpus', '2', '--shortcut', 'dropout', '--drop-rate', '0.2',
                    '--max-iters', '60', '--log-interval', '3', '--eval-interval', '25',
                    '--checkpoint-interval', '7', '--deterministic']
    env = {k: v for k, v in env1().items() if k not in ('OMP_NUM_THREADS', 'MXNET_MKLDNN_ENABLED')}

    def command(run_dir):
        return [sys.executable, '-m', 'gluon_resnet_v2.train'] + base + ['--run-dir', str(run_dir)]
    whole, cut = tmp_path / 'whole', tmp_path / 'cut'
    subprocess.run(command(whole), env=env, check=True, capture_output=True, timeout=300)
    assert yaml.safe_load((whole / 'config.yaml').read_text())['run']['deterministic'] is True

    proc = subprocess.Popen(command(cut), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    log = cut / 'log.jsonl'
    reached = wait_for(lambda: log.exists() and any(r['iteration'] >= 17 for r in read_log(log)),
                       proc)
    still_running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert reached and still_running, 'the run ended before it could be killed'
    killed_at = max(r['iteration'] for r in read_log(log))
    assert 17 <= killed_at < 60
    assert checkpoint.load(str(cut / checkpoint.LATEST))['iteration'] < 60

    done = subprocess.run(command(cut), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'resuming' in done.stdout

    def strip(records):
        return [{k: v for k, v in r.items() if k not in ('time', 'img_per_sec')} for r in records]
    assert strip(read_log(cut)) == strip(read_log(whole))
    a = checkpoint.load(str(whole / checkpoint.LATEST))['params']
    b = checkpoint.load(str(cut / checkpoint.LATEST))['params']
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# ------------------------------------------------------------------ failures

def test_diverging_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    run_dir = tmp_path / 'nan'
    args = QUICK + ['--lr', '1e12', '--warmup-iters', '4', '--warmup-lr', '0.01',
                    '--max-iters', '60', '--log-interval', '2', '--checkpoint-interval', '2',
                    '--eval-interval', '0', '--run-dir', run_dir]
    code, out, err = run_cli(args, capsys)
    assert code == 3, err
    last = err.strip().splitlines()[-1]          # after the progress bar's lines
    assert last.startswith('error: ') and 'last good checkpoint' in last
    assert 'Traceback' not in err
    state = checkpoint.load(str(run_dir / checkpoint.LATEST))
    assert state['iteration'] >= 2
    assert all(np.all(np.isfinite(v)) for v in state['params'].values())


def write_yaml(path, text):
    path.write_text(text)
    return path


# bad input (one line, exit 2, nothing written): tests/test_bad_input.py


# ------------------------------------------------------------------ configuration

def test_cli_options_mirror_the_config_fields():
    from dataclasses import fields
    params = {p.name: p for p in train_main.params}
    for section in fields(Config):
        for f in fields(section.default_factory):
            assert f.name in params, f.name
            assert params[f.name].opts[0] == '--' + f.name.replace('_', '-')
            assert f.metadata['help'] and params[f.name].help.startswith(f.metadata['help'])
            choices = f.metadata.get('choices')
            if choices is not None:                   # the table's names, nothing else
                assert list(params[f.name].type.choices) == list(choices), f.name


def test_config_file_is_read_and_flags_override_it(tmp_path):
    path = write_yaml(tmp_path / 'run.yaml', 'model:\n  depth: 56\n  shortcut: scale\n'
                      'optim:\n  lr: 0.05\n  lr_steps: [100, 200]\nrun:\n  seed: 3\n')
    cfg = cli.build_config(str(path), {'lr': 0.2, 'seed': None, 'depth': None})
    assert (cfg.model.depth, cfg.model.shortcut, cfg.optim.lr, cfg.optim.lr_steps,
            cfg.run.seed) == (56, 'scale', 0.2, (100, 200), 3)
    assert cfg.optim.momentum == 0.9                  # untouched fields keep the paper's


# ------------------------------------------------------------------ several machines

def free_port():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_dist_sync_two_workers_train_one_run(tmp_path):
    """A scheduler, a server and two worker processes over loopback, started by hand with
    the DMLC_* variables (as on machines without our launcher): both workers finish, worker
    0 alone writes the run. That they compute what one process computes, and log the loss
    of the global batch: tests/test_dist.py."""
    args = QUICK + ['--max-iters', '4', '--log-interval', '2', '--eval-interval', '0',
                    '--checkpoint-interval', '0']
    dist_env = dict(env1(), DMLC_PS_ROOT_URI='127.0.0.1', DMLC_PS_ROOT_PORT=str(free_port()),
                    DMLC_NUM_SERVER='1', DMLC_NUM_WORKER='2', DMLC_NODE_HOST='127.0.0.1',
                    DMLC_INTERFACE='lo')
    daemons = [subprocess.Popen([sys.executable, '-c', 'import mxnet'],
                                env=dict(dist_env, DMLC_ROLE=role),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for role in ('scheduler', 'server')]
    command = [sys.executable, '-m', 'gluon_resnet_v2.train'] + args + [
        '--kvstore', 'dist_sync', '--run-dir', str(tmp_path / 'dist')]
    workers = [subprocess.Popen(command, env=dict(dist_env, DMLC_ROLE='worker'),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    try:
        outs = [w.communicate(timeout=240) for w in workers]
    finally:
        for p in workers + daemons:
            p.kill() if p.poll() is None else None
    assert [w.returncode for w in workers] == [0, 0], [o[1][-800:] for o in outs]
    summaries = sorted(o[0].strip().splitlines()[-1] for o in outs)
    assert summaries[0].startswith('done: 4 iterations as worker 1')
    assert summaries[1].startswith('done: 4 iterations; final test error')
    records = read_log(tmp_path / 'dist')
    assert [r['iteration'] for r in records if r['train_loss'] is not None] == [2, 4]
    state = checkpoint.load(str(tmp_path / 'dist' / checkpoint.LATEST))
    assert state['iteration'] == 4 and state['config']['run']['kvstore'] == 'dist_sync'
    assert all(np.isfinite(r['train_loss']) for r in records if r['train_loss'] is not None)


# ------------------------------------------------------------------ ImageNet path

def test_imagenet_run_and_any_test_crop(tmp_path, capsys):
    """resnet18_v2 on a tiny RecordIO set: trains with top-1/top-5 evaluation, and the
    fully convolutional net evaluates on a larger test crop than it was trained on."""
    from gluon_resnet_v2 import evaluate
    from gluon_resnet_v2.data import build_data
    rng = np.random.default_rng(0)
    write_rec(tmp_path, 'train', 16, rng, classes=8)
    write_rec(tmp_path, 'val', 8, rng, classes=8)
    run_dir = tmp_path / 'run'
    code, out, err = run_cli(['--dataset', 'imagenet', '--data-dir', tmp_path, '--model',
                              'resnet18_v2', '--crop-size', '32', '--test-crop', '32',
                              '--batch-size', '8', '--max-iters', '2', '--warmup-iters', '0',
                              '--num-workers', '0', '--run-dir', run_dir], capsys)
    assert code == 0, err
    state = checkpoint.load(str(run_dir / checkpoint.LATEST))
    assert state['params']['fc_weight'].shape == (8, 512)       # classes from the labels
    for crop in (32, 64):
        code, out, err = run_cli(['--run-dir', run_dir, '--which', 'latest', '--test-crop', crop,
                                  '--batch-size', '4', '--json'], capsys, evaluate.main)
        assert code == 0, err
        result = json.loads(out)
        assert result['images'] == 8
        # top-1 / top-5 errors recomputed here from the restored network's logits
        cfg, params = evaluate.load_run(str(run_dir), 'latest', dict(test_crop=crop,
                                                                     num_workers=0))
        with build_data(cfg.data) as data:
            net = evaluate.restore_net(cfg, params, [mx.cpu()], data.classes)
            logits, labels = zip(*[(net(mx.nd.array(x)).asnumpy(), y)
                                   for x, y in data.test_batches(4)])
        logits, labels = np.concatenate(logits), np.concatenate(labels)
        assert logits.shape == (8, 8)
        top5 = np.argsort(-logits, axis=1)[:, :5]
        assert result['top1_err'] == pytest.approx(np.mean(logits.argmax(1) != labels))
        assert result['top5_err'] == pytest.approx(np.mean([y not in t for y, t in zip(labels, top5)]))


def test_first_iteration_updates_bn_statistics_on_every_device(tmp_path, capsys):
    """The running mean after one iteration is 0.1 x the batch mean; averaged over two
    devices with equal halves it equals the one-device value. (A Trainer broadcasting BN
    statistics at its first step used to wipe that update: all zeros.)"""
    means = {}
    for n in (1, 2):
        run_dir = tmp_path / str(n)
        code, _, err = run_cli(QUICK + ['--cpus', n, '--max-iters', '1', '--warmup-iters', '0',
                                        '--eval-interval', '0',
                                        '--run-dir', run_dir], capsys)
        assert code == 0, err
        means[n] = checkpoint.load(str(run_dir / checkpoint.LATEST))['params']
    # the stem's BN sees the same conv outputs either way: its mean must match exactly;
    # later BNs see inputs normalised per device, so only "updated" is checked there
    np.testing.assert_allclose(means[2]['stem_bn_running_mean'], means[1]['stem_bn_running_mean'],
                               rtol=1e-4, atol=1e-6)
    for name in ('stem_bn_running_mean', 'stage2_unit1_bn1_running_mean', 'bn_final_running_mean'):
        assert np.abs(means[2][name]).max() > 1e-3, name
