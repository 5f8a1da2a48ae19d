"""Helpers shared by several test modules (not a test module: pytest collects nothing here).

Test modules import from this file, never from one another. The child_* functions at the
end are run in child processes by the tests of legacy_symbol.compare.child.
"""
import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PNG = b'\x89PNG\r\n\x1a\n'


def run_cli(args, capsys, command):
    """Run a click command in-process as its __main__ does; (exit code, stdout, stderr)."""
    from gluon_resnet_v2 import cli
    try:
        cli.main_wrapper(command)(list(map(str, args)))
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def env1(**extra):
    """The deterministic CPU setting for child processes: one OpenMP thread and MXNet's
    native kernels.

    oneDNN (MKLDNN) kernels round differently depending on how buffers happen to be
    aligned in memory (measured: two processes differing only in their command line
    diverge in the last bit at iteration 2), so bit-exact comparisons across processes
    turn it off; the same runs with it on agree to ~1e-7 and then drift chaotically."""
    return dict(os.environ, OMP_NUM_THREADS='1', MXNET_MKLDNN_ENABLED='0', PYTHONPATH=str(REPO),
                MXNET_STORAGE_FALLBACK_LOG_VERBOSE='0', **extra)


def write_rec(root, split, count, rng, classes=4):
    """An ImageNet-style RecordIO split `root/split.rec/.idx`: solid random-colour JPEGs of
    varied sizes, labels 0, 1, .., classes - 1 in turn; returns (colours, labels)."""
    import mxnet as mx
    record = mx.recordio.MXIndexedRecordIO(str(root / (split + '.idx')),
                                           str(root / (split + '.rec')), 'w')
    colours = rng.integers(30, 226, (count, 3))
    labels = np.arange(count) % classes
    for i in range(count):
        h, w = rng.integers(24, 64, 2)
        bgr = np.broadcast_to(colours[i][::-1], (h, w, 3)).astype(np.uint8)
        header = mx.recordio.IRHeader(0, float(labels[i]), i, 0)
        record.write_idx(i, mx.recordio.pack_img(header, bgr, quality=95))
    record.close()
    return colours, labels


# ---- functions a child process runs: tests of legacy_symbol.compare.child import them as
# 'support:NAME' with tests/ on the child's PYTHONPATH

def child_echo(**kwargs):
    """Returns its arguments and the environment the child process sees."""
    return {'kwargs': kwargs, 'env': dict(os.environ)}


def child_refuse(message):
    """Bad input in the child: a UserError with a message on several lines."""
    from gluon_resnet_v2.errors import UserError
    raise UserError(message)


def child_crash(message):
    """A failure that is not the user's: something on stderr, then an exception."""
    import sys
    print(message, file=sys.stderr)
    raise RuntimeError('the child crashed')
