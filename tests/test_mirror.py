"""gluon_resnet_v2.mirror: the memory-mirroring plan of `legacy_symbol.train --mirror` (issue 4)
and of `gluon_resnet_v2.train --memory-saving` (tests/test_memory_saving.py).

What is checked: where the graph is cut (by hand for a toy graph and for ResNet-20), that
the planned symbol binds to a much smaller executor memory plan while MXNET_BACKWARD_DO_MIRROR
alone does not, that a training step computes bit-identical outputs, gradients and BN
statistics with and without the plan (MKLDNN and MXNet's native kernels), and that no
recomputed node is left without a reader (MXNet's native convolution refuses to run one).
Peak memory and speed are measured by `compare speed`, not here.
"""
import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mxnet as mx
import pytest

from gluon_resnet_v2 import mirror
from legacy_symbol import paper

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def exact_backend(monkeypatch):
    monkeypatch.setenv('MXNET_SUBGRAPH_BACKEND', 'NONE')
    monkeypatch.delenv('MXNET_BACKWARD_DO_MIRROR', raising=False)


def shapes(batch):
    return {'data': (batch, 3, 32, 32), 'softmax_label': (batch,)}


def names_of(sym, positions):
    nodes = json.loads(sym.tojson())['nodes']
    return [nodes[i]['name'] for i in positions]


def bound(sym, batch, policy=None):
    """An executor bound as the Module binds for training (no data / label gradient)."""
    req = {k: 'null' if k in ('data', 'softmax_label') else 'write' for k in sym.list_arguments()}
    with mirror.bind_env(policy) if policy else contextlib.nullcontext():
        return sym.simple_bind(mx.cpu(), grad_req=req, **shapes(batch))


def planned_mb(executor):
    return int(re.search(r'Total (\d+) MB allocated', executor.debug_str()).group(1))


def mirrored(executor):
    return re.findall(r'^Op:(\w+), Name=(\S+)_mirror$', executor.debug_str(), re.M)


# ---- where the graph is cut

def test_cut_points_of_a_toy_residual_graph():
    """v -> x -> a -> b -> (x + b) -> c -> d: inside the skip (a, b) nothing is a cut,
    because x lives until the addition; x, the addition and the chain after it are. The
    input variable never constrains a cut (variables are never freed)."""
    x = mx.sym.Activation(mx.sym.var('v'), act_type='relu', name='x')
    a = mx.sym.Activation(x, act_type='relu', name='a')
    b = mx.sym.Activation(a, act_type='tanh', name='b')
    s = mx.sym.elemwise_add(x, b, name='s')
    c = mx.sym.Activation(s, act_type='relu', name='c')
    d = mx.sym.Activation(c, act_type='relu', name='d')
    data, ops = mirror.graph(d)
    assert names_of(d, ops) == ['x', 'a', 'b', 's', 'c', 'd']
    assert names_of(d, mirror.cut_points(data['nodes'], ops)) == ['x', 's', 'c']  # d: output


def test_cut_points_of_resnet20_are_the_residual_stream():
    """ResNet-20 v2: the stem chain, the output of every unit (the additions), and inside
    the two projection units the shared pre-activation (bn1, relu1), which the block and the
    1x1 projection both read while the unit's input is not read again."""
    sym = paper.get_training_symbol('cifar_resnet20_v2')
    data, ops = mirror.graph(sym)
    cuts = names_of(sym, mirror.cut_points(data['nodes'], ops))
    adds = [n for n in names_of(sym, ops) if n.startswith('_plus')]
    assert len(adds) == 9 and set(adds) <= set(cuts)
    assert cuts[:3] == ['stem_conv', 'stem_bn', 'stem_relu']
    assert set(cuts) - set(adds) - {'stem_conv', 'stem_bn', 'stem_relu'} == {
        'stage2_unit1_bn1', 'stage2_unit1_relu1', 'stage3_unit1_bn1', 'stage3_unit1_relu1',
        'bn_final', 'relu_final', 'pool', 'fc'}


def test_choose_kept_by_hand():
    """Segments close at the first cut past the budget; estimate = kept + largest segment."""
    ops, cuts = [0, 1, 2, 3, 4, 5], [1, 3, 5]
    size = {i: 10 for i in ops}
    assert mirror.choose_kept(ops, cuts, size, 0) == ([1, 3, 5], 30 + 10)
    assert mirror.choose_kept(ops, cuts, size, 25) == ([3], 10 + 30)
    assert mirror.choose_kept(ops, cuts, size, 1000) == ([], 60)


