"""Bad input to every command (project issue 9): one line `error: <problem>: <fix>` on
stderr, exit code 2, no traceback, and nothing written or overwritten: the files of the
test's folder (a finished run, data, config files, the working directory) are compared
name by name and byte by byte before and after, so a created folder or file fails too.

Commands: train (gluon_resnet_v2.train), the legacy Module trainer (legacy_symbol.train),
compare train (legacy_symbol.compare), evaluate, export, plotting; most in-process
(support.run_cli: cli.main_wrapper, as `python -m` runs them), a few as real processes.
"""
import os
import re
import shutil
import subprocess
import sys
from collections import namedtuple

import pytest

from gluon_resnet_v2 import checkpoint, cli, evaluate, export, plotting, rundir
from gluon_resnet_v2.config import Config, ConfigError
from gluon_resnet_v2.train import main as train_main
from legacy_symbol.compare.cli import cli as compare_cli
from legacy_symbol.train import main as legacy_main

from support import env1, run_cli

# a tiny, quick run on the embedded sample: ResNet-8 (one unit per stage)
TINY = ['--dataset', 'cifar10-sample', '--depth', '8', '--subset', '256', '--batch-size', '32',
        '--max-iters', '2', '--warmup-iters', '0', '--eval-interval', '0', '--num-workers', '0']

# command name: (click command, arguments before the case's, option naming its output
# and the output used when the case names none)
COMMANDS = {
    'train': (train_main, TINY, '--run-dir', '{tmp}/fresh'),
    'legacy': (legacy_main, TINY, '--run-dir', '{tmp}/fresh'),
    'compare': (compare_cli, ['train', '--depth', '8'], '--out', '{tmp}/fresh'),
    'compare-speed': (compare_cli, ['speed', '--cases', 'cifar_resnet20_v2:4'], None, None),
    'compare-notes': (compare_cli, ['notes', '--max-iters', '2'], None, None),
    'compare-eq': (compare_cli, ['equivalence', '--no-mkldnn'], None, None),
    'evaluate': (evaluate.main, [], None, None),
    'export': (export.main, [], None, None),
    'plot': (plotting.main, [], None, None),
}
MODULES = {'train': 'gluon_resnet_v2.train', 'legacy': 'legacy_symbol.train',
           'compare': 'legacy_symbol.compare', 'plot': 'gluon_resnet_v2.plotting',
           'demo': 'gluon_resnet_v2.demo', 'evaluate': 'gluon_resnet_v2.evaluate'}

# yaml: the text of {tmp}/case.yaml; process: run as `python -m MODULE` (else in-process);
# out: add the command's output option (--run-dir, --out) if the case gives none
Case = namedtuple('Case', 'command args words yaml process out', defaults=(None, False, True))

