"""Training curves in the paper's style (Figs. 1, 3, 6): training loss dashed on the left
axis, test error solid on the right (validation error dotted, with --val-size), one
colour per run. Drawn from `log.jsonl` files after the fact, so plotting never slows
training and any runs can be overlaid, Gluon and Module runs alike (both write the log).

    python -m gluon_resnet_v2.plotting runs/a runs/b -o curves.png
    python -m gluon_resnet_v2.plotting --figure fig3 runs/experiments/table1-paper/*/seed0 \\
        -o fig3.svg --x epochs --log-loss --err-ylim 0,20

--figure picks a preset of figures.py (the paper's panels, titles and legend names).
"""
import os
from collections import namedtuple

import click

from .figures import FIGURES
from .runlog import read_log

# How curves are drawn: x 'iterations' or 'epochs'; the training loss on a log scale;
# (low, high) limits of the loss and of the error axis (%), None: automatic.
Style = namedtuple('Style', 'x log_loss loss_ylim err_ylim', defaults=('iterations', False,
                                                                     None, None))
X_KEYS = {'iterations': 'iteration', 'epochs': 'epoch'}     # --x: the log record's key
FORMATS = ('png', 'svg', 'pdf')


def series(records, key, x='iteration'):
    pts = [(r[x], r[key]) for r in records if r.get(key) is not None and r.get(x) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def colour(i, n):
    """Colour i of n runs: matplotlib's ten default colours, tab20's twenty for more."""
    if n <= 10:
        return 'C%d' % i
    from matplotlib import colormaps
    return colormaps['tab20'](i % 20)


def loss_axis_top(losses):
    """The loss axis's upper end when a run's loss blew up (bfloat16 keeps float32's range,
    so a diverging run can log 1e9 rather than NaN): 3x the median of the runs' first
    losses, so the others' curves keep the axis; None when every loss is below it."""
    firsts = sorted(loss[0] for loss in losses if loss)
    if not firsts:
        return None
    top = 3 * firsts[len(firsts) // 2]
    return top if max(max(loss) for loss in losses if loss) > top else None


def draw_panel(loss_ax, runs, colours, style, title):
    """Overlay runs ({label: run dir or log.jsonl}) on one panel: loss_ax and a twin error
    axis; colours: {path: colour}. Returns the number of runs with something drawn."""
    err_ax = loss_ax.twinx()
    x, drawn = X_KEYS[style.x], 0
    records = {label: read_log(path) for label, path in runs.items()}
    loss_series = {label: series(r, 'train_loss', x) for label, r in records.items()}
    losses = [loss for _, loss in loss_series.values()]
    top = style.loss_ylim[1] if style.loss_ylim else loss_axis_top(losses)
    for label, path in runs.items():
        c = colours[path]
        xs, loss = loss_series[label]
        off = top is not None and loss and max(loss) > top
        loss_ax.plot(xs, loss, '--', color=c, linewidth=1, label='%s train loss%s' % (
            label, ' (up to %.3g, above the axis)' % max(loss) if off else ''))
        xs, err = series(records[label], 'test_err', x)
        err_ax.plot(xs, [100 * e for e in err], '-', color=c, linewidth=2, marker='.',
                    label='%s test error' % label)
        vx, val = series(records[label], 'val_err', x)    # with --val-size: dotted
        if val:
            err_ax.plot(vx, [100 * e for e in val], ':', color=c, linewidth=2, marker='.',
                        label='%s validation error' % label)
        drawn += bool(loss or err)
    loss_ax.set_xlabel(X_KEYS[style.x])
    loss_ax.set_ylabel('training loss (dashed)')
    err_ax.set_ylabel('test error % (solid), validation (dotted)')
    if style.log_loss:
        from matplotlib.ticker import ScalarFormatter
        loss_ax.set_yscale('log')
        for axis in (loss_ax.yaxis.set_major_formatter, loss_ax.yaxis.set_minor_formatter):
            axis(ScalarFormatter())         # 2, 3 rather than 2x10^0
    if style.loss_ylim:
        loss_ax.set_ylim(*style.loss_ylim)
    elif top is not None:           # the foot too: autoscaling saw the blown-up values
        low = min(min(loss) for loss in losses if loss)
        loss_ax.set_ylim(low / 1.1 if style.log_loss else max(0, low - 0.05 * (top - low)),
                         top)
    if style.err_ylim:
        err_ax.set_ylim(*style.err_ylim)
    handles = loss_ax.get_legend_handles_labels()
    more = err_ax.get_legend_handles_labels()
    # below the panel: inside it, the legend hid the final test errors (drawn at the right
    # edge, where a short run's only evaluation is) and the curves under it
    err_ax.legend(handles[0] + more[0], handles[1] + more[1], loc='upper center',
                  fontsize=8, bbox_to_anchor=(0.5, -0.14), ncol=2)
    loss_ax.set_title(title)
    loss_ax.grid(alpha=0.3)
    return drawn


def figure(panels, style=Style(), title=None):
    """A matplotlib Figure of panels [(panel title, {label: path})], side by side (two
    columns from three panels on); a run keeps its colour in every panel. Drawn on a bare
    Figure: no pyplot, so no global backend to choose and nothing left open."""
    from matplotlib.figure import Figure
    n = len(panels)
    cols = 1 if n == 1 else 2
    rows = (n + cols - 1) // cols
    most = max(len(runs) for _, runs in panels)     # the legend below a panel needs room
    height = 5.5 + 0.2 * most
    fig = Figure(figsize=(8 if cols == 1 else 14, height * rows))
    paths = list(dict.fromkeys(p for _, runs in panels for p in runs.values()))
    colours = {p: colour(i, len(paths)) for i, p in enumerate(paths)}
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    drawn = sum(draw_panel(ax, runs, colours, style, name)
                for ax, (name, runs) in zip(axes, panels))
    for ax in axes[n:]:
        fig.delaxes(ax)
    if not drawn:
        raise ValueError('no log records to plot in %s' % ', '.join(map(str, paths)))
    if title and n > 1:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def save(fig, out_path):
    """Write the figure atomically, in the format of out_path's extension."""
    fmt = os.path.splitext(out_path)[1][1:].lower() or 'png'
    tmp = '%s.tmp.%s' % (out_path, fmt)
    fig.savefig(tmp, dpi=100, format=fmt)
    os.replace(tmp, out_path)
    return out_path


def plot_runs(runs, out_path, title=None, style=Style()):
    """Overlay runs ({label: run dir or log.jsonl path}) into one figure; returns out_path."""
    return save(figure([(title or 'training loss and test error', runs)], style), out_path)


def plot_figure(name, run_dirs, out_path, style=Style()):
    """The paper's figure `name` (figures.FIGURES) of run dirs; (out_path, the run dirs
    the figure has no place for). ValueError when it has no place for any."""
    from .figures import FIGURES, panels
    preset = FIGURES[name]
    chosen, unused = panels(preset, run_dirs)
    fig = figure(chosen, style, preset.title)
    if len(chosen) == 1:                    # one panel: the figure's title is its own
        fig.axes[0].set_title(preset.title)
    return save(fig, out_path), unused


def limits(ctx, param, value):
    """click callback: 'LO,HI' -> (LO, HI), LO < HI."""
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value.split(','))
    except ValueError:
        raise click.BadParameter('expected two numbers LO,HI, e.g. 0,20; got %r' % value)
    if not lo < hi:
        raise click.BadParameter('LO must be below HI; got %r' % value)
    return lo, hi


@click.command()
@click.argument('runs', nargs=-1, required=True, type=click.Path(exists=True))
@click.option('-o', '--out', default='curves.png', show_default=True,
              help='file to write, .png, .svg or .pdf (its folder must exist)')
@click.option('--title', default=None, help='figure title (not with --figure)')
@click.option('--figure', 'preset', type=click.Choice(sorted(FIGURES)), default=None,
              help="the paper's figure: fig1 (ResNet-1001 original vs pre-activation), fig3 "
                   "(the shortcut variants), fig6 (BN after addition, pre-activation); runs are "
                   'placed by their config.yaml')
@click.option('--x', 'x', type=click.Choice(list(X_KEYS)), default='iterations',
              show_default=True, help='x axis')
@click.option('--log-loss', is_flag=True, help='training loss on a log scale')
@click.option('--loss-ylim', callback=limits, metavar='LO,HI', help='training loss axis limits')
@click.option('--err-ylim', callback=limits, metavar='LO,HI', help='error axis limits (%)')
def main(runs, out, title, preset, x, log_loss, loss_ylim, err_ylim):
    """Overlay the curves of one or more run directories (or log.jsonl files)."""
    from .cli import check_output_file
    from .errors import UserError
    check_output_file(out, '--out')
    if os.path.splitext(out)[1][1:].lower() not in FORMATS:
        raise UserError('--out %s: name a .png, .svg or .pdf file' % out)
    if preset and title:
        raise UserError('--title and --figure both set the title: drop --title (the figure '
                        'has its own)')
    if not any(_plottable(path) for path in runs):
        raise UserError('no training loss or test error to plot in %s: pass run directories '
                        '(or log.jsonl files) of runs that have logged' % ', '.join(runs))
    style = Style(x, log_loss, loss_ylim, err_ylim)
    if preset:
        try:
            path, unused = plot_figure(preset, list(runs), out, style)
        except ValueError as e:
            raise UserError('--figure %s: %s' % (preset, e))
        for r in unused:
            click.echo('note: %s is not a run %s shows: left out' % (r, preset), err=True)
        click.echo(path)
        return
    labels = {}
    for r in runs:
        name = os.path.basename(os.path.normpath(r if os.path.isdir(r) else os.path.dirname(r)))
        labels[name if name not in labels else r] = r
    click.echo(plot_runs(labels, out, title, style))


def _plottable(path):
    """Whether a run dir or log.jsonl holds a record to draw (damaged lines are skipped
    quietly here: plot_runs warns about them); UserError if it cannot be read."""
    from .errors import UserError
    try:
        records = read_log(path, warn=None)
    except OSError as e:
        raise UserError('cannot read the log of %s (%s): pass a run directory or its '
                        'log.jsonl' % (path, e.strerror or type(e).__name__))
    return any(r.get(k) is not None for r in records for k in ('train_loss', 'test_err'))


def run():
    """The console command (pyproject's [project.scripts]): as `python -m` runs it."""
    from .cli import main_wrapper
    main_wrapper(main)()


if __name__ == '__main__':
    run()
