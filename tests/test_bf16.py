"""--dtype bfloat16 (bf16.py): where it is refused, what the cast plan computes in bfloat16,
and a bfloat16 run's whole life: steps, checkpoints, resume, evaluate, export, the Module
trainer.

The plan converts one graph (amp.convert_symbol) and patches nothing process-wide, so
these tests run in this process, next to float32 ones. The tests that train skip, with
the reason, on a machine that cannot train in bfloat16 (the refusals are tested anywhere).
"""
import contextlib
import json
import os
import pickle
from functools import partial

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

from gluon_resnet_v2 import bf16, checkpoint, engine, evaluate, export, factory, he_init
from gluon_resnet_v2.config import Config, DataConfig, ModelConfig, OptimConfig, RunConfig
from gluon_resnet_v2.data import build_data
from gluon_resnet_v2.errors import UserError
from gluon_resnet_v2.models import build_resnet
from gluon_resnet_v2.runlog import read_log
from gluon_resnet_v2.train import main as train_main

from support import run_cli

HERE = bf16.refusal(['cpu'], bf16.cpu_flags(), mx.runtime.Features().is_enabled('MKLDNN'),
                    os.environ.get('MXNET_MKLDNN_ENABLED', '1') != '0')
trains = pytest.mark.skipif(HERE is not None, reason='no bfloat16 training here: %s' % HERE)
BF16 = np.dtype([('bfloat16', np.uint16)])          # how MXNet shows bfloat16 to numpy


def tiny(run_dir, iters):
    """ResNet-8 on 256 images of the embedded CIFAR-10 sample, batch 32, in bfloat16."""
    return Config(model=ModelConfig(depth=8),
                  data=DataConfig(dataset='cifar10-sample', subset=256, num_workers=0),
                  optim=OptimConfig(batch_size=32, warmup_iters=0, max_iters=iters,
                                    dtype='bfloat16'),
                  run=RunConfig(run_dir=str(run_dir), log_interval=3, eval_interval=0,
                                checkpoint_interval=3))


def names(arrays):
    """The dtype names of NDArrays (MXNet gives numpy type classes)."""
    return {np.dtype(a.dtype).name for a in arrays}


def float32_net():
    """A float32 ResNet-8 with its shapes known, as GluonBackend has it before the casts."""
    mx.random.seed(1)
    net = build_resnet(8, 'cifar', 'v2', classes=10)
    net.initialize(he_init())
    net(mx.nd.zeros((1, 3, 32, 32)))
    return net


# ---------------------------------------------------------------- where it is refused

GOOD = dict(device_types=['cpu', 'cpu'], flags={'avx512f', 'avx512_bf16'}, onednn_built=True,
            onednn_on=True)


@pytest.mark.parametrize('facts, words', [
    (dict(device_types=['cpu', 'gpu']), 'use --dtype float16 on --gpus'),
    (dict(onednn_built=False), 'this MXNet build lacks'),
    (dict(onednn_on=False), 'drop --deterministic or unset MXNET_MKLDNN_ENABLED'),
    (dict(flags={'avx2', 'avx512f'}), 'needs a CPU with AVX512-BF16'),
    (dict(flags=set()), 'needs a CPU with AVX512-BF16'),
])
def test_refusal_is_one_line_naming_the_problem_and_the_fix(facts, words):
    assert bf16.refusal(**GOOD) is None
    why = bf16.refusal(**dict(GOOD, **facts))
    assert why.startswith('--dtype bfloat16 ') and words in why and '\n' not in why
    assert ': ' in why                                      # '<problem>: <fix>'


def test_cpu_flags_come_from_cpuinfo(tmp_path):
    info = tmp_path / 'cpuinfo'
    info.write_text('processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\nbugs\t\t: none\n')
    assert bf16.cpu_flags(str(info)) == {'fpu', 'avx2', 'avx512f', 'avx512_bf16'}
    assert bf16.cpu_flags(str(tmp_path / 'missing')) == frozenset()