CASES = {
    # ---- train: choices, models, devices, data, checkpoints (the cases of issue 3)
    'unknown dataset': Case('train', ['--dataset', 'mnist'], "'mnist' is not one of"),
    'missing data': Case('train', ['--dataset', 'cifar10', '--data-dir', '{tmp}/empty'],
                         'pass --download'),
    'corrupt data': Case('train', ['--dataset', 'cifar10', '--data-dir', '{tmp}/corrupt'],
                         'corrupt'),
    'invalid depth': Case('train', ['--depth', '111'], 'invalid CIFAR depth 111'),
    'invalid variant': Case('train', ['--shortcut', 'gated'], "'gated' is not one of"),
    'invalid placement': Case('train', ['--placement', 'post'], "'post' is not one of"),
    'unknown model': Case('train', ['--model', 'resnet9000_v2'], 'unknown model'),
    'no gpu': Case('train', ['--gpus', '0'], 'no CUDA support'),
    'batch not divisible': Case('train', ['--cpus', '3'], 'cannot be split evenly over 3 device'),
    'float16 on cpu': Case('train', ['--dtype', 'float16'], 'not supported on CPU'),
    'bfloat16 with --deterministic': Case('train', ['--dtype', 'bfloat16', '--deterministic'],
                                          'drop --deterministic', process=True),
    'kvstore None on 2 devices': Case('train', ['--cpus', '2', '--kvstore', 'None'],
                                      'does not aggregate'),
    'dist without launcher': Case('train', ['--kvstore', 'dist_sync'],
                                  'needs a distributed launch'),
    'dist_async': Case('train', ['--kvstore', 'dist_async'], 'use --kvstore dist_sync'),
    'memory saving imperative': Case('train', ['--memory-saving', '--no-hybridize'],
                                     '--memory-saving'),
    'compare memory saving': Case('compare', ['--memory-saving'], 'drop --memory-saving'),
    'bad lr steps': Case('train', ['--lr-steps', '9,3'], '--lr-steps must be increasing'),
    'warm-up above lr': Case('train', ['--warmup-iters', '2', '--lr', '0.001'],
                             '--warmup-lr 0.01 must be in (0, --lr 0.001]'),
    'lr steps not numbers': Case('train', ['--lr-steps', 'a,b'], 'comma-separated integers'),
    'unknown option': Case('train', ['--depht', '20'], 'No such option'),
    'missing config': Case('train', ['--config', '{tmp}/nope.yaml'], 'cannot read config file'),
    'invalid yaml': Case('train', ['--config', '{tmp}/case.yaml'], 'not valid YAML',
                         'model: [depth: 20\n'),
    'unknown config key': Case('train', ['--config', '{tmp}/case.yaml'],
                               'unknown model option(s) dept', 'model:\n  dept: 20\n'),
    'corrupt checkpoint': Case('train', ['--run-dir', '{corrupt_run}', '--max-iters', '4'],
                               'unreadable'),
    'mismatched checkpoint': Case('train', ['--run-dir', '{run}', '--depth', '14',
                                            '--max-iters', '4'], 'model.depth = 8'),
    'no-resume over a run': Case('train', ['--run-dir', '{run}', '--no-resume'],
                                 'already holds a run'),
    # ---- train: values out of their field's range (config.option(valid=...))
    'seed negative': Case('train', ['--seed', '-1'], '--seed -1 is out of range'),
    'seed 2**32': Case('train', ['--seed', str(2 ** 32)], 'in [0, 2**32)'),
    'pad negative': Case('train', ['--pad', '-1'], '--pad -1 is out of range'),
    'pad not below the crop': Case('train', ['--pad', '32'], '32-pixel crop'),
    'drop rate 1.5': Case('train', ['--shortcut', 'dropout', '--drop-rate', '1.5'],
                          '--drop-rate 1.5 is out of range: use a value in [0, 1)'),
    'momentum 1': Case('train', ['--momentum', '1'], '--momentum 1.0 is out of range'),
    'negative weight decay': Case('train', ['--wd', '-0.0001'], '--wd'),
    'lr factor above 1': Case('train', ['--lr-factor', '1.5'], 'in (0, 1]'),
    'lr factor 0': Case('train', ['--lr-factor', '0'], 'in (0, 1]'),
    'scale 0': Case('train', ['--shortcut', 'scale', '--scale', '0'], '--scale 0.0'),
    'lr nan': Case('train', ['--lr', 'nan'], '--lr nan is not a finite number'),
    'warmup lr inf': Case('train', ['--warmup-lr', 'inf'], '--warmup-lr inf is not a finite'),
    'momentum nan': Case('train', ['--momentum', 'nan'], 'not a finite number'),
    'gate bias inf': Case('train', ['--shortcut', 'gate_exclusive', '--gate-bias', '-inf'],
                          '--gate-bias -inf'),
    'epochs and max-iters': Case('train', ['--epochs', '2'], '--epochs and --max-iters'),
    'negative subset': Case('train', ['--subset', '-5'], '--subset -5'),
    'negative classes': Case('train', ['--classes', '-1'], '--classes -1'),
    'crop size 0': Case('train', ['--crop-size', '0'], '--crop-size 0'),
    'negative test crop': Case('train', ['--test-crop', '-1'], '--test-crop -1'),
    'no cpus': Case('train', ['--cpus', '0'], '--cpus 0'),
    'negative eval interval': Case('train', ['--eval-interval', '-1'], '--eval-interval -1'),
    'negative checkpoint interval': Case('train', ['--checkpoint-interval', '-5'],
                                         '--checkpoint-interval -5'),
    'negative gpu id': Case('train', ['--gpus', '-1'], '--gpus -1 is out of range'),
    'repeated gpu ids': Case('train', ['--gpus', '0,0'], '--gpus 0,0: GPU 0 is listed 2 times'),
    'lr step 0': Case('train', ['--lr-steps', '0,5'], 'values >= 1'),
    'batch 0': Case('train', ['--batch-size', '0'], '--batch-size 0'),
    # ---- train: wrongly typed values in a config file
    'yaml seed not int': Case('train', ['--config', '{tmp}/case.yaml'],
                              "run.seed is 'abc' (str), expected an integer",
                              'run:\n  seed: abc\n'),
    'yaml classes a string': Case('train', ['--config', '{tmp}/case.yaml'], 'model.classes',
                                  'model:\n  classes: "10"\n'),
    'yaml lr steps not a list': Case('train', ['--config', '{tmp}/case.yaml'],
                                     'optim.lr_steps is 5 (int), expected a list of integers',
                                     'optim:\n  lr_steps: 5\n'),
    'yaml gpus not ints': Case('train', ['--config', '{tmp}/case.yaml'], 'run.gpus',
                               'run:\n  gpus: [a]\n'),
    'yaml hybridize a string': Case('train', ['--config', '{tmp}/case.yaml'],
                                    'run.hybridize', 'run:\n  hybridize: "yes"\n'),
    'yaml bool for an int': Case('train', ['--config', '{tmp}/case.yaml'], 'run.log_interval',
                                 'run:\n  log_interval: true\n'),
    'yaml value out of range': Case('train', ['--config', '{tmp}/case.yaml'], '--momentum 1.5',
                                    'optim:\n  momentum: 1.5\n'),
    # ---- train: a run's config.yaml as a template never touches that run
    'template over its own run': Case('train', ['--config', '{run}/config.yaml', '--run-dir',
                                                '{run}'], 'drop --config'),
    'template in the default run dir': Case('train', ['--config', '{default_run}/config.yaml'],
                                            'is the run the config file', out=False),
    # ---- train: output locations
    'run dir is a file': Case('train', ['--run-dir', '{file}'], 'is a file'),
    'warm-up as long as the run': Case('train', ['--warmup-iters', '2'],
                                       '--warmup-iters 2 is not shorter than the run (2'),
    'val size eats the data': Case('train', ['--val-size', '5000'], 'lower --val-size'),
    'resume busy run dir': Case('train', ['--run-dir', '{busy}'], 'is in use by process'),
    'run dir under a file': Case('train', ['--run-dir', '{file}/run'], 'which is a file'),
    'run dir not writable': Case('train', ['--run-dir', '/proc/grv-bad-input/run'],
                                 'cannot write in /proc'),
    'run dir read-only folder': Case('train', ['--run-dir', '{readonly}/run'], 'cannot write in'),
    # ---- legacy_symbol.train
    'legacy notes with model options': Case('legacy', ['--net', 'notes', '--depth', '20'],
                                            'drop --depth'),
    'legacy resume': Case('legacy', ['--resume'], 'writes no checkpoints'),
    'legacy checkpoint interval': Case('legacy', ['--checkpoint-interval', '5'],
                                       'writes no checkpoints'),
    'legacy no-hybridize': Case('legacy', ['--no-hybridize'], 'static graph'),
    'legacy checkpoint interval in config': Case('legacy', ['--config', '{tmp}/case.yaml'],
                                                 'run.checkpoint_interval',
                                                 'run:\n  checkpoint_interval: 500\n'),
    'legacy invalid depth': Case('legacy', ['--depth', '9'], 'depth'),
    'legacy uneven split': Case('legacy', ['--cpus', '3'], 'cannot be split evenly'),
    'legacy float16': Case('legacy', ['--dtype', 'float16'], 'no loss scaling'),
    'legacy bfloat16 with --deterministic': Case('legacy', ['--dtype', 'bfloat16',
                                                            '--deterministic'],
                                                 'drop --deterministic', process=True),
    'legacy unknown net': Case('legacy', ['--net', 'resnet'], "'resnet' is not one of"),
    'legacy non-empty run dir': Case('legacy', ['--run-dir', '{used}'], 'is not empty'),
    'legacy mirror policy without --mirror': Case('legacy', ['--mirror-policy', 'env'],
                                                  'add --mirror'),
    'legacy unknown mirror policy': Case('legacy', ['--mirror', '--mirror-policy', 'all'],
                                         "'all' is not one of"),
    'legacy momentum out of range': Case('legacy', ['--momentum', '-0.5'], '--momentum -0.5'),
    'legacy run dir under a file': Case('legacy', ['--run-dir', '{file}/run'], 'which is a file'),
    'legacy template over its own run': Case('legacy', ['--config', '{run}/config.yaml',
                                                        '--run-dir', '{run}'], 'drop --config'),
    # ---- compare train
    'compare out is a file': Case('compare', ['--out', '{file}'], '--out'),
    'compare out under a file': Case('compare', ['--out', '{file}/cmp'], 'which is a file'),
    'compare out not writable': Case('compare', ['--out', '/proc/grv-bad-input'],
                                     'cannot write in /proc'),
    'compare seed': Case('compare', ['--seed', '-1'], '--seed -1'),
    'compare epochs and max-iters': Case('compare', ['--epochs', '1', '--max-iters', '5'],
                                         '--epochs and --max-iters'),
    'compare restart': Case('compare', ['--restart'], 'drop --run-dir/--resume/--restart'),
    'compare yaml type': Case('compare', ['--config', '{tmp}/case.yaml'], 'optim.lr',
                              'optim:\n  lr: fast\n'),
    'compare unknown option': Case('compare', ['--batch', '32'], 'No such option'),
    # ---- evaluate
    'evaluate negative test crop': Case('evaluate', ['--run-dir', '{run}', '--test-crop', '-1'],
                                        '--test-crop -1'),
    'evaluate negative gpu id': Case('evaluate', ['--run-dir', '{run}', '--gpus', '-1'],
                                     '--gpus -1'),
    'evaluate no cpus': Case('evaluate', ['--run-dir', '{run}', '--cpus', '0'], '--cpus 0'),
    'evaluate repeated gpu ids': Case('evaluate', ['--run-dir', '{run}', '--gpus', '1,0,1'],
                                      'GPU 1 is listed 2 times'),
    'evaluate no run': Case('evaluate', ['--run-dir', '{tmp}/empty'], 'no checkpoint'),
    'evaluate run and params': Case('evaluate', ['--run-dir', '{run}', '--params', '{file}'],
                                    'exactly one of'),
    # ---- export
    'export no run': Case('export', ['--run-dir', '{tmp}/empty'], 'no checkpoint'),
    'export over an export': Case('export', ['--run-dir', '{run}', '--out', '{tmp}/old/m'],
                                  'nothing was overwritten'),
    'export out under a file': Case('export', ['--run-dir', '{run}', '--out', '{file}/m'],
                                    'is a file'),
    'export out not writable': Case('export', ['--run-dir', '{run}', '--out', '/proc/m'],
                                    'cannot write in /proc'),
    'export unknown checkpoint': Case('export', ['--run-dir', '{run}', '--which', 'first'],
                                      "'first' is not one of"),
    # ---- the other comparisons' output files
    'speed out is a folder': Case('compare-speed', ['--out', '{tmp}/empty'], 'is a folder'),
    'notes markdown under a file': Case('compare-notes', ['--markdown', '{file}/n.md'],
                                        'which is a file'),
    'equivalence out in a missing folder': Case('compare-eq', ['--out', '{tmp}/no/r.json'],
                                                'does not exist'),
    # ---- plotting
    'plot missing folder': Case('plot', ['{run}', '-o', '{tmp}/missing/curves.png'],
                                'does not exist'),
    'plot out is a folder': Case('plot', ['{run}', '-o', '{tmp}/empty'], 'is a folder'),
    'plot out under a file': Case('plot', ['{run}', '-o', '{file}/curves.png'], 'which is a file'),
    'plot out not writable': Case('plot', ['{run}', '-o', '/proc/curves.png'],
                                  'cannot write in /proc'),
    'plot no records': Case('plot', ['{tmp}/empty', '-o', '{tmp}/c.png'],
                            'no training loss or test error to plot'),
    'plot unreadable log': Case('plot', ['{tmp}/dirlog', '-o', '{tmp}/c.png'],
                                'cannot read the log'),
    'plot no such run': Case('plot', ['{tmp}/nope', '-o', '{tmp}/c.png'], 'does not exist'),
    'plot no runs': Case('plot', ['-o', '{tmp}/c.png'], "Missing argument 'RUNS...'"),
    # ---- real processes: python -m ...
    'process train': Case('train', ['--depth', '111'], 'invalid CIFAR depth 111', process=True),
    'process train out of range': Case('train', ['--seed', '-1'], '--seed -1', process=True),
    'process legacy': Case('legacy', ['--resume'], 'writes no checkpoints', process=True),
    'process compare': Case('compare', ['--out', '{file}'], 'is a file', process=True),
    'process compare usage': Case('compare', ['--depth', 'deep'], "'deep' is not a valid integer",
                                  process=True),
    'process plot': Case('plot', ['{run}', '-o', '{tmp}/missing/c.png'], 'does not exist',
                         process=True),
    'process plot usage': Case('plot', [], "Missing argument 'RUNS...'", process=True),
    'process demo': Case('demo', ['--cpus', '0'], '--cpus 0', process=True),
    'process repeated gpu ids': Case('train', ['--gpus', '1,1'], 'GPU 1 is listed 2 times',
                                     process=True),
}


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
    """A finished tiny run, copied into each case's folder that needs one."""
    run_dir = tmp_path_factory.mktemp('finished') / 'run'
    try:
        cli.main_wrapper(train_main)(TINY + ['--run-dir', str(run_dir)])
    except SystemExit as e:
        pytest.fail('the fixture run failed with exit code %s' % e.code)
    return run_dir


