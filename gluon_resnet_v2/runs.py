"""The runs under a folder as one table: what each one trains, how far it got, its test
errors, its speed and its state. The first thing to look at after a sweep.

    python -m gluon_resnet_v2.runs                      # every run under runs/
    python -m gluon_resnet_v2.runs runs/sweep --sort best
    python -m gluon_resnet_v2.runs runs/a runs/b --json > runs.json

A run directory is a folder holding config.yaml, log.jsonl or status.json; each DIR is
searched recursively (a sweep may nest). Columns: the run's path relative to DIR; the
model (registry name, or depth and version, then the variant options that differ from
the defaults, then the dataset); iteration / total (total: optim.max_iters, or epochs x
steps per epoch when optim.epochs is set); the final and the best test error, each with
its iteration; img/s (median of the logged values); the state.

The state is the run's status.json (rundir.state: running, finished, interrupted,
diverged, failed; "running" without a live owner is "interrupted"). Runs written before
status.json existed get an inferred state: running if a live process holds run.lock,
finished if the log reached the total, else interrupted.

Reading is forgiving, since a table of a hundred runs must not stop at one bad file: a
log line that is not a JSON object is skipped and counted, a missing or unreadable
config.yaml leaves '?' in the fields that need it. Importing this module loads no MXNet.
"""
import functools
import json
import os
import statistics

import click
import yaml

from . import rundir
from .config import field_default, sections
from .data import DATASETS
from .errors import UserError
from .models.tables import FAMILIES, VERSIONS

RUN_FILES = ('config.yaml', 'log.jsonl', rundir.STATUS)
SORTS = ('run', 'best', 'final')
# model fields the name itself shows (or that the dataset implies): not listed as variants
NAMED = ('depth', 'model', 'version', 'classes')


# ---- finding and reading runs

def find_runs(root):
    """Run directories under `root` (itself included), in path order; hidden folders and
    unreadable ones are skipped."""
    found = []
    for path, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
        if any(name in files for name in RUN_FILES):
            found.append(path)
    return found


def read_yaml(path):
    """(mapping, None) or (None, what is wrong with the file)."""
    name = os.path.basename(path)
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        return None, 'no %s' % name
    except OSError as e:
        return None, '%s unreadable (%s)' % (name, e.strerror)
    except (yaml.YAMLError, ValueError):
        return None, '%s is not valid YAML' % name
    if not isinstance(data, dict):
        return None, '%s holds no mapping' % name
    return data, None


def read_records(run_dir):
    """(records, number of damaged lines, problem or None) of the run's log.jsonl, read
    line by line: a line that is not a JSON object with an integer iteration is skipped
    and counted (a kill mid-write, a hand edit), and the lines after it still count."""
    records, damaged = [], 0
    try:
        with open(os.path.join(run_dir, 'log.jsonl'), errors='replace') as f:
            for line in f:
                if line.strip():
                    rec = parse_record(line)
                    records += [rec] if rec else []
                    damaged += rec is None
    except FileNotFoundError:
        return [], 0, None
    except OSError as e:
        return records, damaged, 'log.jsonl unreadable (%s)' % e.strerror
    return records, damaged, None


def parse_record(line):
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) and is_int(rec.get('iteration')) else None


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def run_status(run_dir):
    """rundir.state(run_dir), or None (also when the lock file cannot be read)."""
    try:
        return rundir.state(run_dir)
    except OSError:
        return None


def lock_holder(run_dir):
    try:
        return rundir.holder(run_dir)
    except OSError:
        return None


# ---- what a run's files say

@functools.lru_cache(maxsize=None)
def defaults():
    """{(section, field): default} of the config, for older files that lack a field."""
    from dataclasses import fields
    return {(name, f.name): field_default(f) for name, cls in sections().items()
            for f in fields(cls)}


def setting(cfg, section, name):
    """A config value: the file's, else the field's default; None without a config."""
    if cfg is None:
        return None
    part = cfg.get(section)
    if isinstance(part, dict) and name in part:
        return part[name]
    return defaults().get((section, name))


