"""Run directories that never lie (issue 9, section 1): one owner, a state on disk,
damaged logs read around, advice that works when followed, readable checkpoints,
resuming on other data, a held-out validation split."""
import json
import os
import shutil
import stat
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from gluon_resnet_v2 import checkpoint, rundir
from gluon_resnet_v2.config import OptimConfig
from gluon_resnet_v2.engine import divergence_cause
from gluon_resnet_v2.runlog import ASIDE, read_log
from gluon_resnet_v2.train import main as train_main

from support import REPO, env1
from support import run_cli as _run_cli

QUICK = ['--dataset', 'cifar10-sample', '--depth', '8', '--subset', '256', '--batch-size', '32',
         '--num-workers', '0', '--warmup-iters', '0', '--lr-steps', '12']


def run_cli(args, capsys):
    return _run_cli(args, capsys, train_main)


def files(folder):
    return {p: open(os.path.join(folder, p), 'rb').read() for p in sorted(os.listdir(folder))
            if os.path.isfile(os.path.join(folder, p))}


# ---- one owner ----

def start_training(run_dir, args, until, timeout=120):
    """(command, process) of a train run started in the background, once `until()` holds
    (or the process ended, or `timeout` passed)."""
    cmd = [sys.executable, '-m', 'gluon_resnet_v2.train'] + QUICK + args + [
        '--eval-interval', '0', '--run-dir', str(run_dir)]
    proc = subprocess.Popen(cmd, env=env1(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=str(REPO))
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not until():
        time.sleep(0.05)
    return cmd, proc


def test_a_busy_run_dir_is_refused_at_once_naming_its_owner(tmp_path, capsys):
    run_dir = tmp_path / 'r'
    code, _, err = run_cli(QUICK + ['--max-iters', '2', '--run-dir', run_dir], capsys)
    assert code == 0, err
    before = files(run_dir)
    with rundir.Ownership(str(run_dir)):               # another live owner
        code, out, err = run_cli(QUICK + ['--max-iters', '4', '--run-dir', run_dir], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert 'is in use by process %d' % os.getpid() in err
    after = files(run_dir)
    assert {k: v for k, v in after.items() if k != rundir.LOCK} == \
        {k: v for k, v in before.items() if k != rundir.LOCK}
    code, _, err = run_cli(QUICK + ['--max-iters', '4', '--run-dir', run_dir], capsys)
    assert code == 0, err                              # free again: it resumes
    assert rundir.read_status(str(run_dir))['state'] == 'finished'


def test_the_same_command_twice_runs_once(tmp_path):
    """Two real processes on one run dir: the second exits 2 naming the first; the first's
    log holds each record once."""
    run_dir = tmp_path / 'twice'
    cmd, first = start_training(run_dir, ['--max-iters', '40', '--log-interval', '5'],
                                lambda: rundir.holder(str(run_dir)) and rundir.read_status(
                                    str(run_dir)))
    second = subprocess.run(cmd, env=env1(), capture_output=True, text=True, timeout=120,
                            cwd=str(REPO))
    first_out, first_err = first.communicate(timeout=240)
    assert first.returncode == 0, first_err[-2000:]
    assert second.returncode == 2, second.stderr[-2000:]
    assert second.stderr.strip().splitlines() == [second.stderr.strip()]
    assert 'is in use by process %d' % first.pid in second.stderr
    iterations = [r['iteration'] for r in read_log(run_dir) if r['train_loss'] is not None]
    assert iterations == list(range(5, 41, 5))
    assert rundir.state(str(run_dir))['state'] == 'finished'


def test_a_probe_of_the_lock_does_not_refuse_its_next_owner(tmp_path, monkeypatch):
    """holder() takes a shared lock for microseconds; an owner arriving at that instant
    waits it out (once this refused a train child and failed a table's run), while a
    lock held past the grace is still refused."""
    import fcntl
    import threading
    run_dir = str(tmp_path / 'probed')
    os.makedirs(run_dir)
    open(os.path.join(run_dir, rundir.LOCK), 'w').close()

    def hold_shared(seconds, taken):
        fd = os.open(os.path.join(run_dir, rundir.LOCK), os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_SH)
        taken.set()
        time.sleep(seconds)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    monkeypatch.setattr(rundir, 'PROBE_GRACE', 0.5)
    for seconds, refused in ((0.1, False), (1.5, True)):
        taken = threading.Event()
        probe = threading.Thread(target=hold_shared, args=(seconds, taken))
        probe.start()
        taken.wait()
        owner = rundir.Ownership(run_dir)
        if refused:
            with pytest.raises(rundir.RunDirBusy) as e:
                owner.acquire()
            assert rundir.is_busy_refusal(str(e.value))
        else:
            assert owner.acquire() and owner.held
            owner.release()
        probe.join()


def test_a_new_run_dir_is_owned_before_the_command_looks_into_it(tmp_path, capsys):
    """A command on a new run dir owns it before it checks what the dir holds: a second
    command arriving while the first is still getting ready is refused as busy (once, a
    new dir was taken only when the Loop began, and the second command found the first's
    log without a checkpoint, or trained over its finished run). Refused, it removes
    the dir and run.lock it made."""
    run_dir = tmp_path / 'made' / 'by' / 'it' / 'new'
    owner = rundir.Ownership(str(run_dir))
    owner.acquire()                                  # the first command, getting ready
    code, _, err = run_cli(QUICK + ['--max-iters', '2', '--run-dir', run_dir], capsys)
    assert code == 2 and rundir.is_busy_refusal(err.strip()[len('error: '):]), err
    owner.abandon()
    assert os.listdir(tmp_path) == []                # the first, refused too: nothing left
    code, _, err = run_cli(QUICK + ['--max-iters', '2', '--lr', '-1', '--run-dir', run_dir],
                           capsys)
    assert code == 2 and os.listdir(tmp_path) == [], err
    run_dir.mkdir(parents=True)
    code, _, err = run_cli(QUICK + ['--max-iters', '2', '--warmup-iters', '5', '--run-dir',
                                    run_dir], capsys)
    assert code == 2 and 'warmup' in err and os.listdir(run_dir) == [], err


def test_an_abandoned_lock_file_is_not_shared(tmp_path):
    """A waiting process that opened run.lock before its maker abandoned (unlinked) it
    must not own the unlinked file while a third owns the new one."""
    run_dir = str(tmp_path / 'r')
    first = rundir.Ownership(run_dir)
    first.acquire()
    stale = os.open(os.path.join(run_dir, rundir.LOCK), os.O_RDWR)
    first.abandon()
    third = rundir.Ownership(run_dir)
    third.acquire()
    assert rundir.same_file(stale, os.path.join(run_dir, rundir.LOCK)) is False
    with pytest.raises(rundir.RunDirBusy):
        rundir.Ownership(run_dir).acquire()
    os.close(stale)
    third.release()


def test_a_killed_run_is_interrupted_and_its_lock_does_not_block_the_rerun(tmp_path):
    run_dir = str(tmp_path / 'killed')
    os.makedirs(run_dir)
    proc = subprocess.Popen([sys.executable, '-c', (
        'import sys; from gluon_resnet_v2 import rundir\n'
        'o = rundir.Ownership(sys.argv[1]); o.acquire()\n'
        'rundir.write_status(sys.argv[1], "running", 3, 10)\n'
        'print("held", flush=True); import time; time.sleep(60)'), run_dir],
        stdout=subprocess.PIPE, text=True, cwd=str(REPO))
    assert proc.stdout.readline().strip() == 'held'
    assert rundir.holder(run_dir)['pid'] == proc.pid
    assert rundir.state(run_dir)['state'] == 'running'
    proc.kill()
    proc.wait()
    assert rundir.holder(run_dir) is None                    # the kernel dropped the lock
    assert rundir.state(run_dir)['state'] == 'interrupted'
    with rundir.Ownership(run_dir) as owner:
        assert owner.held


# ---- states on disk ----

def test_status_follows_the_run(tmp_path, capsys):
    run_dir = tmp_path / 'nan'
    code, _, err = run_cli(QUICK + ['--lr', '1e12', '--max-iters', '20', '--log-interval', '2',
                                    '--checkpoint-interval', '4', '--eval-interval', '0',
                                    '--run-dir', run_dir], capsys)
    assert code == 3, err
    status = rundir.read_status(str(run_dir))
    assert status['state'] == 'diverged' and 'became' in status['message']
    assert status['max_iters'] == 20 and 0 < status['iteration'] < 20


# ---- advice that works ----

def test_divergence_names_the_likely_setting():
    assert 'momentum' in divergence_cause(OptimConfig(momentum=0.995), 5000)
    assert '--warmup-lr' in divergence_cause(OptimConfig(), 100)
    linear = divergence_cause(OptimConfig(warmup_mode='linear', warmup_iters=100), 50)
    assert 'linear warm-up (the rate rising from 0.01 to 0.1, 0.0546 at iteration 50)' in linear
    assert '--warmup-iters' in linear and '--warmup-lr' not in linear
    assert 'without a warm-up' in divergence_cause(OptimConfig(warmup_iters=0), 30)
    assert '--lr 0.1' in divergence_cause(OptimConfig(), 5000)


def test_diverged_before_any_checkpoint_says_so_and_restart_follows_the_advice(tmp_path, capsys):
    run_dir = tmp_path / 'nan'
    args = QUICK + ['--max-iters', '6', '--log-interval', '2', '--eval-interval', '0',
                    '--checkpoint-interval', '0', '--run-dir', run_dir]
    code, _, err = run_cli(args + ['--lr', '1e12'], capsys)
    assert code == 3
    last = err.strip().splitlines()[-1]
    assert 'no checkpoint was written' in last and 'last good checkpoint' not in last
    assert '--restart' in last and 'without a warm-up' in last
    before = files(run_dir)
    code, out, err = run_cli(args + ['--lr', '0.05', '--restart'], capsys)   # the advice
    assert code == 0, err
    moved = [p for p in os.listdir(tmp_path) if p.startswith('nan.old-')]
    assert len(moved) == 1 and 'now in' in out
    assert {k: v for k, v in files(tmp_path / moved[0]).items() if k != rundir.LOCK} == \
        {k: v for k, v in before.items() if k != rundir.LOCK}       # moved, not deleted
    assert rundir.read_status(str(run_dir))['state'] == 'finished'


def test_checkpoints_are_readable_like_other_files(tmp_path, capsys):
    run_dir = tmp_path / 'r'
    code, _, err = run_cli(QUICK + ['--max-iters', '2', '--run-dir', run_dir], capsys)
    assert code == 0, err
    mask = checkpoint.current_umask()
    for name in (checkpoint.LATEST, 'config.yaml', 'log.jsonl'):
        assert stat.S_IMODE(os.stat(run_dir / name).st_mode) == 0o666 & ~mask, name


# ---- damaged logs ----

def test_a_damaged_line_never_costs_the_records_after_it(tmp_path, capsys):
    run_dir = tmp_path / 'r'
    args = QUICK + ['--log-interval', '2', '--eval-interval', '4', '--checkpoint-interval', '4',
                    '--run-dir', run_dir]
    code, _, err = run_cli(args + ['--max-iters', '8'], capsys)
    assert code == 0, err
    log = run_dir / 'log.jsonl'
    lines = log.read_text().splitlines()
    damaged = lines[:2] + ['{"iteration": 3, "train_loss": "oops"}', '[1, 2]', '{torn'] + lines[2:]
    log.write_text('\n'.join(damaged) + '\n')
    records = read_log(run_dir, warn=None)
    assert [r['iteration'] for r in records] == [int(json.loads(x)['iteration']) for x in lines]
    capsys.readouterr()
    from gluon_resnet_v2 import plotting
    code, out, err = _run_cli([str(run_dir), '-o', str(tmp_path / 'c.png')], capsys,
                              plotting.main)
    assert code == 0 and (tmp_path / 'c.png').exists()
    assert 'log.jsonl line 3 is not a log record' in err and 'line 5' in err
    # resuming further rewrites the log: the valid records stay, the damaged lines go aside
    code, _, err = run_cli(args + ['--max-iters', '12'], capsys)
    assert code == 0, err
    kept = [r['iteration'] for r in read_log(run_dir, warn=None) if r['train_loss'] is not None]
    assert kept == [2, 4, 6, 8, 10, 12]
    aside = [json.loads(x) for x in (run_dir / ASIDE).read_text().splitlines()]
    assert [a['line'] for a in aside] == [3, 4, 5]
    assert all(a['reason'] == 'damaged' for a in aside) and aside[2]['text'] == '{torn'


def test_a_damaged_first_line_is_plotted_around(tmp_path, capsys):
    from gluon_resnet_v2.plotting import plot_runs
    log = tmp_path / 'log.jsonl'
    rows = [dict(iteration=i, train_loss=2.0 / i, test_err=0.5) for i in (1, 2, 3)]
    log.write_text('garbage\n' + ''.join(json.dumps(r) + '\n' for r in rows))
    assert os.path.exists(plot_runs({'r': str(log)}, str(tmp_path / 'p.png')))
    assert 'line 1 is not a log record' in capsys.readouterr().err


# ---- resuming on other data ----

def write_folder_dataset(root, seed):
    rng = np.random.default_rng(seed)
    for split, count in (('train', 48), ('test', 8)):
        for i in range(count):
            folder = root / split / ('c%d' % (i % 3))
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / ('%d.png' % i)), rng.integers(0, 256, (8, 8, 3), np.uint8))
    return root


