"""`python -m gluon_resnet_v2.runs`: the table of the runs under a folder, on fake run
directories (config.yaml, log lines written by hand, status.json, a live run.lock)."""
import json
import os
import subprocess
import sys

import pytest

from gluon_resnet_v2 import rundir, runlog, runs
from gluon_resnet_v2.config import Config

from support import REPO, run_cli


def make_run(run_dir, records=(), lines=(), status=None, **settings):
    """A run directory: config.yaml (defaults, with settings 'section.field' given as
    section__field=value), log.jsonl from `records` (runlog records) then raw `lines`,
    and status.json when status = (state, iteration, max_iters[, message])."""
    cfg = Config().to_dict()
    for key, value in settings.items():
        section, name = key.split('__')
        cfg[section][name] = value
    runlog.write_config(str(run_dir), cfg)
    with open(os.path.join(run_dir, 'log.jsonl'), 'w') as f:
        f.writelines(json.dumps(runlog.record(**r)) + '\n' for r in records)
        f.writelines(line + '\n' for line in lines)
    if status:
        rundir.write_status(str(run_dir), *status)
    return run_dir


def curve(points, epoch_steps=None, rates=()):
    """Log records: a training line then an evaluation line per (iteration, test error)."""
    out = []
    for i, (it, err) in enumerate(points):
        rate = rates[i] if i < len(rates) else None
        out.append(dict(iteration=it, epoch=it / epoch_steps if epoch_steps else None,
                        train_loss=1.0, img_per_sec=rate))
        out.append(dict(iteration=it, test_err=err, test_loss=1.0))
    return out


def rows(capsys, *args):
    code, out, err = run_cli(['--json'] + [str(a) for a in args], capsys, runs.main)
    assert code == 0, err
    return {r['run']: r for r in json.loads(out)}


SHORT = dict(optim__max_iters=30, model__depth=20, data__dataset='cifar10-sample')


def test_states_from_status_lock_and_log(tmp_path, capsys):
    make_run(tmp_path / 'done', curve([(10, .5), (30, .4)]), status=('finished', 30, 30), **SHORT)
    make_run(tmp_path / 'killed', curve([(10, .5)]), status=('running', 10, 30), **SHORT)
    make_run(tmp_path / 'live', curve([(10, .6)]), status=('running', 10, 30), **SHORT)
    make_run(tmp_path / 'nan', curve([(10, .9)]), status=('diverged', 12, 30, 'loss is nan'),
             **SHORT)
    make_run(tmp_path / 'old_done', curve([(10, .5), (30, .3)]), **SHORT)
    make_run(tmp_path / 'old_cut', curve([(10, .5), (20, .45)]), **SHORT)
    lock = rundir.Ownership(str(tmp_path / 'live'))
    lock.acquire()              # a second open() in this process conflicts: holder() sees it
    try:
        got = rows(capsys, tmp_path)
    finally:
        lock.release()
    states = {run: (r['state'], r['state_inferred']) for run, r in got.items()}
    assert states == {'done': ('finished', False), 'killed': ('interrupted', False),
                      'live': ('running', False), 'nan': ('diverged', False),
                      'old_done': ('finished', True), 'old_cut': ('interrupted', True)}
    assert got['nan']['message'] == 'loss is nan' and got['nan']['iteration'] == 12
    assert (got['old_cut']['iteration'], got['old_cut']['total']) == (20, 30)
    assert rows(capsys, tmp_path)['live']['state'] == 'interrupted'      # lock released


def test_a_lock_without_status_is_a_running_run(tmp_path, capsys):
    make_run(tmp_path / 'starting', **SHORT)
    with rundir.Ownership(str(tmp_path / 'starting')):
        got = rows(capsys, tmp_path)['starting']
    assert (got['state'], got['state_inferred'], got['iteration']) == ('running', True, None)


def test_final_and_best_errors_with_their_iterations_and_median_speed(tmp_path, capsys):
    make_run(tmp_path / 'r', curve([(10, .50), (20, .30), (30, .30), (40, .35)],
                                   rates=(100., 300., 120., 5000.)), **SHORT)
    r = rows(capsys, tmp_path / 'r')['.']
    assert (r['final_test_err'], r['final_iteration']) == (.35, 40)
    assert (r['best_test_err'], r['best_iteration']) == (.30, 20)      # the earliest minimum
    assert r['img_per_sec'] == 210.0 and r['iteration'] == 40


