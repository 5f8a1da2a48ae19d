"""Checkpoints: one self-contained file each, written atomically.

A checkpoint holds everything a run needs to continue exactly where it stopped: the
parameters (BN running statistics included), the Trainer's optimizer state (momentum,
update counts, the schedule), the iteration, the running sums of the current log
interval, the best test error so far, the elapsed time and the resolved config.
Data order and augmentation are pure functions of (seed, epoch, batch) (data/loader.py)
and MXNet's generator is re-seeded from (seed, iteration) at every checkpoint
(engine.py), so nothing else is needed for a bit-exact resume. `resume_state` finds
and validates what a run continues from: the config fields declared frozen
(config.option) must match.

Each file is written to a temporary name in the same folder, flushed to disk and renamed
over the old one: a crash during the write leaves the previous checkpoint intact.
The files are Python pickles: load only checkpoints you trust.
"""
import os
import pickle
import tempfile

import mxnet as mx
import numpy as np

from .config import differences, frozen_fields
from .errors import UserError

FORMAT = 'gluon-resnet-v2 checkpoint'
VERSION = 1
LATEST, BEST = 'checkpoint-latest.pkl', 'checkpoint-best.pkl'


class CheckpointError(UserError):
    """An unreadable or mismatched checkpoint; the message says what to do."""


def path(run_dir, which='latest'):
    return os.path.join(run_dir, {'latest': LATEST, 'best': BEST}[which])


def params_to_numpy(net):
    """{parameter name: numpy array} read from the first context (they are identical)."""
    return {name: p.data(p.list_ctx()[0]).asnumpy() for name, p in net.collect_params().items()}


def load_params_into(net, params, where):
    """Load `params` ({name: numpy}) into `net`, initialised but not yet run (deferred
    shapes), on all of its contexts. Names and shapes are checked, so a checkpoint of
    another architecture is refused with a clear message.

    Loading must precede the first forward pass: after it, MKLDNN may hold the weights
    in its own layout, which `set_data` cannot overwrite."""
    mine = net.collect_params()
    missing, extra = sorted(set(mine) - set(params)), sorted(set(params) - set(mine))
    if missing or extra:
        raise CheckpointError('%s does not fit this network (%d parameters missing, e.g. %s; %d '
                              'unexpected, e.g. %s): it was saved for another architecture; '
                              'use a matching --model/--depth or a new --run-dir'
                              % (where, len(missing), (missing or ['-'])[0], len(extra),
                                 (extra or ['-'])[0]))
    for name, p in mine.items():
        value = params[name]
        known = p.shape or ()
        if len(known) != value.ndim or any(k not in (0, v) for k, v in zip(known, value.shape)):
            raise CheckpointError('%s: parameter %s has shape %s, the network expects %s: the '
                                  'checkpoint belongs to another architecture; use a new --run-dir'
                                  % (where, name, tuple(value.shape), tuple(known)))
        p._load_init(mx.nd.array(value, dtype=p.dtype), None)   # onto the deferred contexts


