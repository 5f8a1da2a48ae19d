"""The experiment runner (gluon_resnet_v2.experiment): the tables as data, every row builds
its network, `run` trains, skips finished work and resumes interrupted work through the
train command, `status` and `summarize` read the run dirs, bad input is one line."""
import os
import subprocess
import sys

import pytest
import yaml

from gluon_resnet_v2 import rundir, runlog
from gluon_resnet_v2.errors import UserError
from gluon_resnet_v2.experiment import definitions, runner, summary
from gluon_resnet_v2.experiment.__main__ import cli
from gluon_resnet_v2.models.tables import PLACEMENTS, SHORTCUT_OPTIONS, SHORTCUTS, VERSIONS

from support import REPO, env1, run_cli

PAPER_MD = REPO.parent / 'shared' / 'PAPER.md'


def experiment(args, capsys):
    return run_cli(args, capsys, cli)


def residual_units(block):
    from gluon_resnet_v2.models.units import ResidualUnit
    for child in block._children.values():
        yield from [child] if isinstance(child, ResidualUnit) else residual_units(child)


# ------------------------------------------------------------------ the definitions

@pytest.mark.parametrize('name', definitions.table_names())
def test_every_row_builds_its_network_with_its_overrides(name):
    """Each row at each scale is a valid train config, and its network (built, no weights)
    has the row's units: depth, shortcut and its options, placement."""
    from gluon_resnet_v2.factory import build_net
    from gluon_resnet_v2.models import architecture
    table, scales = definitions.load_table(name), definitions.load_scales()
    assert table.rows and set(table.scales) <= set(scales)
    for scale in table.scales:            # a valid train config at every scale
        for row in table.rows:
            cfg = definitions.build(definitions.row_settings(row, scales[scale]), 'x', 3)
            assert cfg.run.seed == 3 and cfg.model.model == row.train['model']
    for row in table.rows:                # the network: the same at every scale
        cfg = definitions.build(row.train, 'x', 0)
        m, arch = cfg.model, architecture(cfg.model.model)
        net = build_net(m, cfg.data.dataset, 1000 if cfg.data.dataset == 'imagenet' else
                        {'cifar10': 10, 'cifar100': 100}[cfg.data.dataset])
        assert net.spec.depth == arch['depth']
        units = list(residual_units(net))
        assert len(units) == sum(net.spec.units)
        placement = PLACEMENTS[m.placement or VERSIONS[arch['version']]]
        for unit in units:
            assert unit.combine is SHORTCUTS[m.shortcut].combine, row.name
            assert [type(op).__name__ for op in unit.post] == [
                {'relu': 'Activation', 'bn': 'BatchNorm'}[op] for op in placement.post]
            for option in SHORTCUT_OPTIONS:
                if option in row.train:
                    assert unit.opts[option] == row.train[option], (row.name, option)


@pytest.mark.skipif(not PAPER_MD.exists(), reason='../shared/PAPER.md is not here')
def test_every_paper_number_is_the_papers():
    text = PAPER_MD.read_text()
    for name in definitions.table_names():
        for row in definitions.load_table(name).rows:
            assert row.paper is not None, row.name
            if row.paper != definitions.FAIL:
                assert ('%.2f' % row.paper in text or '%.1f' % row.paper in text), row.name


def test_the_quick_scale_keeps_the_networks_and_shrinks_the_schedule():
    quick = definitions.load_scales()['quick']
    assert not set(quick.train) & {'model', 'depth', 'block', 'dataset', 'batch_size'}
    assert quick.train['max_iters'] < 64000 and max(quick.train['lr_steps']) < \
        quick.train['max_iters'] and quick.compare is False and quick.fail_above is None
    assert 'quick' not in definitions.load_table('table5').scales


# ------------------------------------------------------------------ run, status

