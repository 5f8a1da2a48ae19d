"""The benchmark tools of issue 4: `compare speed`, `compare notes` and the FLOP counter.

Speed is measured by the benchmarks, never asserted here: these tests check what the
tools count and report (multiply-adds against hand computations, the report's schema, that
ratios are ratios of the reported medians, that the mirroring variants really mirror
(planned, and MXNET_BACKWARD_DO_MIRROR in their subprocess)) on tiny cases, 1 step each.
"""
import json
import statistics

import mxnet as mx
import numpy as np
import pytest
from click.testing import CliRunner

import gluon_resnet_v2 as grv
from legacy_symbol import notes, paper
from legacy_symbol.compare import flops, notes_vs_paper, speed
from legacy_symbol.compare.cli import cli


# ---- FLOP counter ----

def tiny_symbol():
    """conv 3->4 3x3 pad 1 (with bias), 1x1 stride-2 conv 4->8, grouped 3x3 conv (2 groups),
    ReLU, FC 10: every case the counter handles."""
    x = mx.sym.Variable('data')
    x = mx.sym.Convolution(x, num_filter=4, kernel=(3, 3), pad=(1, 1), name='a')
    x = mx.sym.Convolution(x, num_filter=8, kernel=(1, 1), stride=(2, 2), no_bias=True, name='b')
    x = mx.sym.Convolution(x, num_filter=8, kernel=(3, 3), pad=(1, 1), num_group=2, name='c')
    return mx.sym.FullyConnected(mx.sym.relu(x), num_hidden=10, name='f')


@pytest.mark.parametrize('batch', [1, 3])
def test_flop_counter_on_a_hand_computed_symbol(batch):
    # 8x8 input. a: 4 out x 8x8 positions x (3 in x 3x3) = 6912; b: 8 x 4x4 x 4 = 512;
    # c: 8 x 4x4 x (8/2 x 3x3) = 4608; f: 10 x (8 x 4x4 = 128 inputs) = 1280. Per image.
    assert flops.layer_macs(tiny_symbol(), (batch, 3, 8, 8)) == {'a': 6912, 'b': 512,
                                                                 'c': 4608, 'f': 1280}
    assert flops.count_macs(tiny_symbol(), (batch, 3, 8, 8)) == 13312


def cifar_basic_macs(n, classes=10):
    """Conv/FC multiply-adds of a CIFAR 6n+2 ResNet, from the architecture: 3x3/16 stem at
    32x32; stages of n two-conv units at 16/32/64 channels on 32/16/8 pixel maps; the first
    unit of stages 2 and 3 has stride 2 and a 1x1 projection; FC from 64 features."""
    total, c_in = 32 * 32 * 16 * 3 * 9, 16
    for width, size in ((16, 32), (32, 16), (64, 8)):
        positions = size * size
        total += positions * width * c_in * 9               # first conv (strided where it reshapes)
        total += (2 * n - 1) * positions * width * width * 9
        if c_in != width:
            total += positions * width * c_in                # 1x1 projection, option B
        c_in = width
    return total + 64 * classes


def notes_macs(units=12, widths=(64, 128, 256)):
    """The notes' ResNet(units, widths): bare 3x3/16 stem at 32x32, every stage starts with
    stride 2 (maps 16, 8, 4) and a 1x1 projection, FC from 256 x 2 x 2 (biases not counted)."""
    total, c_in, size = 32 * 32 * 16 * 3 * 9, 16, 32
    for width in widths:
        size //= 2
        total += size * size * (width * c_in * 9 + width * c_in             # conv1, projection
                                + (2 * units - 1) * width * width * 9)
        c_in = width
    return total + 10 * widths[-1] * 2 * 2


# ResNet-20 by hand: stem 442,368 + stage 1 6 x 2,359,296 + stages 2, 3 each
# (1,179,648 + 5 x 2,359,296 + 131,072) + FC 640; ResNet-56 the same with 18 convs a stage.
@pytest.mark.parametrize('name, n, total', [('cifar_resnet20_v2', 3, 40_813_184),
                                            ('cifar_resnet56_v1', 9, 125_747_840)])