def save(file_path, state):
    """Write `state` (a dict) atomically to `file_path`."""
    folder = os.path.dirname(os.path.abspath(file_path))
    payload = dict(state, format=FORMAT, version=VERSION)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(file_path) + '.', dir=folder)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())      # readable like every other file (not 0600)
        with os.fdopen(fd, 'wb') as f:
            pickle.dump(payload, f, protocol=4)
            f.flush()
            os.fsync(f.fileno())   # the data must be on disk before the rename publishes it
        os.replace(tmp, file_path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def current_umask():
    mask = os.umask(0o022)          # the only way to read it; set back at once
    os.umask(mask)
    return mask


def load(file_path):
    """The state dict of a checkpoint file; CheckpointError if it is not a readable one."""
    try:
        with open(file_path, 'rb') as f:
            state = pickle.load(f)
    except FileNotFoundError:
        raise CheckpointError('no checkpoint at %s: train first, or point --run-dir at a run '
                              'directory that has one' % file_path) from None
    except Exception as e:  # truncated or foreign files raise anything from unpickling
        raise CheckpointError('checkpoint %s is unreadable (%s): delete it to start over, or use '
                              'a new --run-dir' % (file_path, type(e).__name__)) from None
    if not isinstance(state, dict) or state.get('format') != FORMAT:
        raise CheckpointError('%s is not a gluon-resnet-v2 checkpoint: delete it or use a new '
                              '--run-dir' % file_path)
    if state.get('version') != VERSION:
        raise CheckpointError('checkpoint %s has format version %s, this code reads %d: use the '
                              'matching release or a new --run-dir'
                              % (file_path, state.get('version'), VERSION))
    if not all(isinstance(v, np.ndarray) for v in state.get('params', {}).values()):
        raise CheckpointError('checkpoint %s holds malformed parameters: delete it or use a new '
                              '--run-dir' % file_path)
    return state


def trainer_states(trainer):
    """The Trainer's optimizer state as bytes (Trainer only writes them to a file)."""
    fd, tmp = tempfile.mkstemp(suffix='.states')
    os.close(fd)
    try:
        trainer.save_states(tmp)
        with open(tmp, 'rb') as f:
            return f.read()
    finally:
        os.remove(tmp)


def restore_trainer(trainer, blob):
    fd, tmp = tempfile.mkstemp(suffix='.states')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(blob)
        trainer.load_states(tmp)
    finally:
        os.remove(tmp)


def resume_state(cfg, writer, max_iters):
    """The checkpoint a run directory's training continues from, checked against `cfg`;
    None for a fresh run. Refuses (UserError) what cannot be continued: a run dir with a
    log but no checkpoint, a checkpoint of another model/data/recipe/seed, one already
    past `max_iters`, and any earlier run when cfg.run.resume is off. Only the writer
    (rank 0) refuses over files it would overwrite."""
    run_dir = cfg.run.run_dir
    latest = path(run_dir, cfg.run.resume_from)
    has_run = os.path.exists(latest) or os.path.exists(os.path.join(run_dir, 'log.jsonl'))
    if not cfg.run.resume:
        if has_run and writer:
            raise UserError('run dir %s already holds a run: pass --resume to continue it, '
                            '--restart to move it aside and start afresh, or choose a new '
                            '--run-dir (nothing was overwritten)' % run_dir)
        return None
    if not os.path.exists(latest):
        if os.path.exists(os.path.join(run_dir, 'log.jsonl')) and writer:
            raise UserError('run dir %s has a log.jsonl but no %s to resume from: %s'
                            % (run_dir, os.path.basename(latest), _ways_on(run_dir, latest)))
        return None
    try:
        state = load(latest)
    except CheckpointError as e:           # "<problem>: <fix>", with the fixes of a run dir
        raise CheckpointError('%s: %s' % (str(e).split(': ')[0],
                                          _ways_on(run_dir, latest))) from None
    check_same_config(state['config'], cfg.to_dict(), latest)
    if state['iteration'] > max_iters:
        raise UserError('%s is at iteration %d, past --max-iters %d: raise --max-iters to '
                        'train on, or use a new --run-dir' % (latest, state['iteration'],
                                                             max_iters))
    return state


def _ways_on(run_dir, missing):
    """What a user can do when the checkpoint to resume from is missing or damaged."""
    other = path(run_dir, 'best') if missing != path(run_dir, 'best') else None
    ways = ['--resume-from best continues from %s' % other] if other and os.path.exists(
        other) else []
    return '; '.join(ways + ['--restart moves the run aside and starts afresh',
                             'or choose a new --run-dir'])


def check_same_config(saved, current, where):
    """Refuse to resume a checkpoint written with a different model/data/recipe/seed (the
    fields config.py declares frozen)."""
    diff = differences(saved, current, frozen_fields())
    if diff:
        section, key, old, new = diff[0]
        raise CheckpointError(
            '%s was written with %s.%s = %r, this command asks for %r: rerun with the '
            "run's own settings (see its config.yaml), or use a new --run-dir"
            % (where, section, key, old, new))