def prepare(tmp, case, request):
    """The case's files under `tmp`; returns the placeholders of its arguments."""
    (tmp / 'empty').mkdir()
    (tmp / 'file').write_text('a file, not a folder\n')
    corrupt = tmp / 'corrupt' / 'cifar-10-batches-py'
    corrupt.mkdir(parents=True)
    for name in ['data_batch_%d' % i for i in range(1, 6)] + ['test_batch', 'batches.meta']:
        (corrupt / name).write_bytes(b'not a pickle')
    (tmp / 'used').mkdir()
    (tmp / 'used' / 'log.jsonl').write_text('{}\n')
    (tmp / 'dirlog' / 'log.jsonl').mkdir(parents=True)       # a "log" that is a folder
    (tmp / 'old').mkdir()
    (tmp / 'old' / 'm-symbol.json').write_text('{}')
    if case.yaml is not None:
        (tmp / 'case.yaml').write_text(case.yaml)
    places = dict(tmp=tmp, file=tmp / 'file', used=tmp / 'used', readonly=tmp / 'readonly')
    text = ' '.join(case.args)
    for name, where in [('run', 'run'), ('corrupt_run', 'corrupt_run'),
                        ('default_run', 'runs/default'), ('busy', 'busy')]:
        if '{%s}' % name in text:
            places[name] = tmp / where
            shutil.copytree(request.getfixturevalue('finished'), places[name])
    if 'corrupt_run' in places:
        (places['corrupt_run'] / checkpoint.LATEST).write_bytes(b'\x80\x04truncated')
    if 'busy' in places:                      # another live process owns it (here: this one)
        owner = rundir.Ownership(str(places['busy']))
        owner.acquire()
        request.addfinalizer(owner.release)
    if '{readonly}' in text:
        if os.geteuid() == 0:
            pytest.skip('running as root: permission bits do not stop writes (the /proc '
                        'cases cover an unwritable location)')
        (tmp / 'readonly').mkdir(mode=0o555)
    return places