def test_flop_counter_matches_the_architecture_formula(name, n, total):
    expected = cifar_basic_macs(n)
    assert expected == total
    assert flops.count_macs(paper.get_symbol(name)) == expected
    net = grv.get_model(name)                         # Gluon's own graph, other op names
    assert flops.count_macs(net(mx.sym.var('data'))) == expected


def test_flop_counter_on_the_notes_network():
    assert flops.count_macs(notes.notes_network()) == notes_macs() == 664_725_504


# ---- compare speed ----

@pytest.fixture(scope='module')
def speed_run(tmp_path_factory):
    """The CLI on one tiny case, every variant once: 5 fresh subprocesses."""
    out = tmp_path_factory.mktemp('speed')
    result = CliRunner().invoke(cli, [
        'speed', '--cases', 'cifar_resnet20_v2:4', '--repeats', '1', '--steps', '1',
        '--warmup-steps', '1', '--out', str(out / 'speed.json'), '--markdown', str(out / 'speed.md')])
    assert result.exit_code == 0, result.output
    return json.loads((out / 'speed.json').read_text()), (out / 'speed.md').read_text()


def test_speed_report_schema(speed_run):
    report, markdown = speed_run
    cfg = report['config']
    assert {'repeats', 'steps', 'warmup', 'seed', 'cases', 'variants', 'data', 'order',
            'omp_num_threads', 'cores', 'mxnet'} <= set(cfg)
    assert cfg['cases'] == ['cifar_resnet20_v2:4'] and 'synthetic' in cfg['data']
    (case,) = report['cases']
    assert (case['model'], case['batch']) == ('cifar_resnet20_v2', 4)
    assert set(case['variants']) == set(speed.VARIANTS)
    for name, v in case['variants'].items():
        (run,) = v['runs']
        assert 'error' not in run, run
        assert run['img_per_sec'] > 0 and run['peak_rss_mb'] > 50, (name, run)
    assert set(case['ratios']) == ({k for k, *_ in speed.RATIOS} |
                                   {k for k, _ in speed.SAVINGS})
    assert markdown.count('| cifar_resnet20_v2 | 4 |') == 2      # speed and memory tables


def test_speed_ratios_are_ratios_of_the_reported_medians(speed_run):
    report, _ = speed_run
    for case in report['cases']:
        v, r = case['variants'], case['ratios']
        for key, num, den, metric in speed.RATIOS:
            assert r[key] == pytest.approx(v[num][metric] / v[den][metric], rel=1e-12), key
        for variant, key in zip(('module_mirror', 'module_mirror_env'), speed.SAVINGS):
            saving = 100 * (1 - v[variant]['peak_rss_mb'] / v['module']['peak_rss_mb'])
            assert r[key[0]] == pytest.approx(saving, rel=1e-12)


def test_speed_medians_over_repeats_and_failed_runs():
    """build_report on made-up runs: medians over the successful repeats, ratios of them."""
    case = 'cifar_resnet20_v2:8'
    values = {'hybrid': (30, 10, 20), 'imperative': (9, 12, 7), 'module': (20, 10, 15),
              'module_mirror': (14, 10, 12), 'module_mirror_env': (19, 21, 20)}
    runs = {(case, v): [{'img_per_sec': s, 'peak_rss_mb': 100.0 * s} for s in speeds]
            for v, speeds in values.items()}
    runs[case, 'module'].append({'error': 'exit code -9: killed'})
    report = speed.build_report([case], runs, dict(repeats=3, steps=1, warmup=0, seed=0))
    (c,) = report['cases']
    median = {v: statistics.median(s) for v, s in values.items()}      # 20, 9, 15, 12
    assert {v: c['variants'][v]['img_per_sec'] for v in values} == median
    assert c['ratios']['hybrid/module img/s'] == pytest.approx(20 / 15)
    assert c['ratios']['mirror memory saving %'] == pytest.approx(100 * (1 - 12 / 15))
    assert c['ratios']['mirror env memory saving %'] == pytest.approx(100 * (1 - 20 / 15))
    assert '1 measurement(s) failed' in speed.format_markdown(report)