TINY = dict(title='tiny', seeds=1, defaults=dict(
    depth=8, dataset='cifar10-sample', subset=64, batch_size=16, max_iters=4, warmup_iters=0,
    lr_steps=[3], log_interval=2, eval_interval=4, checkpoint_interval=2, num_workers=0),
    rows=[dict(name='a', train=dict(shortcut='identity'), paper=1.0),
          dict(name='b', train=dict(shortcut='scale', scale=0.5), paper='fail')])


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A definition file of two rows of ResNet-8 on the sample, 4 iterations."""
    monkeypatch.setenv('PYTHONPATH', str(REPO))
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    path = tmp_path / 'tiny.yaml'
    path.write_text(yaml.safe_dump(TINY))
    return str(path), tmp_path / 'root'


def test_run_trains_skips_finished_runs_and_resumes_an_interrupted_one(tiny, capfd):
    path, root = tiny
    code, out, err = experiment(['run', path, '--root', root], capfd)
    assert code == 0, err
    a0, b0 = root / 'tiny-paper' / 'a' / 'seed0', root / 'tiny-paper' / 'b' / 'seed0'
    for d in (a0, b0):
        assert rundir.state(str(d))['state'] == 'finished'
        assert rundir.state(str(d))['iteration'] == 4
    cfg = yaml.safe_load((b0 / 'config.yaml').read_text())
    assert cfg['model']['shortcut'] == 'scale' and cfg['run']['seed'] == 0
    assert 'tiny at paper scale: 2 done' in out

    before = {d: (d / 'log.jsonl').stat().st_mtime_ns for d in (a0, b0)}
    code, out, err = experiment(['run', path, '--root', root], capfd)
    assert code == 0 and out.count('done, skipped') == 2, out + err
    assert {d: (d / 'log.jsonl').stat().st_mtime_ns for d in (a0, b0)} == before

    # seed 1 of row a stopped at its checkpoint of iteration 2 (max_iters is not frozen,
    # so the same command with --max-iters 2 leaves such a run), its status: interrupted
    job = runner.plan(definitions.load_table(path), definitions.load_scales()['paper'],
                      str(root), [definitions.load_table(path).rows[0]], 2, {})[1]
    subprocess.run(job.argv() + ['--max-iters', '2'], env=env1(), check=True,
                   capture_output=True, timeout=120)
    rundir.write_status(job.run_dir, 'interrupted', 2, 4)
    first = runlog.read_log(job.run_dir)
    code, out, err = experiment(['status', path, '--root', root, '--seeds', '2'], capfd)
    lines = [line.split() for line in out.splitlines()]
    assert ['a', '1', 'interrupted', '2/4'] in [line[:4] for line in lines]
    assert ['b', '1', 'not', 'started'] in lines
    code, out, err = experiment(['run', path, '--root', root, '--seeds', '2', '--rows', 'a'],
                                capfd)
    assert code == 0, err
    assert '[2/2] a seed 1: resuming' in out and 'resuming %s at iteration 2 of 4' % job.run_dir \
        in out
    assert rundir.state(job.run_dir)['state'] == 'finished'
    log = runlog.read_log(job.run_dir)
    assert log[:len(first)] == first and log[-1]['iteration'] == 4
    assert not (root / 'tiny-paper' / 'b' / 'seed1').exists()      # not in --rows


def test_a_run_refused_by_the_train_command_stops_with_its_line(tiny, capfd):
    path, root = tiny
    code, out, err = experiment(['run', path, '--root', root, '--dtype', 'float16'], capfd)
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith('error: a seed 0: --dtype float16 is not supported on CPU')
    assert 'Traceback' not in err and not (root / 'tiny-paper' / 'a' / 'seed0').exists()


def test_jobs_trains_runs_at_once_each_writing_its_output_file(tiny, capfd):
    """--jobs 2: both rows train at once, each child's output in <run dir>.out, a line per
    start and end here; the runs equal what --jobs 1 trains (same command per run)."""
    path, root = tiny
    code, out, err = experiment(['run', path, '--root', root, '--jobs', '2'], capfd)
    assert code == 0, err
    for row in ('a', 'b'):
        d = root / 'tiny-paper' / row / 'seed0'
        assert rundir.state(str(d))['state'] == 'finished'
        assert 'output: %s.out' % d in out and 'run dir %s' % d in (
            root / 'tiny-paper' / row / 'seed0.out').read_text()
        assert yaml.safe_load((d / 'config.yaml').read_text())['data']['num_workers'] == 0
    assert out.count(': done, test error') == 2 and 'tiny at paper scale: 2 done' in out
    code, out, err = experiment(['run', path, '--root', root, '--jobs', '2'], capfd)
    assert code == 0 and out.count('done, skipped') == 2, out + err


def test_jobs_refusal_by_the_train_command_is_its_line(tiny, capfd):
    path, root = tiny
    code, out, err = experiment(['run', path, '--root', root, '--jobs', '2', '--dtype',
                                 'float16'], capfd)
    assert code == 2 and 'Traceback' not in err
    assert err.strip().splitlines()[-1].startswith('error: ') and \
        '--dtype float16 is not supported on CPU' in err.strip().splitlines()[-1]


def test_two_runs_of_one_table_at_once_each_train_other_runs(tmp_path):
    """Two `run` commands of the same table started together (one with --jobs 2): both look
    at row a before either child holds its lock, so one child is refused; that command
    takes it as a run trained elsewhere and goes on. Both end well, every run is trained
    once (no iteration logged twice)."""
    spec = dict(TINY, defaults=dict(TINY['defaults'], max_iters=20, lr_steps=[10],
                                    eval_interval=20, checkpoint_interval=10),
                rows=TINY['rows'] + [dict(name='c', train=dict(shortcut='conv1x1'), paper=2.0)])
    path = tmp_path / 'tiny.yaml'
    path.write_text(yaml.safe_dump(spec))
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    argv = [sys.executable, '-m', 'gluon_resnet_v2.experiment', 'run', str(path), '--root',
            str(tmp_path / 'root')]
    procs = [subprocess.Popen(argv + extra, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for extra in ([], ['--jobs', '2'])]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    said = ''.join(o for o, _ in outs)
    assert 'taken by another process' in said or 'running, skipped' in said
    for row in ('a', 'b', 'c'):
        d = str(tmp_path / 'root' / 'tiny-paper' / row / 'seed0')
        assert rundir.state(d)['state'] == 'finished'
        its = [r['iteration'] for r in runlog.read_log(d) if r.get('train_loss') is not None]
        assert its == sorted(set(its)) and its[-1] == 20, (row, its)


def test_a_child_refused_as_busy_is_another_process_run_whatever_its_status_says(
        tmp_path, monkeypatch):
    """Which of two `run` commands trains a run is a race; the loser's child is refused
    with RunDirBusy's message. The winner's run may have no status yet, be running, or be
    finished by the time the loser looks: each is "taken", not an error. Any other
    refusal (exit 2) stops the table, whatever the run dir's status."""
    job = runner.Job(definitions.Row('a', {}, None), 0, str(tmp_path / 'a' / 'seed0'), {})
    busy = 'run dir %s%sprocess 1 on h (x): wait for it to finish' % (job.run_dir, rundir.BUSY)
    for state, word in ((None, 'running'), ('running', 'running'), ('finished', 'done')):
        monkeypatch.setattr(runner, 'job_state', lambda j, s=state: (s, None, None, None))
        outcome, said = {}, []
        runner.record(outcome, job, 2, busy, said.append)
        assert outcome == {job.label: word}
        assert said == ['%s: taken by another process (%s), skipped' % (job.label, word)]
    monkeypatch.setattr(runner, 'job_state', lambda j: ('running', None, None, None))
    with pytest.raises(UserError, match='--lr must be positive'):
        runner.record({}, job, 2, '--lr must be positive: give a number > 0', lambda m: None)


