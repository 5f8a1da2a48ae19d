"""Process environment variables, changed only inside a scope that restores them.

Importing the library changes nothing; a command-line entry point sets the process up
for MXNet (cli.main_wrapper runs every command inside `command_line()`), and code that
needs a variable for one call (MXNet reads MXNET_SUBGRAPH_BACKEND and
MXNET_BACKWARD_DO_MIRROR when a Module binds) sets it with `scoped` around that call.
"""
import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def scoped(values=None, defaults=None):
    """Inside the block: `values` set (a value None unsets the variable), `defaults` set
    where the variable is unset (the user's own setting wins). Afterwards every variable
    touched has its old value again, or is unset again."""
    values, defaults = dict(values or {}), dict(defaults or {})
    touched = set(values) | {k for k in defaults if k not in os.environ}
    old = {k: os.environ.get(k) for k in touched}
    for key in touched:
        _set(key, values[key] if key in values else defaults[key])
    try:
        yield
    finally:
        for key, value in old.items():
            _set(key, value)


def _set(key, value):
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = str(value)


def cores():
    """The cores this process may run on (its affinity mask where the OS has one)."""
    return (len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
            else os.cpu_count()) or 1


def command_line_defaults():
    """What a command-line run needs before MXNet is imported: MXNet sizes its CPU thread
    pool at import and, with OMP_NUM_THREADS unset, uses half the cores (measured 0.64x
    the speed on 2 cores). A value the user set stands."""
    # MXNET_SUBGRAPH_VERBOSE=0: no "Subgraph backend MKLDNN is activated" line per bind
    return {'OMP_NUM_THREADS': str(cores()), 'MXNET_SUBGRAPH_VERBOSE': '0'}


def command_line():
    """The scope a command-line entry point runs in."""
    return scoped(defaults=command_line_defaults())


# CPU runs use MXNet's NaiveEngine, which runs each operation when it is issued: measured
# on 2 cores, the same command twice gives bit-identical runs (the threaded engine's
# varying execution order changes oneDNN's buffers and roundings from the first logged
# iteration), a killed and resumed run equals an uninterrupted one, and it is no slower
# (ResNet-20 b64 725 vs 624 img/s, ResNet-110 b128 about equal; docs/results/
# reproducibility.md). GPUs keep the threaded engine, which overlaps host and device.
CPU_ENGINE = {'MXNET_ENGINE_TYPE': 'NaiveEngine'}


def training(run_cfg):
    """The scope a training command runs in, set before MXNet is imported: --deterministic's
    variables, else on CPUs the NaiveEngine (unless the user chose an engine)."""
    if run_cfg.deterministic:
        return deterministic(True)
    return scoped() if run_cfg.gpus else scoped(defaults=CPU_ENGINE)


# --deterministic: MXNet's native kernels (oneDNN's round differently with buffer
# alignment) on one OpenMP thread; measured bit-identical across processes and through a
# kill and resume (README "Reproducibility"). Both are read once, when MXNet is imported.
DETERMINISTIC = {'MXNET_MKLDNN_ENABLED': '0', 'OMP_NUM_THREADS': '1'}


def deterministic(enabled):
    """The scope a run needs: DETERMINISTIC set when `enabled`, before MXNet is imported.
    A process that imported MXNet with other settings cannot be made deterministic: a
    UserError says how to run it."""
    if not enabled:
        return scoped()
    wrong = {k: os.environ.get(k) for k, v in DETERMINISTIC.items() if os.environ.get(k) != v}
    if wrong and 'mxnet' in sys.modules:
        from .errors import UserError
        raise UserError('--deterministic needs %s before MXNet is imported, and this process '
                        'imported it with %s: run the command line (python -m ...), or set '
                        'those variables first' % (
                            ' '.join('%s=%s' % kv for kv in DETERMINISTIC.items()),
                            ', '.join('%s=%s' % kv for kv in wrong.items())))
    # without oneDNN every operator logs a "storage type fallback" once: not a problem
    return scoped(DETERMINISTIC, defaults={'MXNET_STORAGE_FALLBACK_LOG_VERBOSE': '0'})


# What MXNet 1.9.1's graph executor prints at every bind with MXNET_SUBGRAPH_BACKEND=NONE,
# an unconditional LOG(INFO) that no variable silences (graph_executor.cc:60)
NONE_BACKEND_LINE = 'subgraph backend is not in use'


@contextlib.contextmanager
def native_log_without(*markers):
    """Inside the block, what is written to file descriptor 2 (MXNet's C++ log, and
    Python's stderr) is held back; afterwards every line passes through but those
    holding one of `markers`. For short calls only (a bind): held lines appear late."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            for line in held.read().decode(errors='replace').splitlines(True):
                if not any(m in line for m in markers):
                    sys.stderr.write(line)
            sys.stderr.flush()
