"""Running a table: every (row, seed) is an ordinary run directory trained by the train
command itself, one child process per run.

    <root>/<table>-<scale>/<row>/seed<k>/      config.yaml, log.jsonl, status.json, ...

A child process rather than fit() in this process: MXNet reads its engine, thread and
oneDNN settings from the environment once, at import, and the train command sets them per
run (environ.training: NaiveEngine on CPUs, --deterministic's variables); a run that
fails or leaks memory takes only its own process with it; and Ctrl-C reaches the child
(same process group), which writes status "interrupted" as a lone train command does.
The command of a run is always the same for the same row, seed and options, so rerunning
it is the train command's own resume (its latest checkpoint); a finished or diverged run
is left as it is, and one a live process owns (run.lock) is skipped. A run dir trained
with other settings than its row and scale now name (a scale or row redefined since, a
run moved in from elsewhere) is refused by `run`, `status` and `summarize` alike: its
result would be counted as one it is not.
"""
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import click

from .. import rundir, runs
from ..config import differences as config_differences, frozen_fields
from ..environ import cores
from ..errors import RunInterrupted, UserError
from .definitions import build, row_settings, train_argv

# what status shows for each rundir state (and for a run dir not started)
WORDS = {'finished': 'done', 'running': 'running', 'interrupted': 'interrupted',
         'diverged': 'diverged', 'failed': 'failed', None: 'not started'}
# states `run` leaves alone: an outcome (finished, diverged) or another process's run
SKIP = ('finished', 'diverged', 'running')
# the train options a table run passes through to every run (devices, dtype, data place)
PASSED = ('gpus', 'cpus', 'kvstore', 'dtype', 'data_dir', 'download', 'num_workers')
# what makes two runs the same experiment: the fields a resumed run must keep, and, once it
# finished, its length (an unfinished run may be resumed to another; the train command
# refuses one already past it)
LENGTH = (('optim', 'max_iters'), ('optim', 'epochs'))


@dataclass(frozen=True)
class Job:
    row: object                      # definitions.Row
    seed: int
    run_dir: str
    settings: dict                   # train options (row, scale, command line)

    @property
    def label(self):
        return '%s seed %d' % (self.row.name, self.seed)

    def argv(self):
        return [sys.executable, '-m', 'gluon_resnet_v2.train'] + train_argv(
            dict(self.settings, seed=self.seed, run_dir=self.run_dir))


def table_dir(root, table, scale):
    return os.path.join(root, '%s-%s' % (table.name, scale.name))


def run_dir(root, table, scale, row, seed):
    return os.path.join(table_dir(root, table, scale), row.name, 'seed%d' % seed)


def select_rows(table, names):
    """The rows named (comma-separated; None: all), in the table's order."""
    if not names:
        return list(table.rows)
    wanted = [n for n in names.replace(' ', '').split(',') if n]
    unknown = [n for n in wanted if n not in table.row_names()]
    if unknown or not wanted:
        raise UserError('unknown row %s of %s: choose from %s' % (
            ', '.join(unknown) or repr(names), table.name, ', '.join(table.row_names())))
    return [r for r in table.rows if r.name in wanted]


def check_scale(table, scales, name):
    if name not in table.scales:
        raise UserError('%s has no %s scale: choose %s' % (
            table.name, name, ' or '.join(table.scales)))
    return scales[name]


def plan(table, scale, root, rows, seeds, extra):
    """The jobs of the rows x seeds 0..seeds-1, each one's Config built now, so a bad option
    is refused before any run starts."""
    jobs = []
    for row in rows:
        for seed in range(seeds):
            job = Job(row, seed, run_dir(root, table, scale, row, seed),
                      row_settings(row, scale, extra))
            check_same_settings(job, build(job.settings, job.run_dir, seed))
            jobs.append(job)
    return jobs


def differences(saved, cfg, given, finished=True):
    """[(option, the run's value, the job's)] where a run's config.yaml (`saved`) is not
    the experiment the job's Config `cfg` describes: the fields a resumed run keeps and, for
    a `finished` run, its length; but a passed-through option (PASSED: dtype, ...) the
    command did not give (`given`: the job's option names), so that status and summarize,
    which take no --dtype, read a bfloat16 table as it is."""
    keys = [(section, key) for section, key in frozen_fields() + list(
        LENGTH if finished else ()) if key not in PASSED or key in given]
    return [(key, old, new) for _, key, old, new in config_differences(saved, cfg.to_dict(),
                                                                      keys)]