def test_jobs_share_out_the_cores_unless_the_user_set_threads(monkeypatch):
    monkeypatch.setattr(runner, 'cores', lambda: 8)
    threads = [runner.child_env(n, {'PATH': 'p'}).get('OMP_NUM_THREADS') for n in (1, 2, 3, 16)]
    assert threads == [None, '4', '2', '1']
    assert runner.child_env(2, {'OMP_NUM_THREADS': '3'})['OMP_NUM_THREADS'] == '3'
    assert runner.child_env(2, {'PATH': 'p'})['PATH'] == 'p'


def test_jobs_children_get_the_users_threads_not_the_commands_own(tmp_path):
    """`python -m ...experiment run --jobs 2` with OMP_NUM_THREADS unset: the command's
    own set-up (all cores for MXNet in this process) must not reach the children, which
    would then oversubscribe the cores; each child gets cores / 2."""
    path = tmp_path / 'tiny.yaml'
    path.write_text(yaml.safe_dump(TINY))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop('OMP_NUM_THREADS', None)
    done = subprocess.run([sys.executable, '-m', 'gluon_resnet_v2.experiment', 'run', str(path),
                           '--root', str(tmp_path / 'root'), '--jobs', '2', '--rows', 'a'],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = (tmp_path / 'root' / 'tiny-paper' / 'a' / 'seed0.out').read_text()
    assert 'cpu(0), %d OpenMP thread' % max(1, runner.cores() // 2) in out


BAD = {
    'unknown table': (['run', 'table9'], 'unknown experiment'),
    'missing file': (['list', 'nope/x.yaml'], 'does not exist'),
    'no quick scale': (['run', 'table5', '--scale', 'quick'], 'table5 has no quick scale'),
    'unknown scale': (['status', 'table1', '--scale', 'huge'], 'table1 has no huge scale'),
    'unknown row': (['status', 'table1', '--rows', 'identity,nope'], 'unknown row nope'),
    'seeds': (['run', 'table1', '--seeds', '0'], "Invalid value for '--seeds'"),
    'gpus': (['run', 'table1', '--gpus', 'x'], 'expected comma-separated integers'),
    'nothing to summarize': (['summarize', 'table1', '--root', '{tmp}/none'], 'no runs of'),
    'root is a file': (['run', 'table1', '--root', '{tmp}/file'], 'is a file'),
    'jobs with gpus': (['run', 'table1', '--jobs', '2', '--gpus', '0'], 'would share the GPUs'),
    'jobs 0': (['run', 'table1', '--jobs', '0'], "Invalid value for '--jobs'"),
}
DEFS = {
    'bad option': ({'rows': [{'name': 'x', 'train': {'depht': 8}}]},
                   'unknown train option depht'),
    'bad value': ({'rows': [{'name': 'x', 'train': {'shortcut': 'teleport'}}]},
                  'unknown shortcut'),
    'bad model': ({'rows': [{'name': 'x', 'train': {'model': 'resnet50_v2'}}]},
                  'network of the imagenet family'),
    'seed': ({'rows': [{'name': 'x', 'train': {'seed': 3}}]}, 'the runner names each run'),
    'twice': ({'rows': [{'name': 'x'}, {'name': 'x'}]}, 'appears twice'),
    'bad name': ({'rows': [{'name': '../x'}]}, 'needs a name'),
    'paper': ({'rows': [{'name': 'x', 'paper': 'great'}]}, 'paper must be a number'),
    'group': ({'rows': [{'name': 'x', 'group': 110}]}, 'group must be a text'),
    'no rows': ({'title': 't'}, 'has no rows'),
}


@pytest.mark.parametrize('case', list(BAD) + ['def ' + k for k in DEFS])
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path, capsys):
    (tmp_path / 'file').write_text('x')
    if case.startswith('def '):
        spec, words = DEFS[case[4:]]
        (tmp_path / 'd.yaml').write_text(yaml.safe_dump(spec))
        args = ['run', str(tmp_path / 'd.yaml'), '--root', str(tmp_path / 'root')]
    else:
        args, words = BAD[case]
        args = [a.replace('{tmp}', str(tmp_path)) for a in args]
    listing = sorted(os.listdir(tmp_path))
    code, out, err = experiment(args, capsys)
    assert code == 2 and err.count('\n') == 1 and err.startswith('error: '), err
    assert words in err
    assert sorted(os.listdir(tmp_path)) == listing


# ------------------------------------------------------------------ summarize

def fake_run(root, table, scale, row, seed, state, errors, extra=None):
    """A run dir written by hand: config (the row's, `extra` train options on top), a log
    whose test errors are `errors`, a status."""
    d = runner.run_dir(str(root), table, scale, row, seed)
    runlog.write_config(d, definitions.build(definitions.row_settings(row, scale, extra), d,
                                             seed).to_dict())
    log = runlog.JsonlLog(d)
    for i, e in enumerate(errors, 1):
        log.write(iteration=100 * i, epoch=i / 4, train_loss=2.0 / i)
        log.write(iteration=100 * i, epoch=i / 4, test_err=e, test_loss=1.0)
    rundir.write_status(d, state, 100 * len(errors), 100 * len(errors))


def test_summarize_median_mean_std_and_the_papers_numbers(tmp_path, capsys):
    table, scale = definitions.load_table('table1'), definitions.load_scales()['paper']
    rows = {r.name: r for r in table.rows}
    for seed, e in enumerate([0.066, 0.070, 0.062]):      # median 6.60, mean 6.60, std 0.40
        fake_run(tmp_path, table, scale, rows['identity'], seed, 'finished', [0.5, e])
    for seed, e in enumerate([0.12, 0.13]):                # 12.50, 12.50 +- 0.71
        fake_run(tmp_path, table, scale, rows['conv1x1'], seed, 'finished', [0.4, e])
    fake_run(tmp_path, table, scale, rows['scale_0.5'], 0, 'finished', [0.55])
    fake_run(tmp_path, table, scale, rows['scale_0.5'], 1, 'diverged', [0.9])
    fake_run(tmp_path, table, scale, rows['scale_0.5'], 2, 'finished', [0.60])
    fake_run(tmp_path, table, scale, rows['gate_exclusive_bg0'], 0, 'diverged', [0.9])
    fake_run(tmp_path, table, scale, rows['gate_exclusive_bg0'], 1, 'finished', [0.50])
    fake_run(tmp_path, table, scale, rows['dropout_0.5'], 0, 'interrupted', [0.01])
    code, out, err = experiment(['summarize', 'table1', '--root', tmp_path, '--seeds', '3'],
                                capsys)
    assert code == 0, err
    cells = {line.split('|')[1].strip(): [c.strip() for c in line.split('|')[2:-1]]
             for line in out.splitlines() if line.startswith('| ')}
    assert cells['identity'] == ['3/3', '6.60 (6.60 ± 0.40)', '6.61', '-0.01', '1 / 1', '']
    assert cells['conv1x1'] == ['2/3', '12.50 (12.50 ± 0.71)', '12.22', '+0.28', '2 / 2', '']
    # a diverged seed counts as worse than any error: the median of [55, 60, diverged] is
    # 60 (not the finished seeds' 57.5), with no mean or std; the median of [50, diverged]
    # is "diverged" (not 50), ranked below every number
    assert cells['scale_0.5'] == ['2/3, 1 diverged', 'fail: 60.00', 'fail (> 20)', 'both fail',
                                  '3 / 3', '']
    assert cells['gate_exclusive_bg0'][:5] == ['1/3, 1 diverged', 'diverged (finished: 50.00)',
                                               'fail (> 20)', 'both fail', '4 / 3']
    assert cells['dropout_0.5'][:2] == ['0/3', 'not run']       # interrupted: not counted
    assert 'Precision of the finished runs: float32.' in out
    written = tmp_path / 'table1-paper' / 'summary.md'
    assert written.read_text() in out
    png = tmp_path / 'table1-paper' / 'curves.png'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    # the curves show each row's median seed: scale_0.5's is seed 2 (60), the exclusive
    # gate's the diverged seed 0
    reps = summary.representative_runs(table, scale, str(tmp_path),
                                       summary.collect(table, scale, str(tmp_path), 3))
    assert list(reps) == ['identity (seed 0)', 'scale_0.5 (seed 2)',
                          'gate_exclusive_bg0 (seed 0, diverged)', 'conv1x1 (seed 0)']


def test_at_the_quick_scale_ranks_replace_differences_and_fail():
    table, quick = definitions.load_table('table1'), definitions.load_scales()['quick']
    rows = {r.name: r for r in table.rows}
    results = [summary.row_result(rows['identity'], {0: 45.0}, [], 1),
               summary.row_result(rows['scale_0.5'], {0: 80.0}, [], 1),
               summary.row_result(rows['conv1x1'], {0: 40.0}, [], 1),
               summary.row_result(rows['dropout_0.5'], {}, [0], 1),
               summary.row_result(rows['gate_shortcut_bg0'], {}, [], 1)]
    text = summary.markdown(table, quick, results, 1)
    assert 'not comparable' in text and 'fail:' not in text
    assert '| identity | 1/1 | 45.00 | 6.61 |  | 2 / 1 |' in text
    assert '| conv1x1 | 1/1 | 40.00 | 12.22 |  | 1 / 2 |' in text
    assert '| scale_0.5 | 1/1 | 80.00 | fail (> 20) |  | 3 / 3 |' in text
    # diverged everywhere: below every result, tied with the paper's other fail
    assert '| dropout_0.5 | 0/1, 1 diverged | diverged | fail (> 20) |  | 4 / 3 |' in text
    assert '| gate_shortcut_bg0 | 0/1 | not run | 12.86 |  |  |' in text


def test_ranks_are_within_the_rows_groups():
    # Table 2 compares placements within one depth: ResNet-164's rows are not ranked
    # against ResNet-110's (whose errors at the quick scale are lower)
    table, quick = definitions.load_table('table2'), definitions.load_scales()['quick']
    rows = {r.name: r for r in table.rows}
    assert rows['r110_original'].group == 'ResNet-110' != rows['r164_original'].group
    results = [summary.row_result(rows[name], {0: e}, [], 1) for name, e in
               [('r110_original', 47.0), ('r110_full_preact', 41.0), ('r110_relu_preact', 45.0),
                ('r164_original', 54.0), ('r164_full_preact', 46.0)]]
    text = summary.markdown(table, quick, results, 1)
    assert 'Ranks are within a group' in text
    assert '| r110_original | ResNet-110 | 1/1 | 47.00 | 6.61 |  | 3 / 2 |' in text
    assert '| r110_full_preact | ResNet-110 | 1/1 | 41.00 | 6.37 |  | 1 / 1 |' in text
    assert '| r110_relu_preact | ResNet-110 | 1/1 | 45.00 | 6.71 |  | 2 / 3 |' in text
    assert '| r164_original | ResNet-164 | 1/1 | 54.00 | 5.93 |  | 2 / 2 |' in text
    assert '| r164_full_preact | ResNet-164 | 1/1 | 46.00 | 5.46 |  | 1 / 1 |' in text
    assert summary.ranks([3, 1, 2, 1], ['a', 'a', 'b', 'b']) == [2, 1, 2, 1]
    # a table without groups ranks all its rows together, with no group column
    table1 = definitions.load_table('table1')
    plain = [summary.row_result(r, {0: 50.0 - i}, [], 1) for i, r in enumerate(table1.rows[:3])]
    text = summary.markdown(table1, quick, plain, 1)
    assert 'group' not in text and '| 3 / ' in text and '| 1 / ' in text


def test_summarize_draws_one_panel_per_group(tmp_path, capsys):
    table, quick = definitions.load_table('table2'), definitions.load_scales()['quick']
    rows = {r.name: r for r in table.rows}
    for name, errors in [('r110_original', [0.6, 0.48]), ('r110_full_preact', [0.5, 0.41]),
                         ('r164_full_preact', [0.55, 0.46])]:
        fake_run(tmp_path, table, quick, rows[name], 0, 'finished', errors, {'dtype': 'bfloat16'})
    results = summary.collect(table, quick, str(tmp_path), 1)
    assert 'Precision of the finished runs: bfloat16.' in summary.markdown(table, quick,
                                                                            results, 1)
    panels = summary.curve_panels(table, quick, str(tmp_path), results)
    assert [(title, sorted(runs)) for title, runs in panels] == [
        ('ResNet-110', ['r110_full_preact (seed 0)', 'r110_original (seed 0)']),
        ('ResNet-164', ['r164_full_preact (seed 0)'])]
    code, out, err = experiment(['summarize', 'table2', '--scale', 'quick', '--seeds', '1',
                                 '--root', tmp_path], capsys)
    assert code == 0, err
    assert (tmp_path / 'table2-quick' / 'curves.png').read_bytes()[:4] == b'\x89PNG'


def files_under(root):
    return sorted(os.path.join(d, f) for d, _, names in os.walk(root) for f in names)


def test_a_run_trained_with_other_settings_is_refused_not_counted(tmp_path, capsys):
    """A run of the short scale where the quick scale's should be (a scale redefined since
    the run, a run moved in from elsewhere): summarize, status and run refuse it rather
    than count its error or skip it as finished, and write or train nothing."""
    table, scales = definitions.load_table('table1'), definitions.load_scales()
    row = table.rows[0]
    fake_run(tmp_path, table, scales['short'], row, 0, 'finished', [0.5, 0.4])
    os.rename(tmp_path / 'table1-short', tmp_path / 'table1-quick')
    before = files_under(tmp_path)
    for command, more in (('summarize', []), ('status', []), ('run', ['--rows', row.name])):
        code, out, err = experiment([command, 'table1', '--scale', 'quick', '--seeds', '1',
                                     '--root', tmp_path] + more, capsys)
        assert code == 2 and err.count('\n') == 1 and err.startswith('error: run dir '), err
        assert 'max_iters %d' % scales['short'].train['max_iters'] in err.split('where')[0]
        assert 'max_iters %d' % scales['quick'].train['max_iters'] in err.split('where')[1]
    assert files_under(tmp_path) == before


def test_a_field_the_run_predates_counts_as_its_default_and_a_finished_runs_length_counts():
    table, quick = definitions.load_table('table1'), definitions.load_scales()['quick']
    cfg = definitions.build(definitions.row_settings(table.rows[0], quick), 'x', 0)
    saved = cfg.to_dict()
    del saved['run']['sync_bn']                  # a frozen field added after the run
    assert runner.differences(saved, cfg, ()) == []
    saved['optim']['max_iters'] = 2 * quick.train['max_iters']
    saved['optim']['dtype'] = 'bfloat16'         # not given: not compared
    assert runner.differences(saved, cfg, ()) == [
        ('max_iters', 2 * quick.train['max_iters'], quick.train['max_iters'])]
    assert [k for k, _, _ in runner.differences(saved, cfg, ('dtype',))] == ['dtype',
                                                                            'max_iters']
    assert runner.differences(saved, cfg, (), finished=False) == []   # may be resumed to it


def test_a_bfloat16_table_reads_as_it_is_but_is_no_float32_runs_result(tmp_path, capsys):
    """The precision is passed through by `run`: status and summarize (no --dtype) read a
    bfloat16 table; `run --dtype float32` refuses its finished runs instead of skipping
    them as done, and `run --dtype bfloat16` skips them."""
    table, quick = definitions.load_table('table1'), definitions.load_scales()['quick']
    row = table.rows[0]
    fake_run(tmp_path, table, quick, row, 0, 'finished', [0.45], {'dtype': 'bfloat16'})
    args = ['table1', '--scale', 'quick', '--seeds', '1', '--root', tmp_path]
    code, out, err = experiment(['status'] + args + ['--rows', row.name], capsys)
    assert code == 0 and 'done' in out, err
    code, out, err = experiment(['run'] + args + ['--rows', row.name, '--dtype', 'float32'],
                                capsys)
    assert code == 2 and 'dtype bfloat16' in err and 'asks for dtype float32' in err, err
    code, out, err = experiment(['run'] + args + ['--rows', row.name, '--dtype', 'bfloat16'],
                                capsys)
    assert code == 0 and 'done, skipped' in out, err


def test_list_prints_the_rows_and_the_quick_scale(capsys):
    code, out, err = experiment(['list', 'table1'], capsys)
    assert code == 0, err
    assert 'identity' in out and '6.61' in out and '--shortcut gate_exclusive --gate-bias -6' in out
    assert 'scale quick' in out and '--max-iters %d' % definitions.load_scales()[
        'quick'].train['max_iters'] in out
    code, out, err = experiment(['list'], capsys)
    assert [line.split()[0] for line in out.splitlines()] == definitions.table_names()
