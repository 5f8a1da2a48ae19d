"""The job launcher (gluon_resnet_v2.launch): real jobs of a scheduler, servers and workers
over loopback (results, output prefixes, a dead worker or server stops the job, Ctrl-C),
the command lines of ssh jobs (--dry-run), and bad input.

Every job runs as a real `python -m gluon_resnet_v2.launch` process with a timeout, and
afterwards no process it started may be left: a process is the job's if its environment
holds the job's DMLC_PS_ROOT_PORT (/proc/PID/environ), so a reused pid is not mistaken
for one."""
import io
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time

import pytest

from support import REPO, env1

LAUNCH = [sys.executable, '-m', 'gluon_resnet_v2.launch']

# a worker: one push of rank + 1 per worker, pulled back as the sum over the workers
SUM = '''
import mxnet as mx, os
kv = mx.kv.create('dist_sync')
kv.init(7, mx.nd.zeros((3,)))
kv.push(7, mx.nd.ones((3,)) * (kv.rank + 1))
out = mx.nd.zeros((3,))
kv.pull(7, out=out)
print('rank %d of %d sum %s on %s %s' % (kv.rank, kv.num_workers, out.asnumpy().tolist(),
      os.environ['DMLC_NODE_HOST'], os.environ['DMLC_INTERFACE']))
'''

# a worker that gets ready, then: rank 0 waits in a pull that needs rank 1's push; rank 1
# exits with code 3 (argument `exit`) or sleeps (`sleep`: it reacts to SIGINT, rank 0 cannot)
STUCK = '''
import mxnet as mx, os, sys, time
kv = mx.kv.create('dist_sync')
kv.init(7, mx.nd.zeros((3,)))
out = mx.nd.zeros((3,))
kv.pull(7, out=out)
out.wait_to_read()
print('ready', flush=True)
if kv.rank == 1:
    if sys.argv[1] == 'exit':
        os._exit(3)          # sys.exit would wait in the kvstore's exit barrier
    while True:
        time.sleep(0.1)
kv.push(7, out)
kv.pull(7, out=out)
out.wait_to_read()
'''


JOBS = []


@pytest.fixture(autouse=True)
def no_job_left():
    """After each test, even a failed one: SIGKILL whatever its jobs left running."""
    yield
    for job in JOBS:
        job.proc.kill()
        if any(l.startswith('launch: scheduler at') for l in job.err):
            [os.kill(pid, signal.SIGKILL) for pid in job.alive()]
    JOBS.clear()