def check_same_settings(job, cfg):
    """Refuse (UserError) a job whose run dir holds a run trained otherwise than the job's
    row and scale say: skipping it as finished or counting its error would report another
    experiment as this one."""
    path = os.path.join(job.run_dir, 'config.yaml')
    if not os.path.exists(path):
        return
    saved, problem = runs.read_yaml(path)
    if problem:
        raise UserError('run dir %s: %s, so which settings it was trained with is unknown: '
                        'move it aside (nothing was changed)' % (job.run_dir, problem))
    status = rundir.state(job.run_dir)
    diff = differences(saved, cfg, job.settings, status and status['state'] == 'finished')
    if diff:
        raise UserError('run dir %s was trained with %s, where this command asks for %s: '
                        'move the run aside or use another --root (nothing was changed)' % (
                            job.run_dir, ', '.join('%s %s' % (k, show(old)) for k, old, _ in diff),
                            ', '.join('%s %s' % (k, show(new)) for k, _, new in diff)))


def show(value):
    return ','.join(map(str, value)) if isinstance(value, tuple) else str(value)


def job_state(job):
    """(state, iteration, total, final test error) of a job's run dir, from runs.py's
    reading of it; state None when it holds no run yet."""
    if not os.path.isdir(job.run_dir) or not any(
            os.path.exists(os.path.join(job.run_dir, f)) for f in runs.RUN_FILES):
        return None, None, None, None
    row = runs.summarise(job.run_dir, job.label)
    state = row['state'] if row['state'] in WORDS else None
    return state, row['iteration'], row['total'], row['final_test_err']


