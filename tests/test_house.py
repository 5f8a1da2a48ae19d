"""How the code is divided: layers point one way, importing changes nothing, --help is
quick, config field names are unique. (CONVENTIONS.md, "The shape of the house".)"""
import ast
import os
import subprocess
import sys
from dataclasses import dataclass, field, fields, make_dataclass

import pytest

from gluon_resnet_v2 import config, environ

from support import REPO


def imported_modules(path):
    """Every module a Python file imports, at any depth (inside functions too)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module


def test_the_core_never_imports_the_legacy_package():
    offenders = [(str(p.relative_to(REPO)), m) for p in (REPO / 'gluon_resnet_v2').rglob('*.py')
                 for m in imported_modules(p) if m.split('.')[0] == 'legacy_symbol']
    assert offenders == []


def test_the_legacy_package_does_not_import_the_comparison_layer():
    legacy = [p for p in (REPO / 'legacy_symbol').glob('*.py')]
    offenders = [(p.name, m) for p in legacy for m in imported_modules(p)
                 if m.startswith('legacy_symbol.compare')]
    assert len(legacy) >= 6 and offenders == []


# In a fresh interpreter: which heavy modules and environment variables an import brings.
PROBE = '''
import json, os, sys
before = dict(os.environ)
for name in sys.argv[1:]:
    __import__(name)
print(json.dumps({"mxnet": "mxnet" in sys.modules, "pyplot": "matplotlib.pyplot" in sys.modules,
                  "env_changed": sorted(k for k in set(before) | set(os.environ)
                                        if before.get(k) != os.environ.get(k))}))
'''


@pytest.mark.parametrize('modules', [
    ['gluon_resnet_v2', 'gluon_resnet_v2.config', 'gluon_resnet_v2.runlog',
     'gluon_resnet_v2.plotting', 'gluon_resnet_v2.cli', 'gluon_resnet_v2.models',
     'gluon_resnet_v2.data', 'gluon_resnet_v2.train', 'gluon_resnet_v2.evaluate',
     'gluon_resnet_v2.export', 'gluon_resnet_v2.runs', 'gluon_resnet_v2.launch',
     'gluon_resnet_v2.bench', 'gluon_resnet_v2.measure', 'gluon_resnet_v2.probe',
     'gluon_resnet_v2.experiment', 'gluon_resnet_v2.experiment.__main__',
     'gluon_resnet_v2.figures',
     'legacy_symbol.train', 'legacy_symbol.compare.cli']])
def test_importing_loads_no_mxnet_nor_pyplot_and_sets_no_variable(modules):
    import json
    env = {k: v for k, v in os.environ.items() if k != 'OMP_NUM_THREADS'}
    proc = subprocess.run([sys.executable, '-c', PROBE] + modules, env=dict(env, PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=60, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {'mxnet': False, 'pyplot': False, 'env_changed': []}


@pytest.mark.parametrize('command', ['gluon_resnet_v2.train', 'gluon_resnet_v2.evaluate',
                                     'gluon_resnet_v2.export', 'gluon_resnet_v2.plotting',
                                     'gluon_resnet_v2.runs', 'gluon_resnet_v2.launch',
                                     'gluon_resnet_v2.bench', 'gluon_resnet_v2.probe',
                                     'gluon_resnet_v2.experiment',
                                     'legacy_symbol.train', 'legacy_symbol.compare'])
def test_help_answers_without_loading_mxnet(command):
    code = ('import runpy, sys; sys.argv = ["x", "--help"]\n'
            'try:\n    runpy.run_module(%r, run_name="__main__")\n'
            'except SystemExit:\n    pass\n'
            'assert "mxnet" not in sys.modules, "--help imported mxnet"' % command)
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=60, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert 'Usage:' in proc.stdout and '--help' in proc.stdout


def test_config_field_names_are_unique_and_each_declares_its_help():
    names = config.field_sections()
    assert len(names) == sum(len(fields(c)) for c in config.sections().values())
    assert all(f.metadata.get('help') for c in config.sections().values()
               for f in fields(c))

    @dataclass(frozen=True)
    class Clash(config.Section):
        lr: float = config.option(0.1, 'a second lr')
    with pytest.raises(ValueError, match="'lr' is in sections optim and clash"):
        config.field_sections(make_dataclass(
            'Twice', [('optim', config.OptimConfig, field(default_factory=config.OptimConfig)),
                      ('clash', Clash, field(default_factory=Clash))]))


def test_scoped_environment_restores_what_it_changed(monkeypatch):
    monkeypatch.setenv('GRV_TEST_SET', 'user')
    monkeypatch.delenv('GRV_TEST_UNSET', raising=False)
    monkeypatch.setenv('GRV_TEST_DEFAULT', 'user')
    with environ.scoped({'GRV_TEST_SET': 'x', 'GRV_TEST_UNSET': 'y'},
                        defaults={'GRV_TEST_DEFAULT': 'd', 'GRV_TEST_NEW': 'n'}):
        assert os.environ['GRV_TEST_SET'] == 'x' and os.environ['GRV_TEST_UNSET'] == 'y'
        assert os.environ['GRV_TEST_DEFAULT'] == 'user'          # the user's value wins
        assert os.environ['GRV_TEST_NEW'] == 'n'
    assert os.environ['GRV_TEST_SET'] == 'user' and os.environ['GRV_TEST_DEFAULT'] == 'user'
    assert 'GRV_TEST_UNSET' not in os.environ and 'GRV_TEST_NEW' not in os.environ
    with pytest.raises(KeyError):
        with environ.scoped({'GRV_TEST_SET': None}):
            assert 'GRV_TEST_SET' not in os.environ
            raise KeyError('restored on errors too')
    assert os.environ['GRV_TEST_SET'] == 'user'


def test_command_line_sets_the_thread_count_only_when_unset(monkeypatch):
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    with environ.command_line():
        assert int(os.environ['OMP_NUM_THREADS']) >= 1
    assert 'OMP_NUM_THREADS' not in os.environ
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    with environ.command_line():
        assert os.environ['OMP_NUM_THREADS'] == '1'


def test_native_log_without_drops_only_the_marked_lines(capfd):
    with environ.native_log_without('drop me'):
        os.write(2, b'keep this\ndrop me please\nand this\n')
    assert capfd.readouterr().err == 'keep this\nand this\n'


def test_module_binds_leave_no_mxnet_log_noise(capfd, monkeypatch):
    """MXNet 1.9.1 logs 'MXNET_SUBGRAPH_BACKEND=NONE is detected, subgraph backend is not in
    use' at every bind with that variable; the Module set-up drops that line."""
    import mxnet as mx
    from legacy_symbol import fit, paper
    monkeypatch.delenv('MXNET_SUBGRAPH_BACKEND', raising=False)
    fit.bind_module(paper.get_training_symbol('cifar_resnet20_v2'), [mx.cpu()], 2, (3, 32, 32))
    assert environ.NONE_BACKEND_LINE not in capfd.readouterr().err


def test_deterministic_is_refused_after_mxnet_was_imported_otherwise(monkeypatch):
    import mxnet  # noqa: F401  (this process has MXNet loaded, as a library user may)
    from gluon_resnet_v2.errors import UserError
    monkeypatch.setenv('MXNET_MKLDNN_ENABLED', '1')
    with pytest.raises(UserError, match='before MXNet is imported'):
        environ.deterministic(True)
    monkeypatch.setenv('MXNET_MKLDNN_ENABLED', '0')
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    with environ.deterministic(True):                  # already so: nothing to refuse
        assert os.environ['MXNET_MKLDNN_ENABLED'] == '0'
    with environ.deterministic(False):
        assert os.environ['OMP_NUM_THREADS'] == '1'
