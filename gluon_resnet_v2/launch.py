"""Start a parameter-server job (`--kvstore dist_sync`): MXNet's scheduler, servers and workers.

    python -m gluon_resnet_v2.launch -n 2 -s 1 -- python -m gluon_resnet_v2.train \\
        --dataset cifar10-sample --kvstore dist_sync --run-dir runs/dist
    python -m gluon_resnet_v2.launch -n 4 -s 2 -H hosts.txt -- python -m gluon_resnet_v2.train ...
    python -m gluon_resnet_v2.launch -n 2 -H hosts.txt --dry-run -- python train.py

The workers run the command with ps-lite's DMLC_* variables; the scheduler and the servers
run `<python> -c "import mxnet"` (in MXNet 1.9 that import runs their loop and returns when
the workers are done). A process that fails stops the whole job; so does Ctrl-C (README
"Several processes and machines").
"""
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import click

from .cli import main_wrapper
from .errors import UserError

# commands whose workers use the servers only with --kvstore dist_* (python -m NAME, or NAME)
TRAINERS = ('gluon_resnet_v2.train', 'legacy_symbol.train', 'grv-train', 'grv-module-train')
TERM_WAIT = 5          # seconds from SIGTERM to SIGKILL
POLL = 0.1             # seconds between two looks at the processes


@dataclass
class Node:
    """One process of the job: its role, the launcher's index, where and what it runs."""
    role: str                       # scheduler | server | worker
    index: int
    argv: list                      # its command line here (ssh ... for a remote node)
    env: dict                       # the DMLC_* (and OMP) variables it gets
    host: str = None                # None: this machine
    proc: subprocess.Popen = None
    pumps: list = field(default_factory=list)       # the threads copying its output

    @property
    def label(self):
        return self.role if self.role == 'scheduler' else '%s %d' % (self.role, self.index)


def check_command(command):
    """Refuse (UserError) a command that cannot be the workers of a job."""
    if not command:
        raise UserError('no command to run: give it after --, e.g. launch -n 2 -- python -m '
                        'gluon_resnet_v2.train --kvstore dist_sync')
    argv = list(command)
    name = argv[argv.index('-m') + 1] if '-m' in argv[:-1] else os.path.basename(argv[0])
    if name not in TRAINERS:
        return
    kvstores = [a.partition('=')[2] or ''.join(argv[i + 1:i + 2])
                for i, a in enumerate(argv) if a.partition('=')[0] == '--kvstore']
    if kvstores and not kvstores[-1].startswith('dist'):
        raise UserError('--kvstore %s does not use the parameter servers: use --kvstore '
                        'dist_sync' % (kvstores[-1] or 'without a value'))
    if not kvstores and not any(a.partition('=')[0] == '--config' for a in argv):
        raise UserError('the training command has no --kvstore dist_*, so each worker would '
                        'train alone: add --kvstore dist_sync')


def job_hosts(launcher, hostfile, program, user_env):
    """The hosts of an ssh job, or None to run here (after checking `program` is found)."""
    launcher = launcher or ('ssh' if hostfile else 'local')
    if launcher == 'local' and hostfile:
        raise UserError('-H names hosts for --launcher ssh: add --launcher ssh, or drop -H to '
                        'run on this machine')
    if launcher == 'ssh' and not hostfile:
        raise UserError('--launcher ssh needs the hosts: give -H HOSTFILE (one host per line)')
    if hostfile:
        return read_hosts(hostfile)
    if not shutil.which(program, path=user_env.get('PATH')):
        raise UserError('command %s not found: check its name or PATH' % program)
    return None


def read_hosts(path):
    """The hosts of a hostfile: the first word of each line; `#` comments and blank lines
    are ignored."""
    try:
        with open(path) as fh:
            words = [line.split('#', 1)[0].split() for line in fh]
    except OSError as e:
        raise UserError('cannot read hostfile %s (%s): give a file with one host per line'
                        % (path, e.strerror))
    hosts = [w[0] for w in words if w]
    if not hosts:
        raise UserError('hostfile %s names no host: put one host per line' % path)
    return hosts


