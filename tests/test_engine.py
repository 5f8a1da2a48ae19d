"""The one training loop (engine.Loop) in-process: cadence of logs, evaluations and
checkpoints, the meter's sums, the divergence stops, resume bookkeeping; then the Gluon
and Module backends through it on a tiny net. No subprocess: the end-to-end runs (CLI,
SIGKILL resume) are in test_train.py.

The scripted backend computes nothing: iteration i gives every image the loss
`losses[i]` and a wrong prediction to the first `wrong[i]` images, so every number the
loop logs can be computed by hand.
"""
from dataclasses import replace

import mxnet as mx
import numpy as np
import pytest

from gluon_resnet_v2 import checkpoint, engine, schedule
from gluon_resnet_v2.config import Config, DataConfig, ModelConfig, OptimConfig, RunConfig
from gluon_resnet_v2.data import DATASETS, DatasetSpec, InMemoryData
from gluon_resnet_v2.errors import TrainingDiverged, UserError
from gluon_resnet_v2.runlog import read_log

CLASSES, IMAGES, BATCH = 4, 64, 8          # 8 iterations per epoch


def toy_data(cfg, data_dir):
    """64 training and 16 test images of 8x8 pixels in 4 classes, decoded in memory."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (IMAGES + 16, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(IMAGES + 16) % CLASSES
    return InMemoryData('toy', (images[:IMAGES], labels[:IMAGES]),
                        (images[IMAGES:], labels[IMAGES:]), CLASSES, pad=1,
                        subset=cfg.subset, num_workers=0)


@pytest.fixture(autouse=True)
def toy_dataset(monkeypatch):
    """The toy set is one entry of the dataset table, as any dataset is."""
    monkeypatch.setitem(DATASETS, 'toy', DatasetSpec(toy_data, 'cifar', CLASSES, lambda c: None,
                                                     'pad 1, crop, flip'))


def toy_cfg(run_dir, **run):
    return Config(model=ModelConfig(depth=8), data=DataConfig(dataset='toy', num_workers=0),
                  optim=OptimConfig(batch_size=BATCH, warmup_iters=2, lr_steps=(6,), max_iters=10),
                  run=RunConfig(run_dir=str(run_dir), **dict(dict(log_interval=3, eval_interval=4,
                                                                  checkpoint_interval=5), **run)))


class ScriptedBackend(engine.Backend):
    can_checkpoint = True

    def __init__(self, run, losses, wrong, test_errors, params=None):
        self.run, self.losses, self.wrong, self.test_errors = run, losses, wrong, test_errors
        self.params = params or (lambda it: {'w': np.full(3, float(it))})
        self.steps, self.saved_at, self.synced = 0, [], 0

    def output_ctxs(self):
        return [mx.cpu()]

    def step(self, x, y):
        n = self.run.local_batch
        assert x.shape[0] == self.run.batch          # the loop passes the global batch
        loss = mx.nd.full((n,), self.losses[self.steps])
        label = mx.nd.zeros(n)
        scores = mx.nd.one_hot(mx.nd.array([1] * self.wrong[self.steps] +
                                           [0] * (n - self.wrong[self.steps])), CLASSES)
        self.steps += 1
        return [(loss, scores, label)]

    def sync_statistics(self):
        self.synced += 1

    def evaluate(self, split='test'):
        return 0.5, self.test_errors.pop(0)

    def state(self):
        self.saved_at.append(self.steps)
        return {'params': self.params(self.steps), 'trainer': b''}


def scripted_loop(cfg, saved=None, **script):
    run = engine.Run(cfg, check_network=False)
    backend = ScriptedBackend(run, **script)
    if saved:
        backend.steps = saved['iteration']
    return engine.Loop(run, backend, saved, progress=False), backend


SCRIPT = dict(losses=[float(i + 1) for i in range(10)], wrong=[i % 3 for i in range(10)])


def strip(records):
    return [{k: v for k, v in r.items() if k not in ('time', 'img_per_sec')} for r in records]


def test_cadence_of_logs_evaluations_and_checkpoints(tmp_path):
    loop, backend = scripted_loop(toy_cfg(tmp_path), test_errors=[0.5, 0.25, 0.4], **SCRIPT)
    summary = loop.train()
    records = read_log(tmp_path)
    train = [r for r in records if r['train_loss'] is not None]
    test = [r for r in records if r['test_err'] is not None]
    assert [r['iteration'] for r in train] == [3, 6, 9, 10]
    assert [r['iteration'] for r in test] == [4, 8, 10]
    # 'best' at 4 and 8 (the error fell), 'latest' at 5 and 10 (the cadence and the end)
    assert backend.saved_at == [4, 5, 8, 10]
    assert checkpoint.load(checkpoint.path(tmp_path, 'latest'))['iteration'] == 10
    best = checkpoint.load(checkpoint.path(tmp_path, 'best'))
    assert best['iteration'] == 8 and best['best'] == (0.25, 8)
    assert summary['final_test_err'] == 0.4 and summary['best_err'] == 0.25
    assert summary['best_iteration'] == 8 and summary['iteration'] == 10
    assert (tmp_path / 'curves.png').exists() and (tmp_path / 'config.yaml').exists()


def test_meter_means_over_each_interval_and_the_schedule(tmp_path):
    loop, _ = scripted_loop(toy_cfg(tmp_path), test_errors=[0.5] * 3, **SCRIPT)
    loop.train()
    train = [r for r in read_log(tmp_path) if r['train_loss'] is not None]
    intervals = [(0, 3), (3, 6), (6, 9), (9, 10)]
    for r, (a, b) in zip(train, intervals):
        assert r['train_loss'] == pytest.approx(np.mean(SCRIPT['losses'][a:b]))
        assert r['train_err'] == pytest.approx(sum(SCRIPT['wrong'][a:b]) / ((b - a) * BATCH))
        assert r['lr'] == schedule.lr_at(loop.cfg.optim, b - 1)
        assert r['epoch'] == b / 8 and r['img_per_sec'] > 0
    assert [r['lr'] for r in train] == pytest.approx([0.1, 0.1, 0.01, 0.01])


def test_a_diverged_loss_stops_at_the_next_log_point(tmp_path):
    losses = SCRIPT['losses'][:6] + [float('nan')] * 4
    loop, backend = scripted_loop(toy_cfg(tmp_path, eval_interval=0), test_errors=[0.5],
                                  losses=losses, wrong=SCRIPT['wrong'])
    with pytest.raises(TrainingDiverged, match='loss became nan at iteration 9: the run stopped; '
                                               'its last good checkpoint .iteration 5. is kept'):
        loop.train()
    assert checkpoint.load(checkpoint.path(tmp_path, 'latest'))['iteration'] == 5
    assert [r['iteration'] for r in read_log(tmp_path)] == [3, 6]


def test_non_finite_weights_are_never_checkpointed(tmp_path):
    def params(it):
        return {'w': np.full(3, float(it)), 'b': np.array([np.inf if it >= 10 else 0.0])}
    loop, _ = scripted_loop(toy_cfg(tmp_path, eval_interval=0), test_errors=[0.5], params=params,
                            **SCRIPT)
    with pytest.raises(TrainingDiverged, match='parameter b became NaN/inf at iteration 10'):
        loop.train()
    assert checkpoint.load(checkpoint.path(tmp_path, 'latest'))['iteration'] == 5


def test_resume_continues_the_interval_and_the_log_exactly(tmp_path):
    """A run stopped after its checkpoint at 5 (mid log interval 3..6) and resumed ends
    with the log of an uninterrupted run: the meter's sums of iterations 4..5 and the best
    error come from the checkpoint, records past it are redone."""
    whole, cut = tmp_path / 'whole', tmp_path / 'cut'
    errors = [0.5, 0.25, 0.4]
    scripted_loop(toy_cfg(whole), test_errors=list(errors), **SCRIPT)[0].train()

    first, backend = scripted_loop(toy_cfg(cut), test_errors=list(errors), **SCRIPT)
    backend.step = stop_after(backend.step, 7)          # killed during iteration 8
    with pytest.raises(KeyboardInterrupt):
        first.train()
    assert [r['iteration'] for r in read_log(cut)] == [3, 4, 6]      # 6: after the checkpoint
    saved = checkpoint.resume_state(toy_cfg(cut), True, 10)
    assert saved['iteration'] == 5 and saved['meter']['images'] == 2 * BATCH
    assert saved['best'] == (0.5, 4)
    second, _ = scripted_loop(toy_cfg(cut), saved, test_errors=errors[1:], **SCRIPT)
    second.train()
    assert strip(read_log(cut)) == strip(read_log(whole))


def stop_after(step, count):
    calls = []

    def wrapped(x, y):
        if len(calls) == count:
            raise KeyboardInterrupt
        calls.append(1)
        return step(x, y)
    return wrapped


def test_resume_refuses_other_frozen_fields_and_allows_the_rest(tmp_path):
    cfg = toy_cfg(tmp_path, eval_interval=0)
    scripted_loop(cfg, test_errors=[0.5], **SCRIPT)[0].train()
    longer = replace(cfg, optim=replace(cfg.optim, max_iters=20),
                     run=replace(cfg.run, log_interval=7, cpus=2))
    assert checkpoint.resume_state(longer, True, 20)['iteration'] == 10
    for changed in (replace(cfg, optim=replace(cfg.optim, lr=0.2)),
                    replace(cfg, model=replace(cfg.model, gate_bias=-3.0)),
                    replace(cfg, run=replace(cfg.run, seed=1))):
        with pytest.raises(checkpoint.CheckpointError, match='was written with'):
            checkpoint.resume_state(changed, True, 20)
    with pytest.raises(UserError, match='past --max-iters 9'):
        checkpoint.resume_state(cfg, True, 9)


# ---- the real backends through the same loop ----

def test_gluon_backend_trains_and_checkpoints_through_the_loop(tmp_path):
    cfg = toy_cfg(tmp_path, eval_interval=5)
    summary = engine.fit(cfg, progress=False, echo=lambda *a: None)
    state = checkpoint.load(checkpoint.path(tmp_path, 'latest'))
    assert summary['iteration'] == state['iteration'] == 10 and not summary['resumed']
    assert state['params']['fc_weight'].shape == (CLASSES, 64)
    assert len(state['meter']['loss']) == 1 and state['trainer']
    test = [r for r in read_log(tmp_path) if r['test_err'] is not None]
    assert [r['iteration'] for r in test] == [5, 10]
    assert summary['final_test_err'] == test[-1]['test_err']
    assert state['config'] == cfg.to_dict()


def test_module_backend_trains_through_the_loop(tmp_path):
    from legacy_symbol import fit
    cfg = toy_cfg(tmp_path / 'module', eval_interval=5)
    run, backend, loop = fit.module_run(cfg, progress=False)
    before = {k: v.asnumpy() for k, v in backend.mod.get_params()[0].items()}
    summary = loop.train()
    after = {k: v.asnumpy() for k, v in backend.mod.get_params()[0].items()}
    assert not backend.can_checkpoint
    assert not (tmp_path / 'module' / checkpoint.LATEST).exists()      # a Module keeps none
    assert summary['params'].endswith('module-0010.params')
    assert [r['iteration'] for r in read_log(tmp_path / 'module')] == [3, 5, 6, 9, 10, 10]
    assert all(not np.array_equal(before[k], after[k]) for k in before if k.endswith('weight'))
