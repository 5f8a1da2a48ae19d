"""The README's "Extending" promise: a shortcut variant (with an option), a placement, a
network family and a dataset are each one entry in one table, and then everything else
follows: the Gluon blocks, the mx.sym twin, the config, the command line, both trainers.

Each test adds its entry (monkeypatch, or in a child process before the CLI is imported)
and nothing else.
"""
import subprocess
import sys
import textwrap

import mxnet as mx
import numpy as np
import pytest
import yaml

import gluon_resnet_v2 as grv
from gluon_resnet_v2.models import tables
from legacy_symbol import paper
from legacy_symbol.compare import equivalence, sides

from support import env1


def _tanh_mix(F, s, f, g, opts):
    """A made-up shortcut: s + tanh(F), mixed by a learned gate."""
    g = F.sigmoid(g)
    return (1 - g) * s + g * F.tanh(f)


def equal_in_both_builders(name, **overrides):
    """float64 Gluon vs Module: outputs (inference, train mode), every gradient, BN stats."""
    setup = sides.make_case(name, overrides, 2, 0)
    g = sides.gluon_run(setup, 'float64')
    errors = equivalence.compare(sides.module_run(setup, 'float64', g['head_grad']), g)
    assert len(errors) == 7
    assert max(e for e, _ in errors.values()) <= equivalence.TOLERANCE, errors


def test_a_shortcut_is_one_table_entry(monkeypatch):
    monkeypatch.setitem(tables.SHORTCUTS, 'tanh_mix',
                        tables.Shortcut(_tanh_mix, conv_every_unit=False, gate=True))
    net = grv.get_model('cifar_resnet20_v2', shortcut='tanh_mix')
    gates = [k for k in net.collect_params() if '_gate_conv_weight' in k]
    assert len(gates) == 9                               # one learned gate per unit
    equal_in_both_builders('cifar_resnet20_v2', shortcut='tanh_mix')
    equal_in_both_builders('cifar_resnet20_v1', shortcut='tanh_mix')


def test_a_placement_is_one_table_entry(monkeypatch):
    # BN-conv-ReLU ordering with a ReLU after the addition: not one of the paper's five
    monkeypatch.setitem(tables.PLACEMENTS, 'bn_conv_relu',
                        tables.Placement(('bn', 'conv', 'relu'), ('bn', 'conv'), ('relu',), True))
    net = grv.init_model(grv.get_model('cifar_resnet20_v2', placement='bn_conv_relu'))
    assert net(mx.nd.zeros((1, 3, 32, 32))).shape == (1, 10)
    equal_in_both_builders('cifar_resnet20_v2', placement='bn_conv_relu')


def test_a_network_family_is_one_table_entry(monkeypatch):
    """Two stages of n basic units on 5x5-stem features, 5 classes, names tiny_resnet*."""
    def spec(depth, block=None):
        n, rest = divmod(depth - 2, 4)
        if n < 1 or rest:
            raise ValueError('tiny depth must be 4n+2')
        return tables.ArchSpec('tiny', depth, 'basic', (n, n), (8, 16), (1, 2))
    monkeypatch.setitem(tables.FAMILIES, 'tiny', tables.Family(
        spec, 5, tables.Stem(8, 5, 1, False), '1x1', {'tiny_resnet6_{v}': dict(depth=6)}))
    assert {'tiny_resnet6_v1', 'tiny_resnet6_v2'} <= set(grv.list_models())
    net = grv.init_model(grv.get_model('tiny_resnet6_v2'))
    assert net(mx.nd.zeros((1, 3, 32, 32))).shape == (1, 5)
    assert net.collect_params()['stem_conv_weight'].shape == (8, 3, 5, 5)
    assert paper.get_symbol('tiny_resnet6_v2').infer_shape(data=(1, 3, 32, 32))[1] == [(1, 5)]
    equal_in_both_builders('tiny_resnet6_v2')
    with pytest.raises(ValueError, match='4n\\+2'):
        grv.build_resnet(7, family='tiny')


# In a fresh process: the entries are added before the command line is imported, as an
# edit of tables.py / data/__init__.py would add them. Nothing else is touched.
CHILD = '''
import sys
import numpy as np
from gluon_resnet_v2.models import tables
from gluon_resnet_v2 import data

def scaled_sum(F, s, f, g, opts):
    return s + opts['residual_gain'] * f

tables.SHORTCUT_OPTIONS['residual_gain'] = tables.Option(1.0, float, 'gain of F in scaled_sum')
tables.SHORTCUTS['scaled_sum'] = tables.Shortcut(scaled_sum, conv_every_unit=False, gate=False)

def toy(cfg, data_dir):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (80, 8, 8, 3), dtype=np.uint8)
    y = np.arange(80) % 3
    return data.InMemoryData('toy', (x[:64], y[:64]), (x[64:], y[64:]), 3, pad=cfg.pad,
                             subset=cfg.subset, num_workers=cfg.num_workers)

data.DATASETS['toy'] = data.DatasetSpec(toy, 'cifar', 3, lambda cfg: None, 'pad, crop, flip')

from gluon_resnet_v2.train import main as gluon_train
from legacy_symbol.train import main as module_train
common = ['--dataset', 'toy', '--depth', '8', '--shortcut', 'scaled_sum', '--residual-gain',
          '0.25', '--batch-size', '16', '--max-iters', '2', '--warmup-iters', '0',
          '--num-workers', '0', '--eval-interval', '0']
gluon_train.main(common + ['--run-dir', sys.argv[1] + '/gluon'], standalone_mode=False)
module_train.main(common + ['--run-dir', sys.argv[1] + '/module'], standalone_mode=False)
'''


def test_a_shortcut_option_and_a_dataset_reach_the_command_line(tmp_path):
    proc = subprocess.run([sys.executable, '-c', textwrap.dedent(CHILD), str(tmp_path)],
                          env=env1(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for side in ('gluon', 'module'):
        cfg = yaml.safe_load((tmp_path / side / 'config.yaml').read_text())
        assert cfg['model']['shortcut'] == 'scaled_sum'
        assert cfg['model']['residual_gain'] == 0.25 and cfg['data']['dataset'] == 'toy'
        log = (tmp_path / side / 'log.jsonl').read_text().splitlines()
        assert len(log) == 2 and np.isfinite(yaml.safe_load(log[-1])['test_err'])
    assert proc.stdout.count('done: 2 iterations') == 2
