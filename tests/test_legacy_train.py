"""legacy_symbol.train (Module training, the notes' API) and `compare train` (project issue 4).

Runs are tiny (ResNet-8, 256 sample images, batch 32): what is checked is the plumbing
(the Gluon trainer's log format, schedule, devices, errors) and that a Module trained from
the Gluon run's weights on the same batches ends where the Gluon run does.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
import yaml

from gluon_resnet_v2.config import Config, DataConfig, ModelConfig, OptimConfig, RunConfig
from gluon_resnet_v2.plotting import plot_runs
from gluon_resnet_v2.runlog import KEYS, read_log
from legacy_symbol import fit
from legacy_symbol.train import main as legacy_main

from support import PNG
from support import env1 as support_env1
from support import run_cli as _run_cli

QUICK = ['--dataset', 'cifar10-sample', '--subset', '256', '--batch-size', '32',
         '--num-workers', '0', '--warmup-iters', '2', '--lr-steps', '5']


def env1():
    """support.env1 (bit-stable across processes) with the exact Module backend."""
    return support_env1(MXNET_SUBGRAPH_BACKEND='NONE')


def run_cli(args, capsys, command=legacy_main):
    return _run_cli(args, capsys, command)


def tiny_cfg(run_dir, net_depth=8, **optim):
    return Config(model=ModelConfig(depth=net_depth),
                  data=DataConfig(dataset='cifar10-sample', subset=256, num_workers=0),
                  optim=OptimConfig(batch_size=32, warmup_iters=0, **optim),
                  run=RunConfig(run_dir=str(run_dir)))


# ------------------------------------------------------------------ python -m legacy_symbol.train

def test_cli_module_run_on_two_devices_writes_the_gluon_log_format(tmp_path):
    """With --mirror (planned mirroring on both devices' executors, MXNet's native kernels)."""
    run_dir = tmp_path / 'module'
    proc = subprocess.run(
        [sys.executable, '-m', 'legacy_symbol.train', '--net', 'paper', '--depth', '8',
         '--cpus', '2', '--max-iters', '6', '--log-interval', '2', '--eval-interval', '3',
         '--mirror', '--run-dir', str(run_dir)] + QUICK,
        env=env1(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = read_log(run_dir)
    assert all(list(r) == list(KEYS) for r in records)
    train = [r for r in records if r['train_loss'] is not None]
    test = [r for r in records if r['test_err'] is not None]
    assert [r['iteration'] for r in train] == [2, 4, 6]
    assert [r['iteration'] for r in test] == [3, 6]
    # the schedule of the interval's last iteration: warm-up 0.01 for 0..1, 0.1, /10 from 5
    assert [r['lr'] for r in train] == pytest.approx([0.01, 0.1, 0.01])
    assert [r['epoch'] for r in train] == pytest.approx([0.25, 0.5, 0.75])   # 8 batches/epoch
    assert all(0 < r['train_loss'] < 10 and 0 <= r['train_err'] <= 1 for r in train)
    assert all(0 < r['test_loss'] < 20 and 0 <= r['test_err'] <= 1 for r in test)
    cfg = Config.from_dict(yaml.safe_load((run_dir / 'config.yaml').read_text()))
    assert (cfg.model.depth, cfg.run.cpus, cfg.optim.max_iters) == (8, 2, 6)  # readable by --config
    module = yaml.safe_load((run_dir / 'module.yaml').read_text())
    assert (module['net'], module['mirror']) == ('paper', 'segments')
    assert module['mirror_marked'] > 0 and isinstance(module['mirror_kept'], list)
    assert 0 < module['mirror_planned_mb'] < module['mirror_unmirrored_mb']
    assert ('memory mirroring: executor plan %d -> %d MB per device' % (
        module['mirror_unmirrored_mb'], module['mirror_planned_mb'])) in proc.stdout
    # the saved symbol is the network, without the mirroring marks
    symbol_json = (run_dir / 'module-symbol.json').read_text()
    assert '__force_mirroring__' not in symbol_json and 'stage3_unit1_sc_conv' in symbol_json
    assert (run_dir / 'curves.png').read_bytes()[:8] == PNG
    out = plot_runs({'module': str(run_dir)}, str(tmp_path / 'replot.png'))
    assert Path(out).read_bytes()[:8] == PNG and Path(out).stat().st_size > 10000
    # the final weights, a Module checkpoint named like the Gluon parameters
    saved = mx.nd.load(str(run_dir / 'module-0006.params'))
    assert 'arg:stage3_unit1_sc_conv_weight' in saved and 'aux:stem_bn_running_var' in saved
    assert proc.stdout.strip().splitlines()[-1].startswith(
        'done: 6 iterations; final test error %.2f %%' % (100 * test[-1]['test_err']))


def test_notes_network_trains(tmp_path):
    cfg = tiny_cfg(tmp_path / 'notes', max_iters=2, lr_steps=())
    run, backend, loop = fit.module_run(cfg, net='notes', progress=False)
    # the 1000-image test split through the 18M-parameter notes net takes ~15 s on one
    # thread; the evaluation code is the same on 64 images
    run.data.num_test = 64
    before = {k: v.asnumpy() for k, v in backend.mod.get_params()[0].items()}
    summary = loop.train()
    after = {k: v.asnumpy() for k, v in backend.mod.get_params()[0].items()}
    records = read_log(tmp_path / 'notes')
    assert [r['iteration'] for r in records] == [2, 2]
    assert 0 < records[0]['train_loss'] < 10 and np.isfinite(records[1]['test_loss'])
    assert summary['final_test_err'] == records[1]['test_err']
    assert 'fc1_weight' in after and 'r641_conv3_weight' in after      # the notes' names
    weights = [k for k in before if k.endswith('_weight')]
    assert len(weights) == 77                      # 74 weight layers + 3 projection convs
    assert all(not np.array_equal(before[k], after[k]) for k in weights)


def test_mirror_recomputes_in_backward_and_changes_nothing(tmp_path):
    """Both policies are in effect at bind: `segments` recomputes convolutions too, `env`
    (MXNET_BACKWARD_DO_MIRROR=1) BatchNorm, ReLU, additions and the pooling mean (nodes named
    *_mirror); after a NAG step the weights and BN statistics are bit-identical."""
    params, mirrored = [], []
    x = np.random.RandomState(0).standard_normal((32, 3, 32, 32)).astype(np.float32)
    y = np.arange(32) % 10
    for mirror in (None, 'segments', 'env'):
        env_before = dict(os.environ)
        run, backend, _ = fit.module_run(tiny_cfg(tmp_path / str(mirror)), mirror=mirror,
                                         progress=False)
        assert dict(os.environ) == env_before         # variables set for the bind only
        backend.step(x, y)
        mx.nd.waitall()
        graph = backend.mod._exec_group.execs[0].debug_str()
        mirrored.append(set(re.findall(r'Op:(\w+), Name=\w+_mirror\b', graph)))
        arg, aux = backend.mod.get_params()
        params.append({k: v.asnumpy() for k, v in list(arg.items()) + list(aux.items())})
        run.data.close()
    assert mirrored[0] == set()
    assert {'Convolution', 'BatchNorm', 'Activation', 'elemwise_add'} <= mirrored[1]
    assert mirrored[2] == {'BatchNorm', 'Activation', 'elemwise_add', 'mean'}
    every = len(backend.symbol.list_arguments()) - 2 + len(backend.symbol.list_auxiliary_states())
    assert len(params[0]) == every and any(k.endswith('running_var') for k in params[0])
    assert all(np.array_equal(p[k], params[0][k]) for p in params[1:] for k in params[0])


# bad input (one line, exit 2, nothing written): tests/test_bad_input.py