def child_env(parallel, user_env):
    """The environment of `parallel` children run at once: the user's (`user_env`, what
    the command was started with, before main_wrapper's set-up of this process), with
    OMP_NUM_THREADS the cores shared out (each train process takes all of them
    otherwise: 2 runs of 2 threads on 2 cores measured 7x slower) unless the user set it."""
    env = dict(user_env)
    if parallel > 1 and not user_env.get('OMP_NUM_THREADS'):
        env['OMP_NUM_THREADS'] = str(max(1, cores() // parallel))
    return env


def run_jobs(jobs, echo=click.echo, parallel=1, user_env=None):
    """Train every job not finished, diverged or running elsewhere: one after another, its
    output passed through, or `parallel` at once, each one's output in <run dir>.out and
    a line here as each starts and ends. Returns {label: outcome}. Bad input in a child
    (exit 2) stops here with its message; Ctrl-C stops after every child has recorded its
    state."""
    outcome = {}
    todo = [('[%d/%d] %s: ' % (n, len(jobs), job.label), job) for n, job in enumerate(jobs, 1)]
    if parallel == 1:
        for head, job in todo:
            go, state = turn(head, job, outcome, echo)
            if go:
                echo(head + ('resuming %s' if state else 'training in %s') % job.run_dir)
                code, error = train_child(job)
                record(outcome, job, code, error, echo)
    else:
        run_parallel(todo, child_env(parallel, os.environ if user_env is None else user_env),
                     parallel, outcome, echo)
    return outcome


def turn(head, job, outcome, echo):
    """(whether to train the job, its state) when its turn comes: a finished or diverged
    run, or one another process trains (another `run` of the same table may have taken it
    since this one started), is left alone."""
    state = job_state(job)[0]
    if state in SKIP:
        echo(head + '%s, skipped' % WORDS[state])
        outcome[job.label] = WORDS[state]
        return False, state
    return True, state


def record(outcome, job, code, error, echo, others=()):
    """A child's exit code into `outcome`; Ctrl-C and bad input stop the table (after
    `others`, the children still running, have stopped and written their state)."""
    if code == 2 and rundir.is_busy_refusal(error):
        # another `run` of the table started this run between our look and our child's
        # lock (the train command refuses a run dir in use): it is that one's, and by now
        # it may be running, finished, or not yet have written its status
        state = job_state(job)[0] or 'running'
        echo('%s: taken by another process (%s), skipped' % (job.label, WORDS[state]))
        outcome[job.label] = WORDS[state]
        return
    if code in (130, 2):
        stop(others)
    if code == 130:
        raise click.exceptions.Abort() from RunInterrupted(
            'interrupted during %s; rerun the same command to resume' % job.label)
    if code == 2:
        raise UserError('%s: %s' % (job.label, error or 'the train command refused it '
                                    '(exit 2): see above'))
    outcome[job.label] = {0: 'done', 3: 'diverged'}.get(code, 'failed (exit %d)' % code)
    if code not in (0, 3):
        echo('%s failed (exit %d)%s; going on with the next run'
             % (job.label, code, ': ' + error if error else ''), err=True)


def run_parallel(todo, env, parallel, outcome, echo):
    """Up to `parallel` train children at once, in the environment `env`."""
    running = {}                                       # Popen -> (job, output path)
    try:
        while todo or running:
            while todo and len(running) < parallel:
                head, job = todo.pop(0)
                go, state = turn(head, job, outcome, echo)
                if not go:
                    continue
                out = job.run_dir.rstrip(os.sep) + '.out'
                os.makedirs(os.path.dirname(out), exist_ok=True)
                with open(out, 'ab') as f:
                    proc = subprocess.Popen(job.argv(), stdin=subprocess.DEVNULL, stdout=f,
                                            stderr=subprocess.STDOUT, env=env)
                running[proc] = job, out
                echo(head + '%s (output: %s)' % (
                    'resuming %s' % job.run_dir if state else 'training in %s' % job.run_dir,
                    out))
            for proc in [p for p in running if p.poll() is not None]:
                job, out = running.pop(proc)
                error = last_error(out)
                word = {0: 'done', 3: 'diverged', 130: 'interrupted'}.get(
                    proc.returncode, 'failed (exit %d)' % proc.returncode)
                err = job_state(job)[3]
                if proc.returncode != 2:          # refused: record() says why
                    echo('%s: %s%s' % (job.label, word, '' if err is None else
                                       ', test error %.2f %%' % (100 * err)))
                record(outcome, job, proc.returncode, error, echo, running)
            time.sleep(0.2)
    except KeyboardInterrupt:
        stop(running)
        raise click.exceptions.Abort() from RunInterrupted(
            'interrupted during %s; rerun the same command to resume'
            % ', '.join(job.label for job, _ in running.values()))


def stop(children):
    """Children still running get 10 s to end by themselves (a Ctrl-C at the terminal
    reached them too), then SIGINT: a train command interrupted writes its state."""
    deadline = time.monotonic() + 10
    for proc in list(children):
        try:
            proc.wait(timeout=max(0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
    for proc in list(children):
        proc.wait()


def last_error(path):
    """The last `error: ...` line of a child's output file, without the prefix."""
    error = None
    with open(path, 'rb') as f:
        for line in re.split(rb'[\r\n]', f.read()):
            text = line.decode(errors='replace')
            if text.startswith('error: '):
                error = text[len('error: '):].strip()
    return error


def train_child(job):
    """Run the job's train command; its output passes through, but for its `error:` line,
    which is returned (exit code, error text or None). Ctrl-C here reaches the child too:
    its end is awaited, so its status is written before this process goes on."""
    proc = subprocess.Popen(job.argv(), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    error = None
    try:
        error = pass_through(proc.stderr)
        proc.wait()
    except KeyboardInterrupt:
        stop([proc])
        pass_through(proc.stderr)             # its last words: what it kept
        return 130, None
    return proc.returncode, error


def pass_through(pipe, out=None):
    """Copy a child's stderr (progress bars redrawn with \\r included), holding back its
    last `error: ...` line, which is returned without the prefix."""
    out, rest, error = out or sys.stderr, b'', None
    for chunk in iter(lambda: os.read(pipe.fileno(), 65536), b''):
        *lines, rest = re.split(rb'(?<=\n)|(?<=\r)(?!\n)', rest + chunk)
        for line in lines:
            text = line.decode(errors='replace')
            if text.startswith('error: '):
                error = text[len('error: '):].strip()
            else:
                out.write(text)
        out.flush()
    if rest:
        out.write(rest.decode(errors='replace'))
    return error
