"""A table's results next to the paper's: per row the median (mean ± std) of the final
test error over the finished seeds, the paper's number, the difference or the ranks, as
Markdown; and the overlay of the rows' curves.

The error of a run is its final test error (the last evaluation, at the last iteration),
as the paper reports it, read by runs.py from the run directory. The seeds that ended count:
a finished one by its error, a diverged one as worse than any error (the paper's median of
5 runs would be a "fail" if 3 of them failed), so the median of [60, 70, diverged] is 70 and
of [60, diverged, diverged] "diverged"; interrupted or unstarted seeds do not count. The
mean and the sample standard deviation (n - 1) are of the finished seeds, given only where
none diverged (they have no value otherwise). A run dir
trained with other settings than its row and scale name is refused, not counted
(runner.plan's check).
"""
import os
import statistics

from .. import runs
from .definitions import FAIL, build, row_settings
from .runner import plan, run_dir, table_dir


DIVERGED = float('inf')      # a diverged seed's error: worse than any


def row_result(row, errors, diverged, planned, dtypes=()):
    """The numbers of one row: errors in % of its finished seeds {seed: error}; diverged:
    its diverged seeds; dtypes: the precisions the finished ones trained in."""
    values = list(errors.values())
    ended = values + [DIVERGED] * len(diverged)
    return dict(row=row, errors=errors, done=len(values), diverged=sorted(diverged),
                planned=planned, dtypes=set(dtypes),
                median=statistics.median(ended) if ended else None,
                mean=statistics.mean(values) if values and not diverged else None,
                std=statistics.stdev(values) if len(values) > 1 and not diverged else None)


def collect(table, scale, root, seeds):
    """[row_result] of every row, read from its run dirs (seeds 0..seeds-1)."""
    out, jobs = [], plan(table, scale, root, table.rows, seeds, {})   # refuses other runs
    for row in table.rows:
        errors, diverged, dtypes = {}, [], []
        for job in (j for j in jobs if j.row is row):
            info = runs.summarise(job.run_dir, row.name)
            if info['state'] == 'finished' and info['final_test_err'] is not None:
                errors[job.seed] = 100 * info['final_test_err']
                dtypes.append(info['dtype'])
            if info['state'] == 'diverged':
                diverged.append(job.seed)
        out.append(row_result(row, errors, diverged, seeds, dtypes))
    return out


def fails(value, scale):
    return scale.fail_above is not None and value > scale.fail_above


def ours(r, scale):
    """'6.52 (6.60 ± 0.12)', with 'fail: ' where the median is above the scale's limit;
    'diverged (finished: 55.00)' where the median seed diverged."""
    if r['median'] is None:
        return 'not run'
    if r['median'] == DIVERGED:
        return 'diverged' + (' (finished: %s)' % ', '.join(
            '%.2f' % e for e in sorted(r['errors'].values())) if r['errors'] else '')
    text = '%.2f' % r['median']
    if r['std'] is not None:
        text += ' (%.2f ± %.2f)' % (r['mean'], r['std'])
    return ('fail: ' if fails(r['median'], scale) else '') + text


def paper_text(paper):
    return 'fail (> 20)' if paper == FAIL else '' if paper is None else '%.2f' % paper


def difference(r, scale):
    """Ours minus the paper's, in points; in words where either is a "fail"."""
    paper, median = r['row'].paper, r['median']
    if not scale.compare or median is None or paper is None:
        return ''
    if paper == FAIL:
        return 'both fail' if fails(median, scale) else 'paper fails, ours does not'
    if fails(median, scale):
        return 'ours fails'
    return '%+.2f' % (median - paper)


def ranks(values, groups=None):
    """1-based competition ranks of comparable values (None: no rank) within each group
    (groups: one label per value; default all one group); equal values share the lower
    rank."""
    groups = groups or [''] * len(values)
    known = [(v, g) for v, g in zip(values, groups) if v is not None]
    return [None if v is None else 1 + sum(k < v for k, h in known if h == g)
            for v, g in zip(values, groups)]


def paper_key(paper):
    """A paper value for ranking: a "fail" is worse than any number."""
    return None if paper is None else float('inf') if paper == FAIL else paper


