"""`python -m gluon_resnet_v2.bench`: the benchmark runs and reports what it measured.

Speed is never asserted: a quick run on a tiny case (every row once, a fresh child
process each) must print every row with finite numbers and ratios; the report's
arithmetic (medians, ratios, % of peak, the interleaved order) is checked on made-up
measurements; the multiply-add count against legacy_symbol's graph count.
"""
import json
import math
import os
import re
import subprocess
import sys

import mxnet as mx
import pytest

import gluon_resnet_v2 as grv
from gluon_resnet_v2 import bench, measure
from legacy_symbol.compare import flops

from support import run_cli

CASE = ('cifar_resnet20_v2', 32)      # 32: the train rows' final evaluation is quick


@pytest.fixture(scope='module')
def quick(tmp_path_factory):
    """The quick mode: one round, one warm-up and one timed step, a small GEMM."""
    out = tmp_path_factory.mktemp('bench')
    args = ['--cases', '%s:%d' % CASE, '--rounds', '1', '--steps', '1', '--warmup', '1',
            '--gemm-size', '256', '--json', out / 'report.json', '--markdown', out / 'table.md']
    try:
        bench.main_wrapper(bench.main)(list(map(str, args)))
        code = 0
    except SystemExit as e:
        code = e.code
    return code, json.loads((out / 'report.json').read_text()), (out / 'table.md').read_text()


def finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_quick_mode_measures_every_row(quick):
    code, report, table = quick
    assert code == 0
    assert finite(report['gemm']['float32'])
    (case,) = report['cases']
    assert finite(case['gflop_per_image']) and set(case['rows']) == set(bench.ROWS)
    for name, row in case['rows'].items():
        if row['unavailable']:      # bfloat16 on a CPU without AVX512-BF16; no PyTorch given
            assert bench.ROWS[name].dtype == 'bfloat16' or bench.ROWS[name].kind == 'torch'
            assert 'not available: %s' % row['unavailable'] in table
            continue
        assert [r for r in row['runs'] if 'error' in r] == []
        for key in ('img_per_sec', 'ratio', 'peak_rss_mb', 'gflops', 'pct_peak'):
            assert finite(row[key]), (name, key, row)
    assert case['rows']['gluon']['ratio'] == 1.0


def test_quick_mode_table_has_a_line_of_numbers_per_row(quick):
    _, report, table = quick
    for name, row in report['cases'][0]['rows'].items():
        if row['unavailable']:
            continue
        (line,) = [l for l in table.splitlines() if '| %s |' % bench.ROWS[name].label in l]
        cells = [c.strip() for c in line.strip('|').split('|')]
        img, spread, ratio, peak = cells[3:7]
        assert float(img) > 0 and float(ratio) > 0 and float(peak) > 0, line
        assert re.fullmatch(r'[\d.]+-[\d.]+', spread) and cells[8].endswith('%'), line
    assert 'GEMM peak' in table and 'Load average' in table and 'Measured on' in table


def test_report_is_medians_ratios_and_percent_of_peak():
    """build_report on made-up measurements: medians over the rounds (a failed one left
    out), ratios of medians to the Gluon float32 step, GFLOP/s over the measured peak."""
    rows = ['gluon', 'module', 'train']
    rates = {'gluon': (100, 80, 90), 'module': (50, 60, 70), 'train': (81, 99, 90)}
    runs = {(CASE, r): [dict(img_per_sec=v, peak_rss_mb=10.0 * v, macs_per_image=1e9 / 6,
                             other_load=0.1) for v in vs] for r, vs in rates.items()}
    runs[CASE, 'module'].append({'error': 'exit code -9: killed'})
    gemms = [{'float32': 400.0, 'bfloat16': 800.0}, {'float32': 300.0, 'bfloat16': None},
             {'error': 'x'}]
    report = bench.build_report([CASE], rows, runs, gemms, {}, [1.0, 2.0], dict(
        rounds=3, steps=1, warmup=0, cpus=1, seed=0, gemm_size=8, data='none'))
    (case,) = report['cases']
    assert report['gemm']['float32'] == 350.0 and report['gemm']['bfloat16'] == 800.0
    assert case['gflop_per_image'] == pytest.approx(1.0)
    got = {r: case['rows'][r] for r in rows}
    assert [got[r]['img_per_sec'] for r in rows] == [90, 60, 90]
    assert got['module']['ratio'] == pytest.approx(60 / 90) and got['gluon']['ratio'] == 1
    assert got['train']['range'] == [81, 99]
    assert got['module']['pct_peak'] == pytest.approx(100 * 60 * 1.0 / 350)
    assert '| %s | %d | Module step, float32 | 60.0 | 50.0-70.0 | 0.67 | 600 | 60 | 17 %% |' \
        % CASE in bench.format_report(report)


