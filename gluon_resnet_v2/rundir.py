"""A run directory's owner and state: `run.lock` and `status.json`.

One process owns a run directory while it trains: it holds an exclusive `fcntl` lock on
`<run_dir>/run.lock` (which names it: pid, host, command, start time). A second process
on the same directory is refused at once, naming the holder. The kernel drops the lock
when its process ends, however it ends (SIGKILL included), so a dead run never blocks the
rerun that resumes it; the file's text may stay behind, the lock does not.

`status.json` says what the run is doing or how it ended, written atomically by the
owner: {"state": "running" | "finished" | "interrupted" | "diverged" | "failed",
"iteration": int, "max_iters": int, "message": str or null, "time": unix seconds}.
A "running" status whose lock nobody holds is a run that died without a word
(SIGKILL, power loss): `state()` reports it as "interrupted".
"""
import fcntl
import json
import os
import socket
import sys
import time

from .errors import UserError

LOCK, STATUS = 'run.lock', 'status.json'
STATES = ('running', 'finished', 'interrupted', 'diverged', 'failed')
# holder() probes the lock with a shared lock of a few microseconds; an owner taking it at
# that instant tries again for this long before it calls the directory busy
PROBE_GRACE = 1.0
BUSY = ' is in use by '


class RunDirBusy(UserError):
    """Another live process owns the run directory."""


def is_busy_refusal(message):
    """Whether a train command's error message (without `error: `) is RunDirBusy's."""
    return bool(message) and message.startswith('run dir ') and BUSY in message


class Ownership:
    """The exclusive lock of a run directory, held from `acquire()` to `release()` (or
    to the end of the process). A command takes it before it looks at the directory, so
    what it finds there (a run to resume, or none) stays true while it trains."""

    def __init__(self, run_dir):
        self.run_dir, self.path, self._fd = run_dir, os.path.join(run_dir, LOCK), None
        self._made = []                 # what acquire() created: run.lock, dirs (deepest first)
        self._found = None              # the text of a run.lock it found, until claim()

    @property
    def held(self):
        return self._fd is not None

    def acquire(self):
        """Take the lock, or raise RunDirBusy naming the holder, and write who holds it.
        Creates the run dir and run.lock if need be; `abandon()` removes them again when
        the command is refused, so a refused command leaves the directory as it was."""
        if self.held:
            return True
        while True:
            made_dirs = missing_dirs(self.run_dir)
            try:
                os.makedirs(self.run_dir, exist_ok=True)
                fd, made_file = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL,
                                        0o664), True
            except FileExistsError:
                try:
                    fd, made_file = os.open(self.path, os.O_RDWR), False
                except FileNotFoundError:     # abandoned just now: make it afresh
                    continue
            except FileNotFoundError:         # a dir was abandoned just now
                continue
            if not lock_now_or_soon(fd):
                os.close(fd)
                raise RunDirBusy('run dir %s%s%s: wait for it to finish, stop it, or choose '
                                 'another --run-dir'
                                 % (self.run_dir, BUSY, describe(read_holder(self.path))))
            if same_file(fd, self.path):
                break
            os.close(fd)                      # an abandoned file's lock: take the new one
        self._fd = fd
        self._made = ([self.path] if made_file else []) + made_dirs
        self._found = None if made_file else os.pread(fd, 1 << 16, 0)
        self._name_holder()
        return True

    def claim(self):
        """The run starts writing: run.lock names this process again (after a --restart's
        move, say) and stays, whatever the command's end."""
        self._made, self._found = [], None
        self._name_holder()

    def _name_holder(self, text=None):
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, text if text is not None else json.dumps(dict(
            pid=os.getpid(), host=socket.gethostname(), command=' '.join(sys.argv),
            started=time.time())).encode(), 0)

    def release(self):
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd, self._made, self._found = None, [], None

    def abandon(self):
        """Release, removing what acquire() created (run.lock, the run dir and parents
        it made if still empty) and putting back the text of a run.lock it found: for a
        command refused before it wrote anything."""
        if self._fd is None:
            return
        if self._found is not None:
            self._name_holder(self._found)
        made, self._made, self._found = self._made, [], None
        for path in made:
            try:
                (os.unlink if path == self.path else os.rmdir)(path)
            except OSError:                   # the dir holds something now: it stays
                pass
        self.release()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


def missing_dirs(path):
    """The folders os.makedirs(path) would create, deepest first."""
    missing = []
    path = os.path.abspath(path)
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    return missing


def same_file(fd, path):
    """Whether the open file `fd` is still the one at `path` (not unlinked by abandon())."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def lock_now_or_soon(fd):
    """Take the exclusive lock on `fd`, trying for PROBE_GRACE seconds: an owner holds it
    for its whole run, a holder() probe for microseconds. Returns whether it was taken."""
    deadline = time.monotonic() + PROBE_GRACE
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


def read_holder(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def describe(holder):
    if not holder:
        return 'another process'
    return 'process %s on %s (%s)' % (holder.get('pid'), holder.get('host'),
                                      holder.get('command', '?'))


def holder(run_dir):
    """Who holds the run directory's lock now ({pid, host, command, started}), or None."""
    path = os.path.join(run_dir, LOCK)
    if not os.path.exists(path):
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_holder(path) or {}
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def write_status(run_dir, state, iteration, max_iters, message=None):
    """status.json, written to a temporary name and renamed into place."""
    if state not in STATES:
        raise ValueError('unknown run state %r' % state)
    tmp = os.path.join(run_dir, '.' + STATUS + '.tmp')
    with open(tmp, 'w') as f:
        json.dump(dict(state=state, iteration=iteration, max_iters=max_iters, message=message,
                       time=time.time()), f)
    os.replace(tmp, os.path.join(run_dir, STATUS))


def read_status(run_dir):
    """The run's status dict, or None when it has none (older runs, or none started)."""
    try:
        with open(os.path.join(run_dir, STATUS)) as f:
            status = json.load(f)
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) and status.get('state') in STATES else None


def state(run_dir):
    """The run's state now: its status, with "running" corrected to "interrupted" when no
    live process holds the lock; None without a status."""
    status = read_status(run_dir)
    if status and status['state'] == 'running' and holder(run_dir) is None:
        status = dict(status, state='interrupted')
    return status


def move_aside(run_dir, owner=None):
    """--restart: rename a run dir that holds anything to `<run_dir>.old-<time>` (nothing is
    deleted) and give up its lock, so the run starts in a fresh directory; returns the
    new name, or None when there was nothing to move."""
    if not os.path.isdir(run_dir) or not os.listdir(run_dir):
        return None
    stamp = time.strftime('%Y%m%d-%H%M%S')
    target, n = '%s.old-%s' % (run_dir.rstrip(os.sep), stamp), 1
    while os.path.exists(target):
        n += 1
        target = '%s.old-%s-%d' % (run_dir.rstrip(os.sep), stamp, n)
    os.rename(run_dir, target)
    if owner is not None:
        owner.release()
    return target
