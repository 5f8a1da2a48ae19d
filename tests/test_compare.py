"""legacy_symbol.compare: `compare train` (project issue 4) and the child-process helper
every comparison runs its measurements and trainings through (child.py).

The training runs are tiny (ResNet-8, 256 sample images, batch 32): what is checked is
that a Module trained from the Gluon run's weights on the same batches ends where the
Gluon run does, bit for bit when both use the same loss-layer gradient.
"""
import json
import os
import subprocess
import sys

import pytest

from gluon_resnet_v2.errors import UserError
from gluon_resnet_v2.runlog import read_log
from legacy_symbol.compare import child
from legacy_symbol.compare.cli import cli

from support import PNG, REPO, run_cli

QUICK = ['--dataset', 'cifar10-sample', '--subset', '256', '--batch-size', '32',
         '--num-workers', '0', '--warmup-iters', '2', '--lr-steps', '5']


# ------------------------------------------------------------------ compare train

def compare_tiny(tmp_path, capsys, *extra):
    out = tmp_path / 'cmp'
    code, stdout, err = run_cli(['train', '--depth', '8', '--max-iters', '6', '--log-interval', '2',
                                 '--out', out] + list(extra), capsys, cli)
    assert code == 0, err
    report = json.loads((out / 'report.json').read_text())
    logs = {s: read_log(out / s) for s in ('gluon', 'module')}
    assert [r['iteration'] for r in logs['gluon']] == [r['iteration'] for r in logs['module']]
    assert (out / 'curves.png').read_bytes()[:8] == PNG
    assert report['iteration'] == 6 and report['config']['mkldnn'] is False
    assert 'Gluon vs Module after 6 iterations' in stdout
    return report


def test_compare_train_same_head_is_bit_identical(tmp_path, capsys):
    """Same loss-layer gradient, native kernels: data order, initial weights, schedule,
    optimizer, BN statistics and weight decay agree bit for bit (so does ResNet-20 over
    100 iterations, measured)."""
    report = compare_tiny(tmp_path, capsys, '--same-head', *QUICK)     # lr 0.1 from iteration 2
    assert report['bit_identical_tensors'] == len(report['per_tensor'])
    assert report['max_train_loss_diff'] == 0 and report['rel_l2_diff_weights'] == 0
    assert report['rel_l2_update'] > 1e-3                   # and the weights did move


def test_compare_train_own_heads_differ_by_float32_rounding(tmp_path, capsys):
    # the paper's warm-up rate 0.01 throughout (a constant 0.01: no warm-up, base rate 0.01)
    report = compare_tiny(tmp_path, capsys, *QUICK[:8], '--lr', '0.01', '--warmup-iters', '0')
    # Each trains with its own loss layer, ~1e-7 apart in dL/dlogits (float32); measured
    # here: relative L2 distance of the weights 8.8e-7, logged losses 2.4e-7 apart (1 ulp
    # of 2.4), 1.5e-4 of the update, running statistics 3.7e-7 (deterministic). Training
    # amplifies the difference (at lr 0.1 from iteration 2, QUICK: 2.3e-4, 2.4e-4, 8e-3,
    # 6.5e-4). The bars are ~10x above the measurements.
    assert 0 < report['rel_l2_diff_weights'] < 1e-5
    assert report['max_train_loss_diff'] < 3e-6
    assert report['diff_over_update'] < 2e-3
    assert report['max_rel_diff_running_stats'] < 4e-6
    assert report['rel_l2_update'] > 1e-3                  # measured 5.7e-3


@pytest.mark.parametrize('args, words', [
    (['--depth', '9'], 'depth'),
    (['--run-dir', 'x'], 'drop --run-dir'),
    (['--out', '{used}'], 'is not empty'),
])
def test_compare_train_bad_input_one_line_exit_2(args, words, tmp_path, capsys):
    used = tmp_path / 'used'
    used.mkdir()
    (used / 'report.json').write_text('{}')
    args = [a.format(used=used) for a in args]
    if '--out' not in args:
        args += ['--out', str(tmp_path / 'fresh')]
    code, out, err = run_cli(['train'] + args, capsys, cli)
    assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, err
    assert not (tmp_path / 'fresh').exists() and os.listdir(used) == ['report.json']


def test_module_entry_point_gives_one_line_and_exit_2(tmp_path):
    """`python -m legacy_symbol.compare` runs the group through main_wrapper."""
    proc = subprocess.run([sys.executable, '-m', 'legacy_symbol.compare', 'train', '--depth', '9',
                           '--out', str(tmp_path / 'fresh')], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith('error: ') and len(proc.stderr.strip().splitlines()) == 1
    assert 'depth' in proc.stderr and not (tmp_path / 'fresh').exists()


# ------------------------------------------------------------------ child.py

def child_env(**extra):
    """This process's environment, with the tests' support module importable."""
    return dict(os.environ, PYTHONPATH=str(REPO / 'tests'), **extra)


def test_child_result_round_trips_and_the_child_sees_the_env_given(monkeypatch):
    kwargs = {'numbers': [1, 2.5, -3], 'text': 'ünïcode "quoted"', 'nested': {'none': None,
                                                                           'flag': True}}
    monkeypatch.setenv('GRV_CHILD_GONE', 'set in the parent')
    env = child_env(GRV_CHILD_PROBE='a value with spaces')
    del env['GRV_CHILD_GONE']                   # a variable removed stays removed
    value = child.run('support:child_echo', kwargs, env)
    assert value['kwargs'] == kwargs
    assert value['env'] == env


def test_child_user_error_comes_back_as_one_line():
    with pytest.raises(UserError) as caught:
        child.run('support:child_refuse', {'message': 'bad  input:\n    the fix'}, child_env())
    assert str(caught.value) == 'bad input: the fix'


def test_child_crash_comes_back_with_its_stderr():
    with pytest.raises(child.ChildFailed) as caught:
        child.run('support:child_crash', {'message': 'a clue on stderr'}, child_env())
    failed = caught.value
    assert isinstance(failed, RuntimeError) and not isinstance(failed, UserError)
    assert failed.returncode == 1 and 'a clue on stderr' in failed.stderr
    assert 'RuntimeError: the child crashed' in str(failed)


def test_child_exit_2_without_a_user_error_is_a_failure():
    """Exit code 2 alone (a process killed in the middle, a C library's exit) is no
    UserError: only the result file the child writes for one makes it so."""
    with pytest.raises(child.ChildFailed) as caught:
        child.run('os:_exit', {'status': 2})
    assert caught.value.returncode == 2