def test_resuming_with_another_data_dir_is_reported_and_other_data_refused(tmp_path, capsys):
    first = write_folder_dataset(tmp_path / 'd1', 0)
    shutil.copytree(first, tmp_path / 'd2')                           # the same files
    other = write_folder_dataset(tmp_path / 'd3', 1)                  # other images
    run_dir = tmp_path / 'r'
    args = ['--dataset', 'folder', '--depth', '8', '--batch-size', '16', '--num-workers', '0',
            '--warmup-iters', '0', '--lr-steps', '12', '--run-dir', run_dir]
    code, _, err = run_cli(args + ['--data-dir', first, '--max-iters', '2'], capsys)
    assert code == 0, err
    before = files(run_dir)
    code, out, err = run_cli(args + ['--data-dir', other, '--max-iters', '4'], capsys)
    assert code == 2 and 'trained on other data' in err and 'mean' in err, err
    assert {k: v for k, v in files(run_dir).items() if k != rundir.LOCK} == \
        {k: v for k, v in before.items() if k != rundir.LOCK}
    code, out, err = run_cli(args + ['--data-dir', tmp_path / 'd2', '--max-iters', '4'], capsys)
    assert code == 0, err
    assert 'note: resuming with --data-dir %s' % (tmp_path / 'd2') in out