def arch_name(cfg):
    """The registry name of the run's network, or resnet<depth>_<version> for a depth the
    registry does not name; and whether the name includes the block."""
    if setting(cfg, 'model', 'model'):
        return str(setting(cfg, 'model', 'model')), False
    depth, version, block = (setting(cfg, 'model', k) for k in ('depth', 'version', 'block'))
    dataset = setting(cfg, 'data', 'dataset')
    spec = DATASETS.get(dataset) if isinstance(dataset, str) else None
    family = FAMILIES.get(spec.family) if spec else None
    arch = dict(depth=depth, **({'block': block} if block else {}))
    for template, registered in (family.registered.items() if family else ()):
        if registered == arch:
            return template.format(v=version), bool(block)
    return 'resnet%s_%s' % (depth, version), False


def variant(cfg, block_named):
    """{model option: value} of the options that differ from their defaults (a placement
    equal to the version's own is no variant)."""
    version = setting(cfg, 'model', 'version')
    own = VERSIONS.get(version) if isinstance(version, str) else None
    out = {}
    for (section, name), default in defaults().items():
        value = setting(cfg, section, name)
        if section != 'model' or name in NAMED or value in (None, default):
            continue
        if not ((name == 'placement' and value == own) or (name == 'block' and block_named)):
            out[name] = value
    return out


def describe_model(cfg, module):
    """(label, details) of the network a run trains: name, variant options, dataset;
    module: the run's module.yaml (a Module run) or None."""
    if cfg is None:
        return '?', dict(name=None, variant={}, dataset=None)
    if module and module.get('net') == 'notes':
        name, block_named = 'notes_net', False
    else:
        name, block_named = arch_name(cfg)
    opts, dataset = variant(cfg, block_named), setting(cfg, 'data', 'dataset')
    words = [name] + ['%s=%s' % kv for kv in opts.items()] + [str(dataset)]
    return ' '.join(words + (['(Module)'] if module else [])), dict(
        name=name, variant=opts, dataset=dataset)


def plan(cfg, status, records):
    """(total iterations or None, epochs or None). The status names the total the engine
    planned; otherwise --max-iters, or --epochs times the steps per epoch the log shows
    (its records carry epoch = iteration / steps)."""
    epochs = setting(cfg, 'optim', 'epochs')
    epochs = epochs if is_int(epochs) else None
    if status and is_int(status.get('max_iters')):
        return status['max_iters'], epochs
    if epochs:
        steps = [round(r['iteration'] / r['epoch']) for r in records
                 if r['iteration'] > 0 and is_number(r.get('epoch')) and r['epoch'] > 0]
        return (epochs * steps[-1] if steps else None), epochs
    total = setting(cfg, 'optim', 'max_iters')
    return (total if is_int(total) else None), None


def eval_errors(records):
    """((final error, iteration), (best error, iteration)) of the test evaluations; the
    best is the earliest of equal minima."""
    tests = [(r['test_err'], r['iteration']) for r in records if is_number(r.get('test_err'))]
    if not tests:
        return (None, None), (None, None)
    return tests[-1], min(tests, key=lambda t: t[0])


def median_rate(records):
    rates = [r['img_per_sec'] for r in records if is_number(r.get('img_per_sec'))]
    return statistics.median(rates) if rates else None


def state_of(run_dir, status, iteration, total):
    """(state, inferred): status.json's, else inferred from the lock and the log."""
    if status:
        return status['state'], False
    if lock_holder(run_dir) is not None:
        return 'running', True
    if total is None:
        return '?', True
    return ('finished' if iteration is not None and iteration >= total else 'interrupted'), True


