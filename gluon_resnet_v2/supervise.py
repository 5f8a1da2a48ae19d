"""The processes of a launched job, once started: their output copied with a prefix, watched
until the workers are done, and stopped together when one fails, on Ctrl-C or SIGTERM
(the launcher's half that runs; launch.py plans the processes)."""
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import click

from .errors import UserError

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