# ---- a validation split ----

def test_val_size_logs_val_error_and_selects_on_it(tmp_path, capsys):
    run_dir = tmp_path / 'val'
    code, out, err = run_cli(QUICK + ['--val-size', '64', '--max-iters', '8', '--eval-interval',
                                      '4', '--run-dir', run_dir], capsys)
    assert code == 0, err
    evals = [r for r in read_log(run_dir) if r['test_err'] is not None]
    assert [r['iteration'] for r in evals] == [4, 8]
    assert all(0 <= r['val_err'] <= 1 and r['val_loss'] > 0 for r in evals)
    best = checkpoint.load(str(run_dir / checkpoint.BEST))
    assert best['best'][0] == min(r['val_err'] for r in evals)
    assert best['data']['num_val'] == 64 and best['data']['num_train'] == 256
    table = out.strip().splitlines()
    assert table[-1].startswith('done: 8 iterations; final test error %.2f %%, best validation '
                                '%.2f %%' % (100 * evals[-1]['test_err'], 100 * best['best'][0]))
    assert any(line.split()[:3] == ['best', 'validation', 'error'] for line in table)


def test_a_warm_up_outlasting_an_epoch_run_is_refused_before_anything_is_written(tmp_path,
                                                                                 capsys):
    """Only the engine knows the length of an --epochs run (8 batches of 32 per epoch)."""
    args = ['--dataset', 'cifar10-sample', '--depth', '8', '--subset', '256', '--batch-size',
            '32', '--num-workers', '0', '--epochs', '1', '--run-dir', tmp_path / 'r']
    code, _, err = run_cli(args + ['--warmup-iters', '8'], capsys)
    assert code == 2 and 'not shorter than the run (8 iterations)' in err, err
    assert not (tmp_path / 'r').exists()
    code, _, err = run_cli(args + ['--warmup-iters', '7', '--eval-interval', '0'], capsys)
    assert code == 0, err


