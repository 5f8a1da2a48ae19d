"""The paper's figure presets (plotting --figure, figures.py), checked on the figure's data:
which runs are in which panel, their labels, line styles, colours, axes and scales."""
import pytest

from gluon_resnet_v2 import figures, plotting, rundir, runlog
from gluon_resnet_v2.config import Config, DataConfig, ModelConfig, RunConfig

from support import run_cli


def fake_run(root, name, seed=0, module=False, **model):
    """A finished run dir written by hand: its config and a log of 3 log points."""
    d = root / name
    cfg = Config(model=ModelConfig(**model), data=DataConfig(dataset='cifar10-sample'),
                 run=RunConfig(seed=seed, run_dir=str(d)))
    runlog.write_config(str(d), cfg.to_dict())
    if module:                  # legacy_symbol.train writes module.yaml beside the same files
        (d / 'module.yaml').write_text('net: paper\n')
    log = runlog.JsonlLog(str(d))
    for i in (1, 2, 3):
        log.write(iteration=400 * i, epoch=i / 2, train_loss=1.0 / i, lr=0.1)
        log.write(iteration=400 * i, epoch=i / 2, test_err=0.5 / i, test_loss=1.0)
    rundir.write_status(str(d), 'finished', 1200, 1200)
    return str(d)


def lines_of(fig):
    """{label: (linestyle, colour, xdata, ydata)} of every line in the figure."""
    return {line.get_label(): (line.get_linestyle(), line.get_color(), list(line.get_xdata()),
                               list(line.get_ydata()))
            for ax in fig.axes for line in ax.get_lines()}


def panel_titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


@pytest.fixture
def table1_runs(tmp_path):
    r110 = dict(model='cifar_resnet110_v1')
    return dict(
        identity=fake_run(tmp_path, 'identity', **r110),
        scale=fake_run(tmp_path, 'scale', shortcut='scale', scale=0.5, scale_residual=True,
                       **r110),
        gate=fake_run(tmp_path, 'gate', shortcut='gate_exclusive', gate_bias=-6.0, **r110),
        conv=fake_run(tmp_path, 'conv', shortcut='conv1x1', module=True, **r110),
        other=fake_run(tmp_path, 'r164', model='cifar_resnet164_v2'))


def test_fig3_puts_each_variant_beside_the_identity_shortcut(table1_runs):
    panels, unused = figures.panels(figures.FIGURES['fig3'], list(table1_runs.values()))
    assert unused == [table1_runs['other']]
    # no shortcut-only gating run: its panel (c) is left out
    assert [title for title, _ in panels] == ['(a) constant scaling', '(b) exclusive gating',
                                              '(d) 1x1 conv shortcut']
    assert [list(runs) for _, runs in panels] == [
        ['identity shortcut', 'constant scaling 0.5, F x 0.5'],
        ['identity shortcut', 'exclusive gating b_g=-6'],
        ['identity shortcut', '1x1 conv shortcut']]
    fig = plotting.figure(panels, plotting.Style(), figures.FIGURES['fig3'].title)
    assert fig._suptitle.get_text() == figures.FIGURES['fig3'].title
    assert panel_titles(fig) == ['(a) constant scaling', '(b) exclusive gating',
                                 '(d) 1x1 conv shortcut']
    lines = lines_of(fig)
    style, colour, x, y = lines['identity shortcut train loss']
    assert style == '--' and x == [400, 800, 1200] and y == pytest.approx([1, 1 / 2, 1 / 3])
    style, _, x, y = lines['exclusive gating b_g=-6 test error']
    assert style == '-' and y == pytest.approx([50, 25, 50 / 3])        # percent
    # one colour per run, the same in every panel
    identity = [line.get_color() for ax in fig.axes for line in ax.get_lines()
                if line.get_label().startswith('identity shortcut')]
    assert len(identity) == 6 and len(set(identity)) == 1
    others = {lines[k][1] for k in lines if not k.startswith('identity')}
    assert len(others) == 3 and colour not in others


def test_fig1_and_fig6_pick_their_networks_and_name_seeds(tmp_path):
    runs = [fake_run(tmp_path, 'o', model='cifar_resnet1001_v1'),
            fake_run(tmp_path, 'p0', model='cifar_resnet1001_v2'),
            fake_run(tmp_path, 'p1', seed=1, model='cifar_resnet1001_v2')]
    panels, unused = figures.panels(figures.FIGURES['fig1'], runs)
    assert unused == [] and list(panels[0][1]) == [
        'original', 'pre-activation (proposed) seed 0', 'pre-activation (proposed) seed 1']
    six = [fake_run(tmp_path, 'a', model='cifar_resnet110_v1'),
           fake_run(tmp_path, 'b', model='cifar_resnet110_v2', placement='bn_after_add'),
           fake_run(tmp_path, 'c', depth=164, version='v1'),
           fake_run(tmp_path, 'd', depth=164, version='v2'),
           fake_run(tmp_path, 'e', depth=164, placement='relu_before_add')]
    panels, unused = figures.panels(figures.FIGURES['fig6'], six)
    assert [(t, list(r.values())) for t, r in panels] == [
        ('ResNet-110: BN after addition', six[:2]),
        ('ResNet-164: full pre-activation', six[2:4])]
    assert unused == six[4:]
    with pytest.raises(ValueError, match='none of the runs'):
        figures.panels(figures.FIGURES['fig1'], six)