def test_check_dtype_refuses_gpus_other_cpus_and_onednn_off(monkeypatch):
    with pytest.raises(UserError, match='is for CPUs'):
        factory.check_dtype('bfloat16', [mx.cpu(), mx.gpu(0)])
    monkeypatch.setattr(bf16, 'cpu_flags', lambda: frozenset({'avx2', 'avx512f'}))
    if mx.runtime.Features().is_enabled('MKLDNN'):
        with pytest.raises(UserError, match='AVX512-BF16'):
            factory.check_dtype('bfloat16', [mx.cpu()])
        monkeypatch.setattr(bf16, 'cpu_flags', lambda: frozenset({bf16.FLAG}))
        monkeypatch.setenv('MXNET_MKLDNN_ENABLED', '0')       # what --deterministic sets
        with pytest.raises(UserError, match='--deterministic'):
            factory.check_dtype('bfloat16', [mx.cpu()])
        monkeypatch.setenv('MXNET_MKLDNN_ENABLED', '1')
        factory.check_dtype('bfloat16', [mx.cpu()])           # the facts all fit
    with pytest.raises(UserError, match='float16 is not supported on CPU'):
        factory.check_dtype('float16', [mx.cpu()])            # float16 as before


def test_the_command_refuses_a_cpu_without_avx512_bf16_before_writing(tmp_path, capsys,
                                                                       monkeypatch):
    monkeypatch.setattr(bf16, 'cpu_flags', lambda: frozenset({'avx2'}))
    code, _, err = run_cli(['--dataset', 'cifar10-sample', '--depth', '8', '--dtype', 'bfloat16',
                            '--run-dir', tmp_path / 'run'], capsys, train_main)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith('error: --dtype bfloat16 ') and 'Traceback' not in err
    assert os.listdir(tmp_path) == []                         # nothing written


# ---------------------------------------------------------------- what runs in bfloat16

@trains
def test_convolutions_and_the_classifier_run_in_bfloat16_parameters_and_scores_in_float32():
    net = float32_net()
    sym = bf16.cast_symbol(net(mx.sym.var(bf16.INPUT, dtype='float32')))
    types = bf16.node_dtypes(sym)
    nodes = json.loads(sym.tojson(remove_amp_cast=False))['nodes']
    ops = {n['name']: n['op'] for n in nodes}
    weighted = [name for name, op in ops.items() if op in ('Convolution', 'FullyConnected')]
    assert len(weighted) == 10                    # stem, 3 x 2 units, 2 projections, fc
    assert all(types[name + '_output'] == BF16 for name in weighted)
    casts = [n for n in nodes if n['op'] == 'amp_cast' and n['attrs']['dtype'] == 'bfloat16']
    assert len(casts) >= len(weighted)            # every weight is cast from float32
    params = net.collect_params()
    assert all(types[name] == np.float32 for name in params)        # BN's included
    assert sym.infer_type(data='float32')[1] == [np.float32]       # the scores, for the loss


@trains
def test_the_bfloat16_graph_differs_from_float32_by_bfloat16_rounding_only():
    """The same weights and images: float32 as a graph (the control) agrees with the
    imperative net to float32 rounding; the cast graph differs by more than that and
    by less than bfloat16's precision allows."""
    net = float32_net()
    data = mx.sym.var(bf16.INPUT, dtype='float32')
    control = gluon.SymbolBlock(net(data), data, params=net.collect_params())
    x = mx.nd.array(np.random.default_rng(0).uniform(-2, 2, (16, 3, 32, 32)))
    want = net(x).asnumpy()

    def rel(block):
        return np.abs(block(x).asnumpy() - want).max() / np.abs(want).max()
    assert rel(control) < 1e-5
    assert 1e-4 < rel(bf16.training_block(net)) < 5e-2


@trains
def test_bfloat16_steps_lower_the_loss_on_float32_weights_gradients_and_momentum(tmp_path):
    run = engine.Run(tiny(tmp_path / 'run', 10))
    try:
        backend = engine.GluonBackend(run)
        with contextlib.closing(run.train_batches(0, 0)) as batches:
            x, y = next(iter(batches))
        losses = [float(backend.step(x, y)[0][0].mean().asscalar()) for _ in range(8)]
        assert losses[-1] < 0.7 * losses[0], losses            # the same batch, learnt
        params = backend.net.collect_params()
        assert backend.train_net is not backend.net
        assert all(backend.train_net.collect_params()[k] is p for k, p in params.items())
        assert names([p.data() for p in params.values()]) == {'float32'}
        assert names([p.grad() for p in params.values() if p.grad_req != 'null']) == {'float32'}
        momentum = pickle.loads(backend.trainer._updaters[0].get_states())
        assert len(momentum) == len(backend.trainer._params)
        assert names(momentum.values()) == {'float32'}
    finally:
        run.close()


