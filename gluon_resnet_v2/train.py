"""Train a pre-activation ResNet with the paper's recipe (a thin front over engine.fit).

    python -m gluon_resnet_v2.train --gpus 0,1 --depth 110
    python -m gluon_resnet_v2.train --cpus 2 --dataset cifar10-sample --model cifar_resnet20_v2 \\
        --max-iters 2000 --lr-steps 1000,1500 --warmup-iters 0 --run-dir runs/r20
    python -m gluon_resnet_v2.train --config run.yaml --lr 0.05      # flags override the file

Every option mirrors a field of config.py; rerunning the same command continues the run
from its latest checkpoint. A `--config` file is a template: it never sets --run-dir (nor
--resume, --restart). Exit codes: 0 done, 2 bad input (one-line message, nothing written
or overwritten), 3 the loss diverged (last good checkpoint kept), 130 interrupted.
"""
import click

from . import environ
from .cli import build_config, check_output_dir, config_options, main_wrapper


@click.command(context_settings={'max_content_width': 120})
@config_options
def main(config_file, **values):
    """Train (or resume) one run; options default to the paper's CIFAR recipe."""
    cfg = build_config(config_file, values)
    check_output_dir(cfg.run.run_dir, '--run-dir')
    with environ.training(cfg.run):   # before MXNet is imported
        from .engine import fit
        summary = fit(cfg)
    click.echo(summary_text(summary))
    return summary


def summary_text(s):
    """The end of a run: a small table, then one `done:` line (the last line)."""
    if not s.get('writer', True):
        return ('done: %d iterations as worker %d; worker 0 wrote the run directory %s'
                % (s['iteration'], s['rank'], s['run_dir']))
    which = 'validation' if s['selected_on'] == 'val' else 'test'
    rows = [('final test error', '%s  iteration %s%s' % (
                pct(s['final_test_err']), s['final_iteration'],
                '  checkpoint-latest.pkl' if s['checkpoints'] else '')),
            ('best %s error' % which, '%s  iteration %s%s' % (
                pct(s['best_err']), s['best_iteration'],
                '  checkpoint-best.pkl' if s['checkpoints'] else '')),
            ('training', '%d of %d iterations, %.0f s over all sessions%s' % (
                s['iteration'], s['max_iters'], s['seconds'],
                ', %.0f img/s (median)' % s['img_per_sec'] if s['img_per_sec'] else '')),
            ('run dir', '%s (log.jsonl, curves.png)' % s['run_dir'])]
    if 'loss_scale' in s:          # --dtype float16
        rows.insert(3, ('loss scaling', 'final scale %g, %d step(s) skipped for overflow'
                        % (s['loss_scale'], s['skipped_steps'])))
    table = ['  %-22s %s' % row for row in rows]
    done = ('done: %d iterations; final test error %s, best %s %s (iteration %s); run dir %s'
            % (s['iteration'], pct(s['final_test_err']), 'validation' if which != 'test'
               else 'test', pct(s['best_err']), s['best_iteration'], s['run_dir']))
    return '\n'.join(table + [done])


def pct(v):
    return 'n/a' if v is None else '%.2f %%' % (100 * v)


def run():
    """The console command (pyproject's [project.scripts]): as `python -m` runs it."""
    main_wrapper(main)()


if __name__ == '__main__':
    run()
