"""Training curves in the paper's style (Figs. 1, 3, 6): training loss dashed on the left
axis, test error solid on the right (validation error dotted, with --val-size), one
colour per run. Drawn from `log.jsonl` files
after the fact, so plotting never slows training and any runs can be overlaid.

    python -m gluon_resnet_v2.plotting runs/a runs/b -o curves.png
"""
import os

import click

from .runlog import read_log


def series(records, key):
    pts = [(r['iteration'], r[key]) for r in records if r.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_runs(runs, out_path, title=None):
    """Overlay runs ({label: run dir or log.jsonl path}) into one PNG; returns out_path.

    Drawn on a bare matplotlib Figure: no pyplot, so no global backend to choose and
    nothing left open."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(8, 5))
    loss_ax = fig.subplots()
    err_ax = loss_ax.twinx()
    drawn = 0
    for i, (label, path) in enumerate(runs.items()):
        records = read_log(path)
        colour = 'C%d' % i
        x, loss = series(records, 'train_loss')
        loss_ax.plot(x, loss, '--', color=colour, linewidth=1, label='%s train loss' % label)
        x, err = series(records, 'test_err')
        err_ax.plot(x, [100 * e for e in err], '-', color=colour, linewidth=2, marker='.',
                    label='%s test error' % label)
        vx, val = series(records, 'val_err')           # with --val-size: dotted
        if val:
            err_ax.plot(vx, [100 * e for e in val], ':', color=colour, linewidth=2,
                        marker='.', label='%s validation error' % label)
        drawn += bool(loss or err)
    if not drawn:
        raise ValueError('no log records to plot in %s' % ', '.join(map(str, runs.values())))
    loss_ax.set_xlabel('iteration')
    loss_ax.set_ylabel('training loss (dashed)')
    err_ax.set_ylabel('test error % (solid), validation (dotted)')
    handles = loss_ax.get_legend_handles_labels()
    more = err_ax.get_legend_handles_labels()
    err_ax.legend(handles[0] + more[0], handles[1] + more[1], loc='upper right', fontsize=8)
    loss_ax.set_title(title or 'training loss and test error')
    loss_ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = out_path + '.tmp.png'
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, out_path)
    return out_path


@click.command()
@click.argument('runs', nargs=-1, required=True, type=click.Path(exists=True))
@click.option('-o', '--out', default='curves.png', show_default=True,
              help='PNG file to write (its folder must exist)')
@click.option('--title', default=None, help='figure title')
def main(runs, out, title):
    """Overlay the curves of one or more run directories (or log.jsonl files)."""
    from .cli import check_output_file
    from .errors import UserError
    check_output_file(out, '--out')
    labels = {}
    for r in runs:
        name = os.path.basename(os.path.normpath(r if os.path.isdir(r) else os.path.dirname(r)))
        labels[name if name not in labels else r] = r
    if not any(_plottable(path) for path in runs):
        raise UserError('no training loss or test error to plot in %s: pass run directories '
                        '(or log.jsonl files) of runs that have logged' % ', '.join(runs))
    click.echo(plot_runs(labels, out, title))


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