class Job:
    """A launcher process; its output lines are collected by threads as they come."""

    def __init__(self, args, env=None):
        JOBS.append(self)
        self.proc = subprocess.Popen(LAUNCH + list(args), cwd=REPO, env=env or env1(),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out, self.err = [], []
        self.threads = [threading.Thread(target=lambda p=p, l=l: l.extend(iter(p.readline, '')))
                        for p, l in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        [t.start() for t in self.threads]

    def wait_for(self, condition, timeout=60):
        end = time.monotonic() + timeout
        while not condition() and self.proc.poll() is None and time.monotonic() < end:
            time.sleep(0.05)
        assert condition(), ''.join(self.out + self.err)[-3000:]

    def finish(self, timeout=60):
        """Wait for the launcher (killing it, which stops all, when it hangs); its code."""
        try:
            self.proc.wait(timeout=timeout)
        finally:
            self.proc.kill()
            [t.join(timeout=5) for t in self.threads]
        return self.proc.returncode

    def started(self):
        """The scheduler's port and {label: pid}, from the launcher's line naming them."""
        line = next(l for l in self.err if l.startswith('launch: scheduler at'))
        return int(re.search(r':(\d+);', line).group(1)), {
            label: int(pid) for label, pid in re.findall(r'(\w+(?: \d+)?) pid (\d+)', line)}

    def pids(self):
        return self.started()[1]

    def alive(self):
        """The pids of this job's processes still alive."""
        port, pids = self.started()
        mark = b'DMLC_PS_ROOT_PORT=%d\0' % port

        def ours(pid):
            try:
                with open('/proc/%d/environ' % pid, 'rb') as fh:
                    return mark in fh.read()
            except OSError:
                return False
        return [pid for pid in pids.values() if ours(pid)]

    def leftovers(self):
        """alive(), given a moment for the processes to be reaped."""
        end = time.monotonic() + 5
        while self.alive() and time.monotonic() < end:
            time.sleep(0.1)
        return self.alive()


def python_job(code, *extra, launch=('-n', '2', '-s', '1')):
    return Job(list(launch) + ['--'] + [sys.executable, '-c', code] + list(extra))


def test_two_workers_sum_over_loopback_with_prefixed_lines():
    job = python_job(SUM)
    assert job.finish() == 0, ''.join(job.err)[-3000:]
    lines = [l for l in job.out if ' sum ' in l]
    assert sorted(l.split(']')[0] for l in lines) == ['[worker 0', '[worker 1']
    # ranks are assigned by ps-lite, in connection order: each once, in any order
    ranks = sorted(int(re.search(r'rank (\d)', l).group(1)) for l in lines)
    assert ranks == [0, 1]
    assert all('of 2 sum [3.0, 3.0, 3.0] on 127.0.0.1 lo' in l for l in lines), lines
    assert set(job.pids()) == {'scheduler', 'server 0', 'worker 0', 'worker 1'}
    assert job.err[-1] == 'launch: done: 2 workers finished\n'
    assert job.leftovers() == []


def test_a_worker_that_fails_stops_the_job_with_its_code():
    job = python_job(STUCK, 'exit')
    start = time.monotonic()
    assert job.finish() == 3
    assert time.monotonic() - start < 45
    errors = [l for l in job.err if l.startswith('error:')]
    assert len(errors) == 1 and re.fullmatch(
        r'error: worker [01] \(pid \d+\) exited with code 3; stopping the job\n', errors[0])
    assert int(re.search(r'pid (\d+)', errors[0]).group(1)) in job.pids().values()
    assert job.leftovers() == []


def test_a_killed_server_stops_the_job():
    job = python_job(STUCK, 'sleep')
    job.wait_for(lambda: sum('ready' in l for l in job.out) == 2)
    server = job.pids()['server 0']
    os.kill(server, signal.SIGKILL)
    killed = time.monotonic()
    assert job.finish() == 128 + signal.SIGKILL
    assert time.monotonic() - killed < 15          # SIGTERM, then SIGKILL after 5 s
    assert 'error: server 0 (pid %d) was killed by signal SIGKILL; stopping the job\n' \
        % server in job.err
    assert job.leftovers() == []


def test_ctrl_c_forwards_sigint_then_stops_the_job():
    job = python_job(STUCK, 'sleep', launch=('-n', '2', '-s', '1', '--grace', '2'))
    job.wait_for(lambda: sum('ready' in l for l in job.out) == 2)
    job.proc.send_signal(signal.SIGINT)
    assert job.finish() == 130
    text = ''.join(job.err)
    # the sleeping worker got the SIGINT; the one blocked in a pull needs SIGTERM
    assert re.search(r'\[worker [01]\] KeyboardInterrupt', text), text[-2000:]
    assert 'launch: interrupted (SIGINT): stopping the job' in text
    # (it then waits in the kvstore's exit barrier: both need the SIGTERM)
    assert re.search(r'launch: still running 2 s after SIGINT \(blocked in the kvstore\?\): '
                     r'worker \d(, worker \d)?; sending SIGTERM', text), text[-2000:]
    assert job.leftovers() == []


def test_a_killed_launcher_takes_its_processes_along():
    """SIGKILL leaves the launcher no say: the kernel kills what it started (PR_SET_PDEATHSIG;
    scripts/bench_dist_sync.py kills whole jobs so)."""
    job = Job(['-n', '2', '--', sys.executable, '-c', 'import time; time.sleep(120)'])
    job.wait_for(lambda: any(l.startswith('launch: scheduler at') for l in job.err))
    assert len(job.alive()) == 4                 # the check below can see them
    job.proc.kill()
    assert job.finish() == -signal.SIGKILL
    assert job.leftovers() == []


def test_servers_still_running_after_the_workers_are_stopped_after_the_grace():
    """Workers that never use the kvstore: the scheduler and server wait for them forever."""
    job = Job(['-n', '2', '--grace', '1', '--', sys.executable, '-c', 'print("hi")'])
    assert job.finish() == 0, ''.join(job.err)
    assert sorted(job.out) == ['[worker 0] hi\n', '[worker 1] hi\n']
    for label in ('scheduler', 'server 0'):
        assert 'launch: %s (pid %d) still runs 1 s after the workers finished: stopping it\n' \
            % (label, job.pids()[label]) in job.err
    assert job.leftovers() == []


def test_the_trainer_runs_as_two_workers(tmp_path):
    run_dir = tmp_path / 'dist'
    job = Job(['-n', '2', '--', sys.executable, '-m', 'gluon_resnet_v2.train',
               '--dataset', 'cifar10-sample', '--depth', '8', '--subset', '64',
               '--num-workers', '0', '--max-iters', '2', '--batch-size', '8',
               '--warmup-iters', '0', '--eval-interval', '0', '--checkpoint-interval', '0',
               '--log-interval', '1', '--kvstore', 'dist_sync', '--run-dir', str(run_dir)])
    assert job.finish(timeout=120) == 0, ''.join(job.err)[-3000:]
    done = sorted(re.sub(r'^\[worker \d\] ', '', l) for l in job.out if '] done: ' in l)
    assert len(done) == 2 and done[0].startswith('done: 2 iterations as worker 1')
    assert done[1].startswith('done: 2 iterations; final test error'), done
    assert (run_dir / 'log.jsonl').stat().st_size > 0


def test_output_lines_are_prefixed_bars_redraw_and_a_last_partial_line_ends():
    from gluon_resnet_v2.supervise import pump
    read, write = os.pipe()
    os.write(write, 'step 1\r step 2\rdone \u00e9\nlast'.encode())
    os.close(write)
    out = io.StringIO()
    with os.fdopen(read, 'rb') as pipe:
        pump(pipe, '[worker 1] ', out, threading.Lock())
    assert out.getvalue() == ('[worker 1] step 1\r[worker 1]  step 2\r[worker 1] done \u00e9\n'
                              '[worker 1] last\n')


def dry_run(args, env=None, cwd=REPO):
    done = subprocess.run(LAUNCH + ['--dry-run'] + args, cwd=cwd, env=env or env1(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    nodes = {}
    for line in done.stdout.splitlines():
        label, command = line.split(': ', 1)
        nodes[label] = shlex.split(command)
    return nodes


def split_env(words):
    """`env A=1 B=2 cmd args` -> ({A: 1, B: 2}, [cmd, args])."""
    assert words[0] == 'env'
    n = next(i for i, w in enumerate(words[1:], 1) if not re.match(r'[A-Z_]+=', w))
    return dict(w.split('=', 1) for w in words[1:n]), words[n:]


def test_ssh_dry_run_command_lines(tmp_path):
    hosts = tmp_path / 'hosts'
    hosts.write_text('# the cluster\nnode-a\n\n  user@node-b   # second\n')
    command = ['python3', '-m', 'gluon_resnet_v2.train', '--kvstore', 'dist_sync',
               '--run-dir', "runs/it's a run", '--lr', '$HOME;rm -rf x']
    nodes = dry_run(['-n', '3', '-s', '2', '-H', str(hosts), '--scheduler-host', '10.1.2.3',
                     '--port', '9999', '--'] + command, cwd=tmp_path)
    assert list(nodes) == ['scheduler', 'server 0 on node-a', 'server 1 on user@node-b',
                           'worker 0 on node-a', 'worker 1 on user@node-b', 'worker 2 on node-a']
    common = {'DMLC_PS_ROOT_URI': '10.1.2.3', 'DMLC_PS_ROOT_PORT': '9999',
              'DMLC_NUM_SERVER': '2', 'DMLC_NUM_WORKER': '3', 'PYTHONUNBUFFERED': '1'}
    env, argv = split_env(nodes['scheduler'])       # on this machine, not over ssh
    assert env == dict(common, DMLC_ROLE='scheduler', OMP_NUM_THREADS='1')
    assert argv == ['python3', '-c', 'import mxnet']
    for label, words in list(nodes.items())[1:]:
        host = label.split(' on ')[1]
        assert words[:4] == ['ssh', '-o', 'BatchMode=yes', host] and len(words) == 5
        remote = shlex.split(words[4])
        assert remote[:3] == ['cd', str(tmp_path), '&&']
        env, argv = split_env(remote[3:])
        role = label.split()[0]
        assert env == dict(common, DMLC_ROLE=role, **({'OMP_NUM_THREADS': '1'}
                                                      if role == 'server' else {}))
        assert argv == (command if role == 'worker' else ['python3', '-c', 'import mxnet'])


def test_local_dry_run_environment():
    env = {k: v for k, v in env1().items() if k != 'OMP_NUM_THREADS'}
    nodes = dry_run(['-n', '1', '-s', '1', '--', 'true'], env=env)
    assert list(nodes) == ['scheduler', 'server 0', 'worker 0']
    loopback = {'DMLC_PS_ROOT_URI': '127.0.0.1', 'DMLC_NODE_HOST': '127.0.0.1',
                'DMLC_INTERFACE': 'lo', 'DMLC_NUM_SERVER': '1', 'DMLC_NUM_WORKER': '1',
                'PYTHONUNBUFFERED': '1'}
    for label, words in nodes.items():
        node_env, argv = split_env(words)
        assert loopback.items() <= node_env.items()
        assert node_env.get('OMP_NUM_THREADS') == (None if label == 'worker 0' else '1')
        # not a python command: the servers run under the launcher's interpreter
        assert argv == (['true'] if label == 'worker 0' else [sys.executable, '-c', 'import mxnet'])
    nodes = dry_run(['-n', '1', '--', 'true'], env=dict(env, OMP_NUM_THREADS='3'))
    assert split_env(nodes['server 0'])[0]['OMP_NUM_THREADS'] == '3'      # the user's value


@pytest.mark.parametrize('args, problem', [
    ([], 'no command to run: give it after --'),
    (['-n', '2'], 'no command to run'),
    (['--', 'true'], 'how many workers? give -n WORKERS'),
    (['-n', '0', '--', 'true'], '0 is not in the range'),
    (['-n', '2', '-s', '0', '--', 'true'], '0 is not in the range'),
    (['-n', '2', '-H', 'no-such-file', '--', 'true'], 'cannot read hostfile no-such-file'),
    (['-n', '2', '-H', '{empty}', '--', 'true'], 'names no host: put one host per line'),
    (['-n', '2', '--launcher', 'ssh', '--', 'true'], 'needs the hosts: give -H HOSTFILE'),
    (['-n', '2', '--launcher', 'local', '-H', '{empty}', '--', 'true'], '-H names hosts'),
    (['-n', '2', '--', 'python', '-m', 'gluon_resnet_v2.train', '--max-iters', '2'],
     'has no --kvstore dist_*, so each worker would train alone: add --kvstore dist_sync'),
    (['-n', '2', '--', 'grv-train', '--kvstore=device'], 'use --kvstore dist_sync'),
    (['-n', '2', '--', 'python3', '-m', 'legacy_symbol.train', '--kvstore'],
     '--kvstore without a value does not use the parameter servers'),
    (['-n', '2', '--', 'no-such-command-xyz'], 'command no-such-command-xyz not found'),
    (['-n', '2', '--bogus', '--', 'true'], 'no such option'),
])
def test_bad_input_one_line_exit_2(args, problem, tmp_path):
    empty = tmp_path / 'hosts'
    empty.write_text('# nobody\n\n')
    done = subprocess.run(LAUNCH + [a.format(empty=empty) for a in args], cwd=tmp_path,
                          env=env1(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ''
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith('error: '), done.stderr
    assert problem.lower() in done.stderr.lower()