def snapshot(root):
    """{relative path: bytes of a file, None for a folder} of everything under root."""
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
            for p in sorted(root.rglob('*'))}


def arguments(case, places):
    command, before, out_option, default_out = COMMANDS[case.command] \
        if case.command in COMMANDS else (None, [], None, None)
    args = before + list(case.args)
    if case.out and out_option and out_option not in args:
        args += [out_option, default_out]
    return command, [str(a).format(**places) for a in args]


@pytest.mark.parametrize('name', sorted(CASES))
def test_bad_input_one_line_exit_2_nothing_written(name, tmp_path, capsys, monkeypatch,
                                                    request):
    case = CASES[name]
    places = prepare(tmp_path, case, request)
    capsys.readouterr()                       # the finished run's output, if made just now
    monkeypatch.chdir(tmp_path)               # a default output (runs/...) would land here
    before = snapshot(tmp_path)
    command, args = arguments(case, places)
    if case.process:
        proc = subprocess.run([sys.executable, '-m', MODULES[case.command]] + args, env=env1(),
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
        code, err = proc.returncode, proc.stderr
    else:
        code, _, err = run_cli(args, capsys, command)
    try:
        assert code == 2, err
        assert err.startswith('error: ') and len(err.strip().splitlines()) == 1, err
        assert 'Traceback' not in err
        assert case.words in err, err
        assert snapshot(tmp_path) == before           # nothing written, nothing overwritten
    finally:
        if (tmp_path / 'readonly').exists():
            os.chmod(tmp_path / 'readonly', 0o755)


def test_there_are_cases_of_every_command():
    commands = [c.command for c in CASES.values()]
    assert len(CASES) >= 40
    assert {'train', 'legacy', 'compare', 'evaluate', 'export', 'plot'} <= set(commands)
    assert sum(c.process for c in CASES.values()) >= 3


# ------------------------------------------------------------------ a config file as a template

def test_a_runs_config_yaml_as_a_template_leaves_that_run_untouched(finished, tmp_path, capsys):
    """The run-specific fields (run_dir, resume, restart) do not come from the file: the
    new run goes to --run-dir, and the old run's files stay byte-identical."""
    old = tmp_path / 'old'
    shutil.copytree(finished, old)
    before = snapshot(old)
    new = tmp_path / 'new'
    code, out, err = run_cli(['--config', old / 'config.yaml', '--max-iters', '3', '--run-dir',
                              new], capsys, train_main)
    assert code == 0, err
    assert snapshot(old) == before
    assert 'done: 3 iterations' in out and 'resuming' not in out
    cfg = cli.build_config(str(old / 'config.yaml'), {'run_dir': str(new)})
    assert cfg.run.run_dir == str(new) and cfg.model.depth == 8 and cfg.data.subset == 256
    assert checkpoint.load(str(new / checkpoint.LATEST))['iteration'] == 3


def test_run_fields_of_a_config_file_are_ignored(tmp_path):
    path = tmp_path / 'run.yaml'
    path.write_text('run:\n  run_dir: somewhere/else\n  resume: false\n  restart: true\n'
                    '  seed: 5\n')
    cfg = cli.build_config(str(path), {})
    assert (cfg.run.run_dir, cfg.run.resume, cfg.run.restart, cfg.run.seed) == \
        ('runs/default', True, False, 5)


def test_max_iters_flag_replaces_the_files_epochs(tmp_path):
    path = tmp_path / 'run.yaml'
    path.write_text('optim:\n  epochs: 5\n')
    assert cli.build_config(str(path), {'max_iters': 7}).optim.epochs is None
    assert cli.build_config(str(path), {}).optim.epochs == 5


def test_config_file_types():
    """YAML lists become tuples, an integer is a fine float; the rest is refused by key."""
    cfg = Config.from_dict({'optim': {'lr': 1, 'lr_steps': [5, 9]}, 'run': {'gpus': []}})
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.lr_steps == (5, 9) and cfg.run.gpus == ()
    with pytest.raises(ConfigError, match=r'model\.scale_residual is 1 \(int\), expected true'):
        Config.from_dict({'model': {'scale_residual': 1}})
    with pytest.raises(ConfigError, match=r"model\.depth is '20' \(str\), expected an integer"):
        Config.from_dict({'model': {'depth': '20'}})


# ------------------------------------------------------------------ per-command help

def help_text(module):
    proc = subprocess.run([sys.executable, '-m', module, '--help'], env=env1(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_demo_has_its_own_help():
    text = help_text('gluon_resnet_v2.demo')
    assert 'demo [OPTIONS] [TRAIN OPTIONS]...' in text and 'cifar_resnet20_v2' in text
    assert 'gluon_resnet_v2.train --help' in text and '--depth INTEGER' not in text


def test_legacy_help_lists_only_what_applies():
    text = help_text('legacy_symbol.train').split('Options:')[1]
    for absent in ('--resume', '--checkpoint-interval', '--hybridize', '--resume-from',
                   '--restart'):
        assert not re.search(r'^  %s(?![-\w])' % absent, text, re.M), absent   # no option line
    assert '--mirror' in text and '--max-iters' in text and '--momentum FLOAT' in text