# ---------------------------------------------------------------- a run's whole life

@trains
def test_a_bfloat16_run_resumes_and_evaluates_and_exports_in_float32(tmp_path, capsys):
    fit = partial(engine.fit, progress=False, echo=lambda *a: None)
    fit(tiny(tmp_path / 'whole', 6))
    fit(tiny(tmp_path / 'cut', 3))
    resumed = fit(tiny(tmp_path / 'cut', 6))
    whole, cut = (checkpoint.load(checkpoint.path(tmp_path / d)) for d in ('whole', 'cut'))
    assert resumed['resumed'] and whole['iteration'] == cut['iteration'] == 6
    assert cut['config']['optim']['dtype'] == 'bfloat16'
    for name, value in whole['params'].items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, cut['params'][name], err_msg=name)

    # evaluate: the float32 network of the checkpoint, as the run's own evaluation
    code, out, err = run_cli(['--run-dir', tmp_path / 'cut', '--json'], capsys, evaluate.main)
    assert code == 0, err
    logged = [r for r in read_log(tmp_path / 'cut') if r['test_err'] is not None][-1]
    assert abs(json.loads(out)['top1_err'] - logged['test_err']) <= 0.002      # 2 images
    # rel 1e-4: float32 at another batch size; a bfloat16 evaluation differs by ~1e-3
    assert json.loads(out)['test_loss'] == pytest.approx(logged['test_loss'], rel=1e-4)

    # export: float32 parameters, a graph without casts, the checkpoint's scores
    prefix = tmp_path / 'export' / 'model'
    code, _, err = run_cli(['--run-dir', tmp_path / 'cut', '--out', prefix], capsys, export.main)
    assert code == 0, err
    assert names(mx.nd.load('%s-0000.params' % prefix).values()) == {'float32'}
    graph = json.loads(open('%s-symbol.json' % prefix).read())
    assert not {'amp_cast', 'amp_multicast'} & {n['op'] for n in graph['nodes']}
    block = gluon.SymbolBlock.imports('%s-symbol.json' % prefix, ['data'],
                                      '%s-0000.params' % prefix)
    cfg = tiny(tmp_path / 'cut', 6)
    net = evaluate.restore_net(cfg, cut['params'], [mx.cpu()], 10)
    x = mx.nd.array(np.random.default_rng(1).normal(size=(4, 3, 32, 32)))
    np.testing.assert_allclose(block(x).asnumpy(), net(x).asnumpy(), rtol=1e-5, atol=1e-5)

    # the dtype is frozen: a float32 resume of the bfloat16 run is refused, nothing changes
    before = {p.name: p.read_bytes() for p in (tmp_path / 'cut').iterdir() if p.is_file()}
    code, _, err = run_cli(['--dataset', 'cifar10-sample', '--depth', '8', '--subset', '256',
                            '--batch-size', '32', '--warmup-iters', '0', '--max-iters', '9',
                            '--num-workers', '0', '--run-dir', tmp_path / 'cut'],
                           capsys, train_main)
    assert code == 2 and "optim.dtype = 'bfloat16'" in err, err
    assert {p.name: p.read_bytes() for p in (tmp_path / 'cut').iterdir() if p.is_file()} == before


@trains
def test_the_module_trainer_trains_the_cast_symbol_and_evaluates_float32(tmp_path):
    from legacy_symbol.fit import module_run
    cfg = tiny(tmp_path / 'module', 4)
    _, backend, loop = module_run(cfg, progress=False, echo=lambda *a: None)
    trained = bf16.node_dtypes(backend.mod.symbol, ('data', 'softmax_label'))
    assert trained['stem_conv_output'] == trained['fc_output'] == BF16
    assert backend.eval_mod is not backend.mod
    evaluated = bf16.node_dtypes(backend.eval_mod.symbol, ('data', 'softmax_label'))
    assert BF16 not in set(evaluated.values())
    summary = loop.train()
    assert names(mx.nd.load(summary['params']).values()) == {'float32'}
    # the Module's own evaluation equals a float32 Gluon evaluation of its final weights
    with build_data(cfg.data) as data:
        net = evaluate.restore_net(cfg, summary['params'], [mx.cpu()], data.classes)
        err = engine.evaluate(net, data, [mx.cpu()], 32)[1]
    assert abs(err - summary['final_test_err']) <= 0.002