def test_epochs_total_from_the_log_or_the_status(tmp_path, capsys):
    make_run(tmp_path / 'log', curve([(8, .5), (16, .4)], epoch_steps=8),
             optim__epochs=5, **SHORT)
    make_run(tmp_path / 'status', curve([(8, .5)], epoch_steps=8), optim__epochs=3,
             status=('running', 8, 24), **SHORT)
    make_run(tmp_path / 'iters', curve([(30, .5)]), **SHORT)
    got = rows(capsys, tmp_path)
    assert [(got[k]['total'], got[k]['epochs']) for k in ('log', 'status', 'iters')] == [
        (40, 5), (24, 3), (30, None)]
    code, out, _ = run_cli([tmp_path], capsys, runs.main)
    line = [x for x in out.splitlines() if x.startswith('log ')][0]
    assert '16/40 (5 ep)' in line and 'interrupted (inferred)' in line


def test_model_column_names_the_network_variant_and_dataset(tmp_path, capsys):
    make_run(tmp_path / 'named', model__model='cifar_resnet164_v2', data__dataset='cifar100')
    make_run(tmp_path / 'depth', model__depth=8, model__version='v1')
    make_run(tmp_path / 'ablation', model__depth=110, model__shortcut='gate_exclusive',
             model__gate_bias=-3.0, model__placement='relu_preact')
    make_run(tmp_path / 'own_placement', model__depth=56, model__placement='full_preact')
    make_run(tmp_path / 'imagenet', model__depth=200, data__dataset='imagenet')
    models = {k: r['model'] for k, r in rows(capsys, tmp_path).items()}
    assert models == {
        'named': 'cifar_resnet164_v2 cifar100', 'depth': 'resnet8_v1 cifar10',
        'ablation': 'cifar_resnet110_v2 shortcut=gate_exclusive placement=relu_preact '
                    'gate_bias=-3.0 cifar10',
        'own_placement': 'cifar_resnet56_v2 cifar10', 'imagenet': 'resnet200_v2 imagenet'}


def test_damaged_lines_are_skipped_counted_and_marked(tmp_path, capsys):
    make_run(tmp_path / 'r', curve([(10, .5)]),
             lines=['{"iteration": 20, "test_err"', '[1, 2]', '', '"text"', '{"epoch": 1}',
                    json.dumps(runlog.record(iteration=30, test_err=.25))], **SHORT)
    r = rows(capsys, tmp_path)['r']
    assert r['damaged_lines'] == 4 and r['warnings'] == ['4 damaged log lines']
    assert (r['final_test_err'], r['final_iteration'], r['iteration']) == (.25, 30, 30)
    code, out, err = run_cli([tmp_path], capsys, runs.main)
    assert code == 0 and err == '' and out.splitlines()[1].endswith('4 damaged log lines')


def test_missing_or_bad_config_gives_question_marks_not_a_traceback(tmp_path, capsys):
    make_run(tmp_path / 'noconfig', curve([(10, .5)]))
    os.remove(tmp_path / 'noconfig' / 'config.yaml')
    make_run(tmp_path / 'badyaml', curve([(10, .5)]))
    (tmp_path / 'badyaml' / 'config.yaml').write_text('model: [unclosed\n')
    make_run(tmp_path / 'list', curve([(10, .5)]))
    (tmp_path / 'list' / 'config.yaml').write_text('- 1\n- 2\n')
    got = rows(capsys, tmp_path)
    for name, problem in [('noconfig', 'no config.yaml'),
                          ('badyaml', 'config.yaml is not valid YAML'),
                          ('list', 'config.yaml holds no mapping')]:
        r = got[name]
        assert (r['model'], r['total'], r['state']) == ('?', None, '?'), name
        assert r['warnings'] == [problem] and r['final_test_err'] == .5
    code, out, err = run_cli([tmp_path], capsys, runs.main)
    assert code == 0 and 'Traceback' not in err
    assert any(x.startswith('noconfig') and ' 10/? ' in x for x in out.splitlines())


def test_unreadable_config_is_listed(tmp_path, capsys):
    make_run(tmp_path / 'r', curve([(10, .5)]), **SHORT)
    os.remove(tmp_path / 'r' / 'config.yaml')
    (tmp_path / 'r' / 'config.yaml').mkdir()           # open() fails, even for root
    r = rows(capsys, tmp_path)['r']
    assert r['warnings'] == ['config.yaml unreadable (Is a directory)'] and r['model'] == '?'