def markdown(table, scale, results, seeds):
    """The summary as Markdown: a heading, what was measured, one line per row."""
    # a row whose median seed diverged ranks below every row with a number (tied), as the
    # paper ranks its "fail"s; the paper's ranks are among the same rows, both within the
    # rows' groups (the rows the paper compares, e.g. one network's)
    keys = [r['median'] for r in results]
    groups = [r['row'].group for r in results]
    ours_rank = ranks(keys, groups)
    paper_rank = ranks([paper_key(r['row'].paper) if k is not None else None
                        for r, k in zip(results, keys)], groups)
    grouped = any(groups)
    lines = ['# ' + heading(table, scale), '',
             'Scale: %s.' % scale.description, '',
             'Schedule of the runs: %s.' % '; '.join(schedules(table, scale)), '',
             'Precision of the finished runs: %s.' % precisions(results), '',
             'Ours: final test error %% (median, and mean ± sample std where more than one '
             'seed), over the seeds that ended of %d planned, a diverged seed counting as worse '
             'than any error (mean and std only where none diverged); paper: %s.'
             % (seeds, table.metric), '']
    if not scale.compare:
        lines += ['At this scale the errors are not comparable to the paper\'s: no difference '
                  'is given, and "fail" (> 20 %) is not applied; compare the ranks.', '']
    if grouped:
        lines += ['Ranks are within a group: the rows the paper compares with one another.',
                  '']
    lines += ['| row |%s seeds done | ours %% | paper %% | difference | rank ours / paper%s | '
              'note |' % (' group |' if grouped else '', ' in group' if grouped else ''),
              '|---|%s---:|---:|---:|---:|---:|---|' % ('---|' if grouped else '')]
    for r, a, b in zip(results, ours_rank, paper_rank):
        done = '%d/%d' % (r['done'], r['planned']) + (
            ', %d diverged' % len(r['diverged']) if r['diverged'] else '')
        rank = '' if a is None else '%d / %s' % (a, '' if b is None else b)
        lines.append('| %s |%s %s | %s | %s | %s | %s | %s |' % (
            r['row'].name, ' %s |' % r['row'].group if grouped else '', done, ours(r, scale),
            paper_text(r['row'].paper), difference(r, scale), rank, r['row'].note))
    return '\n'.join(lines) + '\n'


def heading(table, scale):
    """What the summary and its figure are of: 'Table 1: ..., quick scale'."""
    return '%s, %s scale' % (table.title, scale.name)


def precisions(results):
    """The dtypes the finished runs trained in, in words (a table may mix them)."""
    dtypes = sorted(set().union(*(r['dtypes'] for r in results)) - {None})
    return ', '.join(dtypes) if dtypes else 'none finished'


def schedules(table, scale):
    """The distinct lengths and batches of the rows' runs at a scale, in words."""
    out = []
    for row in table.rows:
        o = build(row_settings(row, scale), 'x', 0).optim
        text = '%s at batch %d, lr steps %s' % (
            '%d epochs' % o.epochs if o.epochs else '%d iterations' % o.max_iters,
            o.batch_size, ', '.join(map(str, o.lr_steps)) or 'none')
        out += [text] if text not in out else []
    return out


def representative_runs(table, scale, root, results):
    """{label: run dir}: per row that ended, the seed whose error is the median's (the
    lower middle one for an even count; a diverged seed where the median is "diverged")."""
    out = {}
    for r in results:
        ended = sorted([(e, s) for s, e in r['errors'].items()]
                       + [(DIVERGED, s) for s in r['diverged']])
        if ended:
            middle = (len(ended) - 1) // 2
            # an even count whose upper middle diverged has the median "diverged"
            middle += r['median'] == DIVERGED and ended[middle][0] != DIVERGED
            error, seed = ended[middle]
            label = '%s (seed %d%s)' % (r['row'].name, seed,
                                        ', diverged' if error == DIVERGED else '')
            out[label] = run_dir(root, table, scale, r['row'], seed)
    return out


def curve_panels(table, scale, root, results):
    """[(panel title, {label: run dir})] of the overlay: the rows' median seeds, one panel
    per group of rows (the table's title where it has no groups)."""
    panels = [(g or heading(table, scale), representative_runs(table, scale, root,
                                               [r for r in results if r['row'].group == g]))
              for g in dict.fromkeys(r['row'].group for r in results)]
    return [(name, runs) for name, runs in panels if runs]


def default_paths(table, scale, root):
    base = table_dir(root, table, scale)
    return os.path.join(base, 'summary.md'), os.path.join(base, 'curves.png')
