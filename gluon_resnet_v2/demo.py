"""`make demo`: train a pre-activation ResNet-20 on the embedded CIFAR-10 sample
(5,000 real training images, 1,000 test images) on one CPU context with every core, then
show where the run directory, its log and its curves are. No network needed; about 3
minutes on 2 cores.

The recipe is the paper's, shortened: NAG, lr 0.1, momentum 0.9, weight decay 1e-4,
batch 128, pad-4 crop + flip, learning rate divided by 10 at iterations 500 and 650, 750
iterations (~19 epochs of the sample), no warm-up. One context: measured on 2 cores, the
demo on 2 contexts (the batch split, run one after another) trains at 595 img/s against
704 (README, Quick start); `--cpus 2` still runs the multi-device path.

    python -m gluon_resnet_v2.demo                         # the demo
    python -m gluon_resnet_v2.demo --cpus 2 --seed 3       # any train option, passed on
"""
import shlex
import time

import click

from .cli import main_wrapper
from .train import main as train_main

DEMO_ARGS = ['--model', 'cifar_resnet20_v2', '--dataset', 'cifar10-sample', '--cpus', '1',
             '--batch-size', '128', '--max-iters', '750', '--lr-steps', '500,650',
             '--warmup-iters', '0', '--log-interval', '25', '--eval-interval', '125',
             '--checkpoint-interval', '125']

HELP = """Train a pre-activation ResNet-20 on the embedded CIFAR-10 sample on one CPU context
(about 3 minutes on 2 cores) into runs/demo-<time>/.

Runs `python -m gluon_resnet_v2.train` with the options below, then the extra arguments
given here, which override them (e.g. --cpus 2, --run-dir DIR; `python -m
gluon_resnet_v2.train --help` lists them all):

\b
%s
  --run-dir runs/demo-<time>
""" % '\n'.join('  ' + ' '.join(DEMO_ARGS[i:i + 8]) for i in range(0, len(DEMO_ARGS), 8))


# Unknown options are train's: collected, not refused (train checks them itself).
@click.command(help=HELP, context_settings=dict(ignore_unknown_options=True,
                                                max_content_width=100))
@click.argument('train_args', nargs=-1, type=click.UNPROCESSED, metavar='[TRAIN OPTIONS]...')
def main(train_args):
    run_dir = 'runs/demo-%s' % time.strftime('%Y%m%d-%H%M%S')
    args = DEMO_ARGS + ['--run-dir', run_dir] + list(train_args)
    click.echo('python -m gluon_resnet_v2.train %s' % shlex.join(args))
    # train's own errors reach the main_wrapper this command runs in: one line, exit 2
    summary = train_main.main(args=args, standalone_mode=False)
    run_dir = summary['run_dir']
    click.echo('log: %s/log.jsonl  curves: %s/curves.png  evaluate: python -m '
               'gluon_resnet_v2.evaluate --run-dir %s' % (run_dir, run_dir, run_dir))


def run():
    """The console command (pyproject's [project.scripts]): as `python -m` runs it."""
    main_wrapper(main)()


if __name__ == '__main__':
    run()
