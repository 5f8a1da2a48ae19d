"""`python -m gluon_resnet_v2.experiment list|run|status|summarize NAME`: the paper's tables
as experiments (see the package docstring)."""
import os

import click

from ..cli import check_output_dir, check_output_file, config_field, main_wrapper
from ..errors import UserError
from . import definitions, runner, summary

ROOT = os.path.join('runs', 'experiments')

name_arg = click.argument('name', metavar='NAME')
root_opt = click.option('--root', default=ROOT, show_default=True,
                        help='folder of the experiments\' run dirs: '
                             '<root>/<table>-<scale>/<row>/seed<k>')
scale_opt = click.option('--scale', default='paper', show_default=True,
                         help='a scale of scales.yaml: paper, quick or short (see `list`)')
seeds_opt = click.option('--seeds', type=click.IntRange(1), default=None,
                         help='seeds 0..N-1 [default: the table\'s, the paper\'s 5 on CIFAR]')
rows_opt = click.option('--rows', default=None, metavar='ROW,ROW,...',
                        help='only these rows (names as `list` shows them)')


def load(name, scale_name):
    table = definitions.load_table(name)
    scale = runner.check_scale(table, definitions.load_scales(), scale_name)
    return table, scale


@click.group(context_settings={'max_content_width': 110})
def cli():
    """The paper's tables as experiments: NAME is table1, table2, table3, table5 or the path
    of a definition file of the same form (gluon_resnet_v2/experiment/*.yaml)."""


@cli.command('list')
@click.argument('name', required=False, metavar='[NAME]')
def list_command(name):
    """The tables, or one table's rows (train options, the paper's number) and scales."""
    if not name:
        for table in map(definitions.load_table, definitions.table_names()):
            click.echo('%-8s %2d rows  %s' % (table.name, len(table.rows), table.title))
        return
    table, scales = definitions.load_table(name), definitions.load_scales()
    click.echo('%s (%s; %d seeds)' % (table.title, table.metric, table.seeds))
    for row in table.rows:
        click.echo('  %-26s paper %-7s %s%s%s' % (
            row.name, summary.paper_text(row.paper).split(' ')[0],
            ' '.join(definitions.train_argv(row.train)),
            '  [group: %s]' % row.group if row.group else '',
            '  # ' + row.note if row.note else ''))
    for s in table.scales:
        click.echo('scale %s: %s' % (s, scales[s].description))
        if scales[s].train:
            click.echo('  train options: %s' % ' '.join(definitions.train_argv(scales[s].train)))


@cli.command('run')
@name_arg
@scale_opt
@seeds_opt
@rows_opt
@root_opt
@config_field('gpus')
@config_field('cpus')
@config_field('kvstore')
@config_field('dtype')
@config_field('data_dir')
@config_field('download')
@config_field('num_workers')
@click.option('--jobs', type=click.IntRange(1), default=1, show_default=True,
              help='runs trained at once, on CPUs: each gets cores/N OpenMP threads (unless '
                   'OMP_NUM_THREADS is set) and prepares its batches in its own process '
                   '(--num-workers 0 unless given); each run\'s output goes to <run dir>.out')
def run_command(name, scale, seeds, rows, root, jobs, **passed):
    """Train every missing (row, seed), each in its own run dir by the train command;
    finished and diverged runs are kept, interrupted ones resumed."""
    table, scale = load(name, scale)
    extra = {k: v for k, v in passed.items() if v is not None}
    if jobs > 1 and extra.get('gpus'):
        raise UserError('--jobs %d with --gpus: the runs would share the GPUs: use --jobs 1 '
                        '(one run at a time on all the GPUs given)' % jobs)
    if jobs > 1:
        extra.setdefault('num_workers', 0)
    check_output_dir(root, '--root')
    planned = runner.plan(table, scale, root, runner.select_rows(table, rows),
                          seeds or table.seeds, extra)
    outcome = runner.run_jobs(planned, parallel=jobs, user_env=click.get_current_context().obj)
    counts = {}
    for word in outcome.values():
        counts[word] = counts.get(word, 0) + 1
    click.echo('%s at %s scale: %s; %s' % (table.name, scale.name, ', '.join(
        '%d %s' % (n, w) for w, n in sorted(counts.items())), runner.table_dir(root, table, scale)))
    if any(w.startswith('failed') for w in outcome.values()):
        raise SystemExit(1)


@cli.command('status')
@name_arg
@scale_opt
@seeds_opt
@rows_opt
@root_opt
def status_command(name, scale, seeds, rows, root):
    """Per row and seed: done, running, interrupted, diverged, failed or not started, and
    the iteration reached."""
    table, scale = load(name, scale)
    jobs = runner.plan(table, scale, root, runner.select_rows(table, rows),
                       seeds or table.seeds, {})
    click.echo('%-26s %-5s %-12s %-15s %s' % ('row', 'seed', 'state', 'iteration', 'test err'))
    for job in jobs:
        state, it, total, err = runner.job_state(job)
        click.echo('%-26s %-5d %-12s %-15s %s' % (
            job.row.name, job.seed, runner.WORDS[state],
            '' if it is None else '%s/%s' % (it, '?' if total is None else total),
            '' if err is None else '%.2f %%' % (100 * err)))


@cli.command('summarize')
@name_arg
@scale_opt
@seeds_opt
@root_opt
@click.option('--out', default=None, help='Markdown file [default: <root>/<table>-<scale>/'
              'summary.md]')
@click.option('--plot', default=None, help='overlay of the rows\' curves, PNG or SVG '
              '[default: <root>/<table>-<scale>/curves.png]')
def summarize_command(name, scale, seeds, root, out, plot):
    """Markdown table of the rows against the paper (printed and written to --out) and the
    overlay of the rows' curves (one run per row: the median seed)."""
    table, scale = load(name, scale)
    md_path, png_path = summary.default_paths(table, scale, root)
    out, plot = out or md_path, plot or png_path
    if not os.path.isdir(runner.table_dir(root, table, scale)):
        raise UserError('no runs of %s at %s scale under %s: train them first (python -m '
                        'gluon_resnet_v2.experiment run %s --scale %s --root %s)'
                        % (table.name, scale.name, root, name, scale.name, root))
    check_output_file(out, '--out')
    check_output_file(plot, '--plot')
    seeds = seeds or table.seeds
    results = summary.collect(table, scale, root, seeds)
    text = summary.markdown(table, scale, results, seeds)
    with open(out + '.tmp', 'w') as f:
        f.write(text)
    os.replace(out + '.tmp', out)
    click.echo(text)
    click.echo('written: %s' % out)
    panels = summary.curve_panels(table, scale, root, results)
    if panels:
        # the loss on a log scale: a row's first logged loss can be 10x its last
        from ..plotting import Style, figure, save
        click.echo('written: %s' % save(figure(panels, Style(log_loss=True),
                                               summary.heading(table, scale)), plot))
    else:
        click.echo('no finished run to draw: %s not written' % plot)


def run():
    """The console entry point (grv-experiment)."""
    # the runs get the user's environment, not main_wrapper's set-up of this process
    cli.context_settings['obj'] = dict(os.environ)
    main_wrapper(cli)()


if __name__ == '__main__':
    run()