def test_epochs_log_loss_and_limits(table1_runs):
    runs = {'a': table1_runs['identity'], 'b': table1_runs['scale']}
    style = plotting.Style(x='epochs', log_loss=True, loss_ylim=(0.1, 2), err_ylim=(0, 20))
    fig = plotting.figure([('t', runs)], style)
    loss_ax, err_ax = fig.axes
    assert loss_ax.get_yscale() == 'log' and err_ax.get_yscale() == 'linear'
    assert loss_ax.get_ylim() == pytest.approx((0.1, 2)) and err_ax.get_ylim() == (0, 20)
    assert loss_ax.get_xlabel() == 'epoch'
    assert lines_of(fig)['a train loss'][2] == [0.5, 1.0, 1.5]
    assert fig.axes[0].get_title() == 't'


def test_a_blown_up_loss_does_not_take_the_loss_axis(table1_runs, tmp_path):
    """A run whose loss reached 1e9 (a dropout shortcut in bfloat16 did, without a NaN)
    would flatten every other curve at the axis's foot: the axis stops at 3x the runs'
    median first loss, and that run's label says how high it went."""
    blown = tmp_path / 'blown'
    log = runlog.JsonlLog(str(fake_run(tmp_path, 'blown', model='cifar_resnet110_v1')))
    log.write(iteration=1600, epoch=2.0, train_loss=2.5e9, lr=0.1)
    runs = {'a': table1_runs['identity'], 'b': table1_runs['scale'], 'blown': str(blown)}
    for log_loss in (False, True):
        fig = plotting.figure([('t', runs)], plotting.Style(log_loss=log_loss))
        loss_ax = fig.axes[0]
        low, high = loss_ax.get_ylim()
        assert high == pytest.approx(3.0)                       # 3 x median(1, 1, 1)
        assert 0 <= low < 1 / 3 and low > (0.25 if log_loss else -1)   # the foot: ~1/3
        labels = list(lines_of(fig))
        assert 'blown train loss (up to 2.5e+09, above the axis)' in labels
        assert 'a train loss' in labels
    fig = plotting.figure([('t', {'a': runs['a'], 'b': runs['b']})], plotting.Style())
    assert fig.axes[0].get_ylim()[1] < 3                       # nothing blew up: untouched
    fig = plotting.figure([('t', runs)], plotting.Style(loss_ylim=(0, 1e10)))
    assert fig.axes[0].get_ylim() == pytest.approx((0, 1e10))  # the user's limits win
    assert 'blown train loss' in lines_of(fig)


def test_the_legend_hides_no_point_of_the_panel(tmp_path):
    """A short run's only test error is drawn at the panel's right edge, high when the run
    did badly: where the legend sat inside the panel (upper right) it covered exactly
    those points. Every drawn point must lie outside every legend, with 1 to 6 runs."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    for n in (1, 3, 6):
        runs = {}
        for k in range(n):
            d = tmp_path / ('n%d-%d' % (n, k))
            cfg = Config(data=DataConfig(dataset='cifar10-sample'), run=RunConfig(run_dir=str(d)))
            runlog.write_config(str(d), cfg.to_dict())
            log = runlog.JsonlLog(str(d))
            for i in range(1, 26):
                log.write(iteration=10 * i, epoch=i / 25, train_loss=2.3 - 0.02 * i, lr=0.1)
            log.write(iteration=250, epoch=1.0, test_err=0.9 - 0.01 * k, test_loss=2.0)
            runs['run %d' % k] = str(d)
        fig = plotting.figure([('t', runs)], plotting.Style())
        FigureCanvasAgg(fig).draw()
        boxes = [ax.get_legend().get_window_extent() for ax in fig.axes if ax.get_legend()]
        assert boxes
        for ax in fig.axes:
            for line in ax.get_lines():
                for x, y in ax.transData.transform(line.get_xydata()):
                    assert not any(b.contains(x, y) for b in boxes), (n, line.get_label())


def test_cli_figure_writes_svg_and_names_what_it_left_out(table1_runs, tmp_path, capsys):
    out = tmp_path / 'fig3.svg'
    code, stdout, err = run_cli(['--figure', 'fig3', *table1_runs.values(), '-o', out,
                                 '--x', 'epochs', '--err-ylim', '0,60'], capsys, plotting.main)
    assert code == 0, err
    assert out.read_text().lstrip().startswith('<?xml') and '<svg' in out.read_text()[:2000]
    assert 'note: %s is not a run fig3 shows' % table1_runs['other'] in err
    # the one-panel plot of before still works, as PNG
    code, stdout, err = run_cli([table1_runs['identity'], '-o', tmp_path / 'c.png'], capsys,
                                plotting.main)
    assert code == 0 and (tmp_path / 'c.png').read_bytes()[:4] == b'\x89PNG'


@pytest.mark.parametrize('args, words', [
    (['--figure', 'fig3', '{log}'], 'no readable config.yaml'),
    (['--figure', 'fig1', '{run}'], 'none of the runs is a variant'),
    (['--figure', 'fig3', '--title', 't', '{run}'], '--title and --figure'),
    (['--err-ylim', '5,1', '{run}'], 'LO must be below HI'),
    (['--loss-ylim', 'a', '{run}'], 'expected two numbers'),
    (['--figure', 'fig9', '{run}'], "Invalid value for '--figure'"),
    (['-o', '{tmp}/c.txt', '{run}'], 'name a .png, .svg or .pdf file'),
])
def test_bad_figure_input_is_one_line(args, words, table1_runs, tmp_path, capsys):
    log = tmp_path / 'log.jsonl'
    log.write_text(open(table1_runs['identity'] + '/log.jsonl').read())
    args = [a.replace('{log}', str(log)).replace('{run}', table1_runs['identity'])
            .replace('{tmp}', str(tmp_path)) for a in args]
    if '-o' not in args:
        args += ['-o', str(tmp_path / 'x.png')]
    code, out, err = run_cli(args, capsys, plotting.main)
    assert code == 2 and err.count('\n') == 1 and words in err, err
    assert not (tmp_path / 'x.png').exists() and not (tmp_path / 'c.txt').exists()