# ---- the plan binds to less memory, and changes no number

def test_planned_mirroring_cuts_the_executor_memory_plan_env_alone_does_not():
    sym = paper.get_training_symbol('cifar_resnet20_v2')
    plain = planned_mb(bound(sym, 128))
    planned, plan = mirror.apply(sym, shapes(128))
    with_plan = planned_mb(bound(planned, 128, 'segments'))
    with_env = planned_mb(bound(sym, 128, 'env'))
    assert plan['policy'] == 'segments' and 0 < len(plan['kept']) < plan['cuts']
    assert with_plan < 0.65 * plain, (plain, with_plan)     # measured 198 -> 108 MB
    assert (plan['unmirrored_mb'], plan['planned_mb']) == (plain, with_plan)
    assert with_env >= 0.95 * plain, (plain, with_env)      # the finding: no saving
    assert os.environ.get('MXNET_BACKWARD_DO_MIRROR') is None   # bind_env restored it


def test_plan_recomputes_convolutions_and_keeps_the_kept_cuts():
    sym = paper.get_training_symbol('cifar_resnet20_v2')
    planned, plan = mirror.apply(sym, shapes(16))
    copies = mirrored(bound(planned, 16, 'segments'))
    ops = {op for op, _ in copies}
    assert {'Convolution', 'BatchNorm', 'Activation', 'elemwise_add'} <= ops
    assert not {name for _, name in copies} & set(plan['kept'])
    assert len(copies) == plan['marked']
    # env: MXNet's own choice, convolutions kept, the symbol untouched
    same, env_plan = mirror.apply(sym, shapes(16), 'env')
    assert same is sym and env_plan['marked'] == 0
    assert {op for op, _ in mirrored(bound(sym, 16, 'env'))} == {
        'BatchNorm', 'Activation', 'elemwise_add', 'mean'}


def test_every_recomputed_node_has_a_reader():
    """A mirrored op whose copy nothing reads still runs, with no output (kNullOp); the
    planner unmarks those (here: the convolution before each kept addition, the FC)."""
    sym = paper.get_training_symbol('cifar_resnet20_v2')
    planned, plan = mirror.apply(sym, shapes(8))
    assert plan['unread'] > 0
    executor = bound(planned, 8, 'segments')
    read = set(re.findall(r'^\s+arg\[\d+\]=(\S+)\(\d+\)', executor.debug_str(), re.M))
    copies = mirrored(executor)
    assert copies and all(name + '_mirror' in read for _, name in copies)


STEP = r'''
import json, os, sys
import mxnet as mx, numpy as np
from gluon_resnet_v2 import mirror
from legacy_symbol import paper
shapes = {'data': (8, 3, 32, 32), 'softmax_label': (8,)}
name = sys.argv[1]
sym = (paper.get_training_symbol(29, block='bottleneck') if name == 'cifar_resnet29_v2'
       else paper.get_training_symbol(name))
planned, plan = mirror.apply(sym, shapes)
out = []
for s, policy in ((sym, None), (planned, 'segments'), (sym, 'env')):
    req = {k: 'null' if k in shapes else 'write' for k in s.list_arguments()}
    if policy:
        with mirror.bind_env(policy):
            ex = s.simple_bind(mx.cpu(), grad_req=req, **shapes)
    else:
        ex = s.simple_bind(mx.cpu(), grad_req=req, **shapes)
    rs = np.random.RandomState(0)
    for k in sorted(ex.arg_dict):
        a = ex.arg_dict[k]
        a[:] = (rs.randint(0, 10, a.shape) if k == 'softmax_label'
                else rs.standard_normal(a.shape) * (1 if k == 'data' else 0.2))
    for k in sorted(ex.aux_dict):
        ex.aux_dict[k][:] = rs.uniform(0.5, 1.5, ex.aux_dict[k].shape)
    ex.forward(is_train=True)
    ex.backward()
    mx.nd.waitall()
    out.append({'out': ex.outputs[0].asnumpy(),
                **{'grad:' + k: v.asnumpy() for k, v in ex.grad_dict.items() if v is not None},
                **{'aux:' + k: v.asnumpy() for k, v in ex.aux_dict.items()}})
diff = {name: max(float(np.abs(o[k] - out[0][k]).max()) for k in out[0])
        for name, o in (('segments', out[1]), ('env', out[2]))}
print(json.dumps({'diff': diff, 'keys': len(out[0]), 'marked': plan['marked']}))
'''