def address_towards(host):
    """This machine's address on the route to `host` (connecting a UDP socket sends nothing)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host.split('@')[-1], 9))
            return s.getsockname()[0]
    except OSError:
        raise UserError('cannot tell which address of this machine %s reaches: give it with '
                        '--scheduler-host ADDRESS' % host)


def plan(command, workers, servers, hosts, root, port, user_env):
    """Every Node of the job: the scheduler here; servers and workers round-robin over
    `hosts` (None: all here, over loopback)."""
    common = {'DMLC_PS_ROOT_URI': root, 'DMLC_PS_ROOT_PORT': str(port),
              'DMLC_NUM_SERVER': str(servers), 'DMLC_NUM_WORKER': str(workers)}
    if hosts is None:       # else ps-lite (and MXNet's own launcher) picks a non-loopback one
        common.update(DMLC_NODE_HOST='127.0.0.1', DMLC_INTERFACE='lo')
    # Python buffers the output of a pipe in blocks: unbuffered, lines come out when printed
    common['PYTHONUNBUFFERED'] = user_env.get('PYTHONUNBUFFERED', '1')
    # the scheduler's and servers' loops need no thread pool: one thread unless the user says
    quiet = {'OMP_NUM_THREADS': user_env.get('OMP_NUM_THREADS', '1')}
    python = command[0] if re.fullmatch(r'python[0-9.]*', os.path.basename(command[0])) \
        else sys.executable
    daemon = [python, '-c', 'import mxnet']
    roles = [('scheduler', 0, daemon, quiet)] + \
            [('server', i, daemon, quiet) for i in range(servers)] + \
            [('worker', i, list(command), {}) for i in range(workers)]
    nodes = []
    for role, i, argv, extra in roles:
        env = dict(common, DMLC_ROLE=role, **extra)
        host = None if hosts is None or role == 'scheduler' else hosts[i % len(hosts)]
        if host:
            argv = ['ssh', '-o', 'BatchMode=yes', host, 'cd %s && %s' % (
                shlex.quote(os.getcwd()), shell_line(env, argv))]
        nodes.append(Node(role, i, argv, env, host))
    return nodes


def shell_line(env, argv):
    """`env A=1 B=2 argv...`, quoted for a POSIX shell."""
    return shlex.join(['env'] + ['%s=%s' % kv for kv in sorted(env.items())] + list(argv))


def start(nodes, user_env):
    """Start every node, each in its own session (so its own process group, which signals
    reach as a whole and which is never the launcher's), then the threads copying output."""
    import ctypes
    libc = ctypes.CDLL(None)
    for node in nodes:
        env = user_env if node.host else dict(user_env, **node.env)
        try:     # PR_SET_PDEATHSIG: the kernel kills the node if the launcher dies (SIGKILL)
            node.proc = subprocess.Popen(node.argv, env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         start_new_session=True,
                                         preexec_fn=lambda: libc.prctl(1, signal.SIGKILL))
        except OSError as e:
            raise UserError('cannot start %s (%s): %s: check the command'
                            % (node.label, node.argv[0], e.strerror or e))
    lock = threading.Lock()
    for node in nodes:         # threads only now: preexec_fn is unsafe once threads run
        for pipe, out in ((node.proc.stdout, sys.stdout), (node.proc.stderr, sys.stderr)):
            node.pumps.append(threading.Thread(target=pump, daemon=True,
                                               args=(pipe, '[%s] ' % node.label, out, lock)))
            node.pumps[-1].start()


def pump(pipe, prefix, out, lock):
    """Copy `pipe` to `out`, each line prefixed with its node's label. A line ending in \\r
    (a progress bar redrawn in place) keeps its \\r. The pipe is read to its end even when
    `out` is gone (| head): a full pipe would block the node."""
    rest = b''
    for chunk in iter(lambda: os.read(pipe.fileno(), 65536), b''):
        *lines, rest = re.split(rb'(?<=\n)|(?<=\r)(?!\n)', rest + chunk)
        write(out, lock, prefix, lines)
    write(out, lock, prefix, [rest + b'\n'] if rest else [])


def write(out, lock, prefix, lines):
    with lock:
        try:
            out.write(''.join(prefix + line.decode(errors='replace') for line in lines))
            out.flush()
        except (OSError, ValueError):
            pass


def say(text):
    click.echo(text if text.startswith('error:') else 'launch: ' + text, err=True)


class Job:
    """The nodes once started, the signals received, and how the nodes are stopped."""

    def __init__(self, nodes, grace):
        self.nodes, self.grace, self.signals = nodes, grace, []
        self.workers = [n for n in nodes if n.role == 'worker']

    def on_signal(self, signum, frame):
        self.signals.append(signum)      # acted on by the loop in watch(), not here

    def running(self, nodes=None):
        return [n for n in (self.nodes if nodes is None else nodes)
                if n.proc and n.proc.poll() is None]

    def send(self, nodes, sig):
        for node in self.running(nodes):
            if node.proc.pid != os.getpgrp():      # its own group; never the launcher's
                try:
                    os.killpg(node.proc.pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass

    def wait(self, nodes, seconds, signals_seen=None):
        """Until `nodes` have exited or `seconds` passed; given the number of signals seen
        before, also until one more comes (a second Ctrl-C does not wait)."""
        end = time.monotonic() + seconds
        while self.running(nodes) and time.monotonic() < end:
            if signals_seen is not None and len(self.signals) > signals_seen:
                return
            time.sleep(POLL)

    def stop(self, interrupt=False):
        """Stop every node still running: when interrupted, SIGINT to the workers first (one
        blocked in a kvstore barrier does not react); then SIGTERM, then SIGKILL."""
        if interrupt:
            self.send(self.workers, signal.SIGINT)
            self.wait(self.workers, self.grace, len(self.signals))
            late = ', '.join(n.label for n in self.running(self.workers))
            if late:
                say('still running %g s after SIGINT (blocked in the kvstore?): %s; sending '
                    'SIGTERM' % (self.grace, late))
        self.send(self.nodes, signal.SIGTERM)
        self.wait(self.nodes, TERM_WAIT, len(self.signals))
        self.send(self.nodes, signal.SIGKILL)
        self.wait(self.nodes, TERM_WAIT)
        for thread in [t for n in self.nodes for t in n.pumps]:
            thread.join(timeout=1)

    def failure(self):
        """The first node that ended badly, as (node, how, exit code); else None."""
        for node in self.nodes:
            code = node.proc.poll() if node.proc else None
            if code:
                return (node, 'exited with code %d' % code, code) if code > 0 else \
                    (node, 'was killed by signal %s' % signal.Signals(-code).name, 128 - code)
        return None

    def watch(self):
        """Until the job ends; returns the launcher's exit code. A worker exiting 0 while
        others run is normal; the servers and the scheduler exit by themselves once all
        workers are done (else they are stopped after the grace period)."""
        done_at = None
        while True:
            if self.signals:
                say('interrupted (%s): stopping the job; Ctrl-C again to not wait'
                    % signal.Signals(self.signals[0]).name)
                self.stop(interrupt=True)
                return 128 + self.signals[0]
            bad = self.failure()
            if bad:
                node, how, code = bad
                [t.join(timeout=1) for t in node.pumps]      # its last lines come first
                say('error: %s (pid %d) %s; stopping the job' % (node.label, node.proc.pid, how))
                self.stop()
                return code
            if not self.running(self.workers):
                done_at = done_at or time.monotonic()
                if not self.running() or time.monotonic() - done_at > self.grace:
                    for node in self.running():
                        say('%s (pid %d) still runs %g s after the workers finished: '
                            'stopping it' % (node.label, node.proc.pid, self.grace))
                    self.stop()
                    return 0
            time.sleep(POLL)

    def run(self, user_env):
        """Start the nodes and watch them, with this process's SIGINT and SIGTERM handled by
        the job (restored afterwards); whatever happens, no node is left running."""
        old = {s: signal.signal(s, self.on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            start(self.nodes, user_env)
            say('scheduler at %s:%s; %s' % (
                self.nodes[0].env['DMLC_PS_ROOT_URI'], self.nodes[0].env['DMLC_PS_ROOT_PORT'],
                ', '.join('%s pid %d' % (n.label, n.proc.pid) for n in self.nodes)))
            return self.watch()
        finally:
            self.stop()
            for s, handler in old.items():
                signal.signal(s, handler)


@click.command(context_settings={'max_content_width': 100, 'allow_interspersed_args': False})
@click.option('-n', '--num-workers', type=click.IntRange(min=1), default=None, metavar='N',
              help='number of worker processes, each running COMMAND  [required]')
@click.option('-s', '--num-servers', type=click.IntRange(min=1), default=1, metavar='N',
              show_default=True,
              help='number of parameter-server processes')
@click.option('--launcher', type=click.Choice(['local', 'ssh']), default=None,
              help='local: every process on this machine, over loopback; ssh: servers and '
                   'workers on the hosts of -H  [default: ssh with -H, else local]')
@click.option('-H', '--hostfile', default=None, metavar='FILE',
              help='file with one host per line (ssh; # comments allowed)')
@click.option('--scheduler-host', default=None, metavar='ADDRESS',
              help='address at which the hosts reach this machine, where the scheduler runs '
                   '(ssh)  [default: this machine\'s address on the route to the first host]')
@click.option('--port', type=click.IntRange(1, 65535), default=None, metavar='PORT',
              help='scheduler port  [default: a free port]')
@click.option('--grace', type=click.FloatRange(min=0), default=10, show_default=True,
              metavar='SECONDS',
              help='seconds the workers get after Ctrl-C, and the servers after the workers '
                   'finished, before they are stopped')
@click.option('--dry-run', is_flag=True,
              help='print the command line of every process (with its environment) and exit')
@click.argument('command', nargs=-1, type=click.UNPROCESSED)
def main(num_workers, num_servers, launcher, hostfile, scheduler_host, port, grace, dry_run,
         command):
    """Run COMMAND (given after --) as the workers of an MXNet parameter-server job, with
    its scheduler and servers, e.g.

    \b
      launch -n 2 -- python -m gluon_resnet_v2.train --kvstore dist_sync --run-dir runs/d
      launch -n 4 -s 2 -H hosts.txt -- python -m gluon_resnet_v2.train --kvstore dist_sync

    Output lines are prefixed with the process ([worker 0] ...: the launcher's index, not
    kv.rank). Exit code: 0, else the first failing process's (128+N for signal N), 2 bad
    input, 130 Ctrl-C."""
    user_env = click.get_current_context().obj or dict(os.environ)
    check_command(command)
    if num_workers is None:
        raise UserError('how many workers? give -n WORKERS, e.g. -n 2')
    hosts = job_hosts(launcher, hostfile, command[0], user_env)
    root = scheduler_host or (address_towards(hosts[0]) if hosts else '127.0.0.1')
    with socket.socket() as s:        # a free port (the scheduler runs on this machine)
        s.bind(('127.0.0.1' if hosts is None else '', 0))
        port = port or s.getsockname()[1]
    nodes = plan(command, num_workers, num_servers, hosts, root, port, user_env)
    if dry_run:
        for node in nodes:
            click.echo('%s%s: %s' % (node.label, ' on ' + node.host if node.host else '',
                                     shlex.join(node.argv) if node.host
                                     else shell_line(node.env, node.argv)))
        return
    code = Job(nodes, grace).run(user_env)
    if code:
        sys.exit(code)
    say('done: %d workers finished' % num_workers)


def run():
    """The console command (pyproject's [project.scripts]): as `python -m` runs it."""
    # the job's processes get the user's environment, not main_wrapper's set-up of this one
    main.context_settings['obj'] = dict(os.environ)
    main_wrapper(main)()


if __name__ == '__main__':
    run()
