"""--memory-saving (gluon_resnet_v2.memory): the Gluon network trained through the graph
executor with mirror.py's plan.

What is checked: a run is bit-identical with and without it (--deterministic, 2 devices,
the dropout shortcut so MXNet's generator is drawn from too), also when a resume switches it
on or off; the executors are bound to the Gluon Parameters' own arrays and to the plan,
which is much smaller than the executor without it; with oneDNN on, a step equals the
Gluon step; what it cannot do is refused in one line. Peak memory and speed of ResNet-1001:
scripts/bench_memory.py (docs/results/memory.md), not here.
"""
import json
import re
import subprocess
import sys

import numpy as np

from gluon_resnet_v2 import checkpoint, engine, mirror
from gluon_resnet_v2.config import Config, DataConfig, ModelConfig, OptimConfig, RunConfig
from gluon_resnet_v2.memory import MirroredBackend
from gluon_resnet_v2.runlog import read_log
from gluon_resnet_v2.train import main as train_main
from legacy_symbol.train import main as legacy_main

from support import env1, run_cli

# ResNet-8 on 256 sample images, 2 devices, a log line and a checkpoint every 2 iterations
QUICK = ['--dataset', 'cifar10-sample', '--depth', '8', '--subset', '256', '--batch-size', '32',
         '--num-workers', '0', '--warmup-iters', '2', '--lr-steps', '6', '--cpus', '2',
         '--shortcut', 'dropout', '--drop-rate', '0.2', '--log-interval', '2',
         '--eval-interval', '0', '--checkpoint-interval', '2', '--deterministic']

# Several CLI sessions in one child process (deterministic kernels are chosen before MXNet
# is imported; one import instead of four keeps the test quick)
SESSIONS = '''
import json, sys
from gluon_resnet_v2 import cli
from gluon_resnet_v2.train import main
for args in json.loads(sys.argv[1]):
    cli.main_wrapper(main)(args)
'''


def test_same_run_with_and_without_memory_saving_and_resumed_either_way(tmp_path):
    """'whole': 8 iterations without --memory-saving. 'switched': 4 with it, resumed without
    to 6, resumed with it to 8. Same training log, test error, weights, BN statistics and
    optimizer state, bit for bit."""
    whole, switched = str(tmp_path / 'whole'), str(tmp_path / 'switched')
    sessions = [(whole, [], 8), (switched, ['--memory-saving'], 4), (switched, [], 6),
                (switched, ['--memory-saving'], 8)]
    args = [QUICK + extra + ['--max-iters', str(n), '--run-dir', d] for d, extra, n in sessions]
    proc = subprocess.run([sys.executable, '-c', SESSIONS, json.dumps(args)], env=env1(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    plans = re.findall(r'memory saving: executor plan (\d+) -> (\d+) MB per device', proc.stdout)
    assert len(plans) == 2 and all(int(b) < int(a) for a, b in plans), proc.stdout
    assert proc.stdout.count('resuming') == 2

    def trained(run_dir):
        """The training records and the last evaluation (a session's end evaluates)."""
        records = read_log(run_dir)
        drop = ('time', 'img_per_sec')
        return ([{k: v for k, v in r.items() if k not in drop} for r in records
                 if r['train_loss'] is not None],
                [r['test_err'] for r in records if r['test_err'] is not None][-1])
    assert [r['iteration'] for r in trained(whole)[0]] == [2, 4, 6, 8]
    assert trained(switched) == trained(whole)
    a = checkpoint.load(whole + '/' + checkpoint.LATEST)
    b = checkpoint.load(switched + '/' + checkpoint.LATEST)
    assert a['iteration'] == b['iteration'] == 8 and sorted(a['params']) == sorted(b['params'])
    for key, value in a['params'].items():                # BN statistics included
        np.testing.assert_array_equal(b['params'][key], value, err_msg=key)
    assert a['trainer'] == b['trainer']                   # momentum, update counts


def quick_cfg(run_dir, **run):
    return Config(model=ModelConfig(depth=20),
                  data=DataConfig(dataset='cifar10-sample', subset=256, num_workers=0),
                  optim=OptimConfig(batch_size=64, warmup_iters=0, max_iters=2),
                  run=RunConfig(run_dir=str(run_dir), **run))


def test_executors_share_the_gluon_arrays_and_bind_the_smaller_plan(tmp_path):
    """ResNet-20 at batch 64 in this process (oneDNN on): the executor is bound to the
    Parameters' own arrays, to the plan (convolutions recomputed), whose memory is under
    two thirds of the executor's without it; its step equals GluonBackend's."""
    run = engine.Run(quick_cfg(tmp_path / 'run', memory_saving=True))
    with run.closed_on_error():
        saving = MirroredBackend(run, echo=lambda line: None)
        plain = engine.GluonBackend(run)
        ex, ctx = saving.executors[0], run.ctxs[0]
        params = {p.name: p for p in saving.net.collect_params().values()}
        for name, p in params.items():
            if name in ex.aux_dict:
                assert ex.aux_dict[name] is p.data(ctx), name
            else:
                assert ex.arg_dict[name] is p.data(ctx) and ex.grad_dict[name] is p.grad(ctx)
        plan = saving.plan
        assert plan['bound_mb'] == mirror.bound_mb(ex) == plan['planned_mb']
        assert plan['bound_mb'] < 0.67 * plan['unmirrored_mb'], plan       # measured 54 / 99
        copies = re.findall(r'^Op:(\w+), Name=\S+_mirror$', ex.debug_str(), re.M)
        assert len(copies) == plan['marked'] and 'Convolution' in copies

        batches = run.train_batches(0, 0)
        x, y = next(batches)
        batches.close()
        for backend in (plain, saving):
            loss, scores, _ = backend.step(x, y)[0]
            backend.sync_statistics()
        for name, p in params.items():
            want = plain.net.collect_params()[name].data(ctx).asnumpy()
            got = p.data(ctx).asnumpy()
            scale = max(np.abs(want).max(), 1e-30)
            assert np.abs(got - want).max() / scale <= 1e-5, name       # measured: 0
    run.close()


def test_what_it_cannot_do_is_refused_in_one_line(tmp_path, capsys):
    run_dir = tmp_path / 'never'
    code, out, err = run_cli(['--dataset', 'cifar10-sample', '--num-workers', '0',
                              '--memory-saving', '--no-hybridize', '--run-dir', run_dir],
                             capsys, train_main)
    assert code == 2 and err.strip().count('\n') == 0, err
    assert '--no-hybridize' in err and '--memory-saving' in err
    assert not run_dir.exists()                                       # nothing written
    # the Module trainer has its own mirroring, --mirror
    code, out, err = run_cli(['--memory-saving', '--run-dir', tmp_path / 'module'], capsys,
                             legacy_main)
    assert code == 2 and '--mirror' in err.strip().splitlines()[-1], err