@pytest.mark.parametrize('name,mkldnn', [('cifar_resnet20_v2', '1'), ('cifar_resnet20_v2', '0'),
                                         ('cifar_resnet29_v2', '1')],
                         ids=['resnet20-mkldnn', 'resnet20-native', 'resnet29-bottleneck-mkldnn'])
def test_training_step_is_bit_identical_with_and_without_mirroring(name, mkldnn):
    """Outputs, every gradient and the BN statistics (updated in BN's backward, which is not
    duplicated) after a forward/backward, each mirroring against none. In a fresh process:
    MXNET_MKLDNN_ENABLED is read at start-up; the native path is the one whose convolution
    refuses an unread recomputation."""
    env = dict(os.environ, MXNET_MKLDNN_ENABLED=mkldnn, OMP_NUM_THREADS='1',
               PYTHONPATH=str(REPO), MXNET_SUBGRAPH_BACKEND='NONE')
    env.pop('MXNET_BACKWARD_DO_MIRROR', None)
    proc = subprocess.run([sys.executable, '-c', STEP, str(name)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result['marked'] > 0 and result['keys'] > 50
    assert result['diff'] == {'segments': 0.0, 'env': 0.0}


def _notes():
    from legacy_symbol import notes
    return notes.notes_network()


@pytest.mark.parametrize('build,data', [
    (_notes, (16, 3, 32, 32)),
    (lambda: paper.get_training_symbol('cifar_resnet20_v1'), (16, 3, 32, 32)),
    (lambda: paper.get_training_symbol('cifar_resnet20_v2', shortcut='gate_exclusive'),
     (16, 3, 32, 32)),
    (lambda: paper.get_training_symbol('resnet18_v2', classes=10), (2, 3, 224, 224)),
], ids=['notes', 'v1', 'v2-gated-shortcut', 'imagenet-resnet18'])
def test_plan_cuts_memory_beyond_the_cifar_v2_nets(build, data):
    """The plan is made from the graph, not from names: the notes' network, the original
    (post-activation) units, a gated shortcut and an ImageNet net get one too."""
    sym = build()
    size = {'data': data, 'softmax_label': data[:1]}
    planned, plan = mirror.apply(sym, size)
    req = {k: 'null' if k in size else 'write' for k in sym.list_arguments()}
    plain = planned_mb(sym.simple_bind(mx.cpu(), grad_req=req, **size))
    with mirror.bind_env('segments'):
        executor = planned.simple_bind(mx.cpu(), grad_req=req, **size)
    assert plan['kept'] and plan['marked'] == len(mirrored(executor)) > 0
    assert planned_mb(executor) < 0.8 * plain, (plain, planned_mb(executor))   # 0.55-0.76


# ---- small API facts

def test_bind_env_sets_and_restores_the_variable(monkeypatch):
    monkeypatch.setenv('MXNET_BACKWARD_DO_MIRROR', '1')
    with mirror.bind_env('segments'):
        assert os.environ['MXNET_BACKWARD_DO_MIRROR'] == '0'
    assert os.environ['MXNET_BACKWARD_DO_MIRROR'] == '1'
    monkeypatch.delenv('MXNET_BACKWARD_DO_MIRROR')
    with pytest.raises(RuntimeError), mirror.bind_env('env'):
        assert os.environ['MXNET_BACKWARD_DO_MIRROR'] == '1'
        raise RuntimeError
    assert 'MXNET_BACKWARD_DO_MIRROR' not in os.environ


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match='mirror policy .*segments, env'):
        mirror.apply(paper.get_training_symbol('cifar_resnet20_v2'), shapes(2), 'all')


def test_plan_does_not_touch_the_input_symbol():
    sym = paper.get_training_symbol('cifar_resnet20_v2')
    before = sym.tojson()
    planned, _ = mirror.apply(sym, shapes(4))
    assert sym.tojson() == before and mirror.ATTR not in before
    assert planned.tojson().count(mirror.ATTR) > 0
    assert planned.list_arguments() == sym.list_arguments()
    assert planned.list_auxiliary_states() == sym.list_auxiliary_states()