def summarise(run_dir, label):
    """One row of the table: everything said about the run directory, as plain values."""
    cfg, cfg_problem = read_yaml(os.path.join(run_dir, 'config.yaml'))
    module = read_yaml(os.path.join(run_dir, 'module.yaml'))[0]
    records, damaged, log_problem = read_records(run_dir)
    status = run_status(run_dir)
    iterations = [r['iteration'] for r in records] + (
        [status['iteration']] if status and is_int(status.get('iteration')) else [])
    iteration = max(iterations) if iterations else None
    total, epochs = plan(cfg, status, records)
    (final, final_at), (best, best_at) = eval_errors(records)
    state, inferred = state_of(run_dir, status, iteration, total)
    model, details = describe_model(cfg, module)
    warnings = ([cfg_problem] if cfg_problem else []) + ([log_problem] if log_problem else [])
    warnings += ['%d damaged log line%s' % (damaged, 's' * (damaged > 1))] if damaged else []
    return dict(run=label, path=run_dir, model=model, **details,
                trainer='module' if module else 'gluon', dtype=setting(cfg, 'optim', 'dtype'),
                iteration=iteration, total=total,
                epochs=epochs, final_test_err=final, final_iteration=final_at,
                best_test_err=best, best_iteration=best_at, img_per_sec=median_rate(records),
                state=state, state_inferred=inferred,
                message=status.get('message') if status else None,
                damaged_lines=damaged, warnings=warnings)


# ---- the table

def collect(dirs):
    """The rows of every run under the given folders; a run's label is its path relative
    to its folder (prefixed by the folder when several are given)."""
    rows = []
    for root in dirs:
        check_dir(root)
        for path in find_runs(root):
            rel = os.path.relpath(path, root)
            rows.append(summarise(path, rel if len(dirs) == 1 else os.path.normpath(
                os.path.join(root, rel))))
    return rows


def check_dir(root):
    if os.path.isfile(root):
        raise UserError('%s is a file, not a folder: pass the folder that holds the run '
                        'directories (e.g. runs/)' % root)
    if not os.path.isdir(root):
        raise UserError('%s does not exist: pass the folder that holds the run directories '
                        '(default runs/, e.g. python -m gluon_resnet_v2.runs runs/sweep)' % root)


def sort_rows(rows, by):
    """By run path, or by the best / final test error (runs without one last)."""
    if by == 'run':
        return sorted(rows, key=lambda r: r['run'])
    key = by + '_test_err'
    return sorted(rows, key=lambda r: (r[key] is None, r[key] or 0, r['run']))


def pct_at(err, iteration):
    return '' if err is None else '%.2f%% @%d' % (100 * err, iteration)


def progress(row):
    text = '%s/%s' % tuple('?' if v is None else v for v in (row['iteration'], row['total']))
    return text + (' (%d ep)' % row['epochs'] if row['epochs'] else '')


def state_cell(row):
    known = row['state'] != '?'
    return row['state'] + (' (inferred)' if row['state_inferred'] and known else '')


COLUMNS = (   # header, cell, right-aligned
    ('run', lambda r: r['run'], False),
    ('model', lambda r: r['model'], False),
    ('iter/total', progress, True),
    ('final test err', lambda r: pct_at(r['final_test_err'], r['final_iteration']), True),
    ('best test err', lambda r: pct_at(r['best_test_err'], r['best_iteration']), True),
    ('img/s', lambda r: '' if r['img_per_sec'] is None else '%.0f' % r['img_per_sec'], True),
    ('state', state_cell, False),
    ('warnings', lambda r: '; '.join(r['warnings']), False),
)


def table(rows):
    """Plain text, one line per run, columns aligned."""
    cells = [[h for h, _, _ in COLUMNS]] + [[cell(r) for _, cell, _ in COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return '\n'.join('  '.join(c.rjust(w) if right else c.ljust(w)
                               for c, w, (_, _, right) in zip(line, widths, COLUMNS)).rstrip()
                     for line in cells)


@click.command()
@click.argument('dirs', nargs=-1, metavar='[DIR]...')
@click.option('--json', 'as_json', is_flag=True, help='print the rows as a JSON list')
@click.option('--sort', 'sort_by', type=click.Choice(SORTS), default='run', show_default=True,
              help='order: run path, best or final test error (lowest first)')
def main(dirs, as_json, sort_by):
    """Table of the run directories under DIR (default runs/), searched recursively."""
    dirs = list(dirs) or ['runs']
    rows = sort_rows(collect(dirs), sort_by)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
    elif rows:
        click.echo(table(rows))
    else:
        click.echo('no run directories under %s' % ', '.join(dirs))
    return rows


def run():
    """The console entry point (grv-runs): main as a command-line tool."""
    from .cli import main_wrapper
    main_wrapper(main)()


if __name__ == '__main__':
    run()