def test_mirroring_variants_run_with_mirroring_in_their_subprocess(speed_run):
    report, _ = speed_run
    variants = report['cases'][0]['variants']
    env = {v: variants[v]['runs'][0]['env'] for v in speed.VARIANTS}
    run = {v: variants[v]['runs'][0] for v in speed.VARIANTS}
    assert env['module_mirror_env']['MXNET_BACKWARD_DO_MIRROR'] == '1'
    assert all(env[v]['MXNET_BACKWARD_DO_MIRROR'] is None for v in ('hybrid', 'imperative',
                                                                    'module', 'module_mirror'))
    assert {env[v]['MXNET_SUBGRAPH_BACKEND'] for v in speed.VARIANT_MIRROR} == {'NONE'}
    # the bound graph recomputes nodes in backward only with mirroring, and the planned
    # mirroring (convolutions recomputed too) plans less memory than the Module without
    assert run['module_mirror']['mirrored_nodes'] > run['module_mirror_env']['mirrored_nodes'] > 0
    assert run['module']['mirrored_nodes'] == 0
    assert run['module_mirror']['planned_mb'] < run['module']['planned_mb']


def test_variant_env_drops_a_stray_mirroring_flag():
    base = {'MXNET_BACKWARD_DO_MIRROR': '1', 'OMP_NUM_THREADS': '3', 'PATH': '/bin'}
    assert 'MXNET_BACKWARD_DO_MIRROR' not in speed.variant_env('module', base)
    assert 'MXNET_BACKWARD_DO_MIRROR' not in speed.variant_env('module_mirror', base)
    assert speed.variant_env('module_mirror_env', base)['MXNET_BACKWARD_DO_MIRROR'] == '1'
    assert speed.variant_env('hybrid', base)['OMP_NUM_THREADS'] == '3'   # the user's
    assert speed.variant_env('hybrid', {})['OMP_NUM_THREADS'].isdigit()


def test_speed_order_interleaves_and_rotates_the_variants():
    order = speed.run_order(['a:1', 'b:1'], repeats=2, variants=('x', 'y', 'z'))
    assert [(r, c) for r, c, _ in order] == [(r, c) for r in (0, 1) for c in ('a:1', 'b:1')
                                             for _ in 'xyz']
    assert [v for _, _, v in order] == list('xyzxyzyzxyzx')


@pytest.mark.parametrize('case', ['cifar_resnet20_v2', 'cifar_resnet20_v2:0', 'nope:8'])
def test_speed_rejects_bad_cases(case):
    result = CliRunner().invoke(cli, ['speed', '--cases', case])
    assert result.exit_code == 2 and 'Invalid value' in result.output


# ---- compare notes ----

def test_notes_command_on_a_tiny_budget(tmp_path):
    result = CliRunner().invoke(cli, [
        'notes', '--max-iters', '2', '--batch-size', '4', '--test-images', '8',
        '--out', str(tmp_path / 'notes.json'), '--markdown', str(tmp_path / 'notes.md')])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / 'notes.json').read_text())
    rows = {r['net']: r for r in report['nets']}
    assert set(rows) == {'notes', 'paper'}
    # multiply-adds against the architecture formulas (ResNet-110: 18 units a stage)
    assert rows['notes']['macs'] == notes_macs()
    assert rows['paper']['macs'] == cifar_basic_macs(18)
    for key in ('notes', 'paper'):
        assert 0 <= rows[key]['test_err'] <= 1 and rows[key]['test_images'] == 8
        assert rows[key]['img_per_sec'] > 0 and np.isfinite(rows[key]['train_loss'])
        assert rows[key]['train_window'] == 1                  # the last tenth of 2 iterations
    assert rows['notes']['params'] == notes.NOTES_PARAM_COUNT
    gluon = grv.get_model(notes_vs_paper.PAPER_MODEL)
    gluon.initialize()
    gluon(mx.nd.zeros((1, 3, 32, 32)))
    assert rows['paper']['params'] == sum(p.data().size for p in gluon.collect_params().values()
                                          if 'running' not in p.name)
    table = (tmp_path / 'notes.md').read_text()
    for r in rows.values():
        assert '| %s | ' % r['label'] in table and format(r['params'], ',') in table


def test_notes_schedule_is_the_papers_scaled_to_the_run():
    optim = notes_vs_paper.recipe(300, 128)
    assert (optim.warmup_iters, optim.lr_steps, optim.max_iters) == (30, (150, 225), 300)
    assert notes_vs_paper.recipe(1, 4).lr_steps == ()       # too short to decay