def test_ctrl_c_says_what_is_kept_and_how_to_resume(tmp_path):
    import signal
    run_dir = tmp_path / 'stopped'
    _, proc = start_training(run_dir, ['--max-iters', '400', '--checkpoint-interval', '5'],
                             (run_dir / checkpoint.LATEST).exists)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    last = err.strip().splitlines()[-1]
    assert last.startswith('interrupted at iteration ') and 'is kept in %s' % run_dir in last
    assert 'rerun the same command to resume' in last
    assert rundir.state(str(run_dir))['state'] == 'interrupted'


def test_a_damaged_latest_checkpoint_offers_the_best_one_and_that_advice_works(tmp_path,
                                                                               capsys):
    run_dir = tmp_path / 'r'
    args = QUICK + ['--log-interval', '2', '--eval-interval', '4', '--checkpoint-interval', '4',
                    '--run-dir', run_dir]
    code, _, err = run_cli(args + ['--max-iters', '8'], capsys)
    assert code == 0, err
    best = checkpoint.load(str(run_dir / checkpoint.BEST))['iteration']
    (run_dir / checkpoint.LATEST).write_bytes(b'\x80\x04truncated')
    code, _, err = run_cli(args + ['--max-iters', '12'], capsys)
    assert code == 2 and 'is unreadable' in err and '--resume-from best continues' in err, err
    code, out, err = run_cli(args + ['--max-iters', '12', '--resume-from', 'best'], capsys)
    assert code == 0, err
    assert 'resuming %s at iteration %d' % (run_dir, best) in out
    logged = [r['iteration'] for r in read_log(run_dir) if r['train_loss'] is not None]
    assert logged == [2, 4, 6, 8, 10, 12][:best // 2] + list(range(best + 2, 13, 2))
    assert checkpoint.load(str(run_dir / checkpoint.LATEST))['iteration'] == 12


def test_two_default_cpu_runs_of_one_command_are_bit_identical(tmp_path):
    """oneDNN on, the tests' thread count: the NaiveEngine default makes the same command
    in two processes give the same logged losses and the same weights."""
    env = {k: v for k, v in env1().items() if k not in ('MXNET_MKLDNN_ENABLED', 'OMP_NUM_THREADS')}
    env['OMP_NUM_THREADS'] = '2'
    runs = []
    for name in ('ra', 'rb'):
        proc = subprocess.run([sys.executable, '-m', 'gluon_resnet_v2.train'] + QUICK + [
            '--max-iters', '12', '--log-interval', '1', '--eval-interval', '6',
            '--run-dir', str(tmp_path / name)], env=env, capture_output=True, text=True,
            timeout=300, cwd=str(REPO))
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs.append(tmp_path / name)
    logs = [[{k: v for k, v in r.items() if k not in ('time', 'img_per_sec')}
             for r in read_log(run)] for run in runs]
    assert len(logs[0]) == 14 and logs[0] == logs[1]
    a, b = (checkpoint.load(str(run / checkpoint.LATEST))['params'] for run in runs)
    assert all(np.array_equal(a[k], b[k]) for k in a)
