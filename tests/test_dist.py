"""dist_sync computes what one process computes: jobs of 2 workers and 1 server over
loopback, started by gluon_resnet_v2.launch, compared with one process by
scripts/bench_dist_sync.py (which runs 20 trials; a handful here).

What each trial checks: the workers' final checkpoint against the reference's, every
parameter within 1e-6, and the logged training losses (of the global batch) within 1e-6
relative. --resume: the whole job is SIGKILLed after its first checkpoint and rerun; it
must end bit-identical to the uninterrupted job."""
import re
import subprocess
import sys

import pytest

from support import REPO, env1

BENCH = [sys.executable, str(REPO / 'scripts' / 'bench_dist_sync.py')]


def bench(*args, env=None):
    done = subprocess.run(BENCH + list(args), cwd=REPO, env=env or env1(), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    return done.stdout


def test_bn_free_workers_equal_one_process_on_the_combined_batch():
    """Worker k's rows are rows k of each global batch; the servers sum the gradients; with
    no BatchNorm that is the gradient of the whole batch on one device."""
    out = bench('--trials', '3')
    trials = re.findall(r'max \|dist - one process\| (\S+) \(.*\), logged losses (\S+) apart'
                        r'.*  (ok|FAILED)', out)
    assert len(trials) == 3, out
    assert all(float(p) <= 1e-6 and float(l) <= 1e-6 for p, l, _ in trials), out
    assert 'equivalent: 3/3' in out


@pytest.mark.parametrize('net', ['resnet20'])
def test_batchnorm_statistics_are_averaged_and_a_killed_job_resumes_exactly(net):
    """With BN each worker normalises its own rows, as each device does in one process on
    2 contexts: weights and BN running statistics (averaged over the workers before the
    checkpoint) equal that process's; a whole-job kill and rerun changes nothing."""
    out = bench('--trials', '1', '--net', net, '--resume', '--iters', '4')
    assert 'reference: one process on 2 context(s)' in out
    assert re.search(r'max \|dist - one process\| 0 .*max diff 0  ok', out), out
    assert 'equivalent: 1/1' in out


def test_with_onednn_kernels_too():
    """oneDNN on (training's default): the jobs start (the weights stay in MXNet's own
    layout for the kvstore) and equal one process on 2 contexts."""
    env = {k: v for k, v in env1().items() if k != 'MXNET_MKLDNN_ENABLED'}
    out = bench('--trials', '1', '--net', 'resnet20', '--onednn', env=env)
    assert re.search(r'max \|dist - one process\| 0 .*  ok', out), out
    assert 'equivalent: 1/1' in out


def test_a_worker_that_fails_alone_ends_the_job(tmp_path):
    """A worker that stops with an error exits at once (without MXNet's exit barrier, where
    it would wait for the others forever): the launcher sees it and stops the job."""
    script = tmp_path / 'worker.py'
    script.write_text(
        'import sys\n'
        'from gluon_resnet_v2 import engine\n'
        'from gluon_resnet_v2.train import run\n'
        'log_train = engine.Loop._log_train\n'
        'def failing(self):\n'
        '    if self.run.rank == 1 and self.iteration == 2:\n'
        '        raise RuntimeError("worker 1 fails alone")\n'
        '    return log_train(self)\n'
        'engine.Loop._log_train = failing\n'
        'run()\n')
    command = [sys.executable, '-m', 'gluon_resnet_v2.launch', '-n', '2', '-s', '1', '--',
               sys.executable, str(script), '--dataset', 'cifar10-sample', '--depth', '8',
               '--batch-size', '8', '--max-iters', '50', '--warmup-iters', '0',
               '--num-workers', '0', '--eval-interval', '0', '--log-interval', '1',
               '--kvstore', 'dist_sync', '--run-dir', str(tmp_path / 'run')]
    done = subprocess.run(command, cwd=REPO, env=env1(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    assert 'RuntimeError: worker 1 fails alone' in done.stdout + done.stderr
    assert re.search(r'error: worker \d \(pid \d+\) exited with code 1', done.stderr)