def test_rounds_interleave_and_rotate(monkeypatch):
    """Round > case > row with the row order rotated every round; the GEMM peak first in
    every round; a row this machine cannot run is measured no more."""
    seen = []

    def fake_call(function, kwargs, env):
        seen.append('gemm')
        return {'float32': 1.0, 'bfloat16': None, 'bf16_refusal': 'no AVX512-BF16'}

    def fake_measure(case, row, spec, env):
        seen.append(row)
        return dict(img_per_sec=1.0, peak_rss_mb=1.0, macs_per_image=1)
    monkeypatch.setattr(bench, 'call', fake_call)
    monkeypatch.setattr(bench, 'measure', fake_measure)
    report = bench.run_benchmark([CASE], ['gluon', 'gluon-bf16', 'module', 'train'], rounds=3,
                                 echo=lambda line: None)
    assert seen == ['gemm', 'gluon', 'module', 'train', 'gemm', 'module', 'train', 'gluon',
                    'gemm', 'module', 'train', 'gluon']
    assert report['cases'][0]['rows']['gluon-bf16']['unavailable'] == 'no AVX512-BF16'


@pytest.mark.parametrize('name', ['cifar_resnet20_v2', 'cifar_resnet164_v2'])
def test_multiply_adds_match_the_graph_count(name):
    net = grv.get_model(name, classes=measure.CLASSES)
    assert measure.macs_per_image(name) == flops.count_macs(net(mx.sym.var('data')))
    if name == 'cifar_resnet20_v2':
        assert measure.macs_per_image(name) == 40_813_184        # test_bench_tools' hand count


@pytest.mark.parametrize('args, words', [
    (['--cases', 'resnet99:8'], ['unknown model', 'cifar_resnet110_v2']),
    (['--cases', 'cifar_resnet20_v2'], ['NAME:BATCH']),
    (['--rows', 'gluon,fast'], ['unknown row', 'train-bf16']),
    (['--rounds', '0'], ['--rounds']),
])
def test_bad_options_are_one_line_errors(args, words, capsys):
    code, out, err = run_cli(args, capsys, bench.main)
    assert code == 2 and out == '' and err.count('\n') == 1 and err.startswith('error: ')
    assert all(w in err for w in words), err


def test_torch_rows_say_what_they_need_without_a_torch_python(quick):
    _, report, table = quick
    rows = report['cases'][0]['rows']
    for name in ('torch', 'torch-bf16'):
        assert rows[name]['unavailable'] == bench.NO_TORCH and rows[name]['runs'] == []
        assert '| %s | not available: give --torch-python' % bench.ROWS[name].label in table


def test_a_torch_python_without_torch_is_refused(capsys):
    """This environment has MXNet and no PyTorch (they must not share one)."""
    code, out, err = run_cli(['--torch-python', sys.executable, '--rows', 'gluon,torch'],
                             capsys, bench.main)
    assert code == 2 and out == '' and err.count('\n') == 1
    assert err.startswith('error: --torch-python %s cannot import torch' % sys.executable)


TORCH = os.environ.get('GRV_TORCH_PYTHON')


@pytest.mark.skipif(not TORCH, reason='needs a Python with PyTorch in its own virtual '
                                      'environment: set GRV_TORCH_PYTHON to it')
@pytest.mark.parametrize('name', ['cifar_resnet20_v2', 'cifar_resnet164_v2'])
def test_the_pytorch_reference_is_the_same_network(name, tmp_path):
    """Same parameter count as the Gluon network (every conv, BN and the FC: the PAPER.md
    counts, 1,730,522 for ResNet-110 and 1,703,258 for ResNet-164, were checked by hand),
    and its step runs."""
    job = tmp_path / 'job.json'
    job.write_text(json.dumps(dict(model=name, batch=8, dtype='float32', channels_last=True,
                                   steps=1, warmup=1, seed=0)))
    subprocess.run([TORCH, bench.TORCH_SCRIPT, str(job), str(tmp_path / 'out.json')],
                   check=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    got = json.loads((tmp_path / 'out.json').read_text())
    net = grv.init_model(grv.get_model(name, classes=measure.CLASSES))
    net(mx.nd.zeros((1,) + measure.INPUT))
    trainable = sum(p.data().size for p in net.collect_params().values()
                    if p.grad_req != 'null')
    assert got['params'] == trainable and finite(got['img_per_sec'])
