"""Run one function in a fresh Python process and read its result back.

The comparisons need processes of their own: MXNet reads some variables once per process
(MXNET_MKLDNN_ENABLED), a peak-memory measurement must be the only thing in its process
(ru_maxrss), and the default MKLDNN subgraph backend must run with MXNET_SUBGRAPH_BACKEND
unset while the parent keeps it at NONE. One protocol serves them all:

    run('legacy_symbol.compare.speed:measure', {'spec': {...}}, env=...)

writes {function, kwargs} to a job file in a temporary directory and starts
`python -m legacy_symbol.compare.child JOBFILE RESULTFILE` with `env` (default: this
process's) and the repository root as working directory, so the packages import from the
source tree as they do here. The child imports the function, calls it with the keyword
arguments and writes its return value to the result file as JSON. Arrays do not travel
this way: a function that produces them writes npz files into a directory it is given and
returns their paths.

Outcomes in the parent:
  * the function returned: its value (JSON round trip: tuples come back as lists);
  * it raised gluon_resnet_v2.errors.UserError: the child exits 2 and `run` raises a
    UserError with the same one-line message (bad input stays bad input, one line, exit 2);
  * anything else (an exception, a crash, a kill by the kernel for memory): ChildFailed,
    a RuntimeError carrying the exit code and the tail of the child's stderr.
"""
import importlib
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STDERR_TAIL = 4000        # characters of the child's stderr a ChildFailed carries


class ChildFailed(RuntimeError):
    """The child process failed other than with a UserError."""

    def __init__(self, function, returncode, stderr):
        self.function, self.returncode, self.stderr = function, returncode, stderr
        super().__init__('%s failed in a child process (exit code %d):\n%s'
                         % (function, returncode, stderr))


def run(function, kwargs, env=None):
    """`function(**kwargs)` in a child process; its JSON result (see the module docstring)."""
    return run_logged(function, kwargs, env)[0]


def run_logged(function, kwargs, env=None):
    """As `run`, and the child's whole stderr (where MXNet logs, e.g. which subgraph
    backend it activated): (result, stderr)."""
    with tempfile.TemporaryDirectory(prefix='compare-child-') as tmp:
        job, result = os.path.join(tmp, 'job.json'), os.path.join(tmp, 'result.json')
        with open(job, 'w') as f:
            json.dump({'function': function, 'kwargs': kwargs}, f)
        proc = subprocess.run([sys.executable, '-m', __name__, job, result],
                              env=os.environ.copy() if env is None else env, cwd=ROOT,
                              capture_output=True, text=True)
        outcome = _read(result) if proc.returncode in (0, 2) else None
    if proc.returncode == 0 and outcome and 'value' in outcome:
        return outcome['value'], proc.stderr
    if proc.returncode == 2 and outcome and 'user_error' in outcome:
        from gluon_resnet_v2.errors import UserError
        raise UserError(outcome['user_error'])
    raise ChildFailed(function, proc.returncode, proc.stderr[-STDERR_TAIL:])


def _read(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):       # not written, or cut short
        return None


def _call(job_path, result_path):
    """The child's side: import, call, write {'value': ...} or {'user_error': ...}."""
    with open(job_path) as f:
        job = json.load(f)
    module, _, name = job['function'].partition(':')
    function = getattr(importlib.import_module(module), name)
    try:
        outcome = {'value': function(**job['kwargs'])}
    except Exception as e:
        # imported only now, so nothing of the core (which sets variables, and loads
        # libraries that do) runs before the function, in the environment it was given
        from gluon_resnet_v2.errors import UserError
        if not isinstance(e, UserError):
            raise
        message = ' '.join(str(e).split())
        outcome = {'user_error': message}
        print('error: %s' % message, file=sys.stderr)
    with open(result_path, 'w') as f:
        json.dump(outcome, f)
    return 2 if 'user_error' in outcome else 0


if __name__ == '__main__':
    sys.exit(_call(*sys.argv[1:]))