def test_nested_sweep_sorted_by_path_best_or_final(tmp_path, capsys):
    sweep = tmp_path / 'sweep'
    make_run(sweep / 'lr0.1' / 'seed1', curve([(10, .30), (30, .40)]), **SHORT)
    make_run(sweep / 'lr0.1' / 'seed0', curve([(10, .50), (30, .35)]), **SHORT)
    make_run(sweep / 'lr0.01', curve([(10, .60)]), **SHORT)
    make_run(sweep / 'lr0.3' / 'seed0', **SHORT)                      # nothing evaluated yet
    (sweep / 'notes').mkdir()
    (sweep / 'notes' / 'readme.txt').write_text('not a run')

    def order(*args):
        code, out, _ = run_cli(['--json'] + list(args) + [sweep], capsys, runs.main)
        return [r['run'] for r in json.loads(out)]
    assert order() == ['lr0.01', 'lr0.1/seed0', 'lr0.1/seed1', 'lr0.3/seed0']
    assert order('--sort', 'best') == ['lr0.1/seed1', 'lr0.1/seed0', 'lr0.01', 'lr0.3/seed0']
    assert order('--sort', 'final') == ['lr0.1/seed0', 'lr0.1/seed1', 'lr0.01', 'lr0.3/seed0']
    code, out, _ = run_cli([sweep], capsys, runs.main)
    lines = out.splitlines()
    assert lines[0].split()[:2] == ['run', 'model'] and len(lines) == 5
    assert [x.split()[0] for x in lines[1:]] == order()
    starts = {x.index('cifar_resnet20_v2') for x in lines[1:]}
    assert starts == {lines[0].index('model')}                          # aligned columns


def test_several_dirs_prefix_the_run_with_its_dir(tmp_path, capsys):
    make_run(tmp_path / 'a' / 'r', **SHORT)
    make_run(tmp_path / 'b' / 'r', **SHORT)
    got = rows(capsys, tmp_path / 'a', tmp_path / 'b')
    assert sorted(got) == sorted([str(tmp_path / 'a' / 'r'), str(tmp_path / 'b' / 'r')])


def test_module_runs_are_marked(tmp_path, capsys):
    make_run(tmp_path / 'm', curve([(30, .5)]), **SHORT)
    (tmp_path / 'm' / 'module.yaml').write_text('api: mx.mod.Module\nnet: notes\n')
    r = rows(capsys, tmp_path)['m']
    assert r['trainer'] == 'module' and r['model'] == 'notes_net cifar10-sample (Module)'


def test_an_empty_folder_is_no_error(tmp_path, capsys):
    code, out, err = run_cli([tmp_path], capsys, runs.main)
    assert (code, out.strip(), err) == (0, 'no run directories under %s' % tmp_path, '')
    assert rows(capsys, tmp_path) == {}


@pytest.mark.parametrize('target, problem', [('missing', 'does not exist'),
                                             ('file.txt', 'is a file, not a folder')])
def test_bad_dir_is_one_line_and_exit_2(tmp_path, capsys, target, problem):
    (tmp_path / 'file.txt').write_text('x')
    code, out, err = run_cli([tmp_path / target], capsys, runs.main)
    assert code == 2 and out == ''
    assert err.startswith('error: ') and problem in err and err.count('\n') == 1
    assert ': pass the folder' in err


def test_bad_dir_from_the_command_line(tmp_path):
    proc = subprocess.run([sys.executable, '-m', 'gluon_resnet_v2.runs', str(tmp_path / 'no')],
                          capture_output=True, text=True, timeout=60, cwd=str(REPO))
    assert proc.returncode == 2 and proc.stdout == ''
    assert proc.stderr.startswith('error: ') and proc.stderr.count('\n') == 1


def test_help_and_a_table_load_no_mxnet(tmp_path):
    make_run(tmp_path / 'r', curve([(10, .5)]), **SHORT)
    code = ('import runpy, sys\n'
            'for args in (["--help"], [%r]):\n'
            '    sys.argv = ["x"] + args\n'
            '    try:\n        runpy.run_module("gluon_resnet_v2.runs", run_name="__main__")\n'
            '    except SystemExit:\n        pass\n'
            'assert "mxnet" not in sys.modules, "mxnet was imported"' % str(tmp_path))
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=60, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert 'Usage:' in proc.stdout and '--sort' in proc.stdout
    assert 'cifar_resnet20_v2 cifar10-sample' in proc.stdout
