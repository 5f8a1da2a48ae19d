"""`make demo`: train a pre-activation ResNet-20 on the embedded CIFAR-10 sample
(5,000 real training images, 1,000 test images) on 2 CPU contexts, then show where the
run directory, its log and its curves are. No network needed; about 5 minutes on 2 cores.

The recipe is the paper's, shortened: NAG, lr 0.1, momentum 0.9, weight decay 1e-4,
batch 128 split over the two contexts, pad-4 crop + flip, learning rate divided by 10 at
iterations 500 and 650, 750 iterations (~19 epochs of the sample), no warm-up.
"""
import sys
import time

from .cli import main_wrapper
from .train import main as train_main

DEMO_ARGS = ['--model', 'cifar_resnet20_v2', '--dataset', 'cifar10-sample', '--cpus', '2',
             '--batch-size', '128', '--max-iters', '750', '--lr-steps', '500,650',
             '--warmup-iters', '0', '--log-interval', '25', '--eval-interval', '125',
             '--checkpoint-interval', '125']


def main(argv=None):
    run_dir = 'runs/demo-%s' % time.strftime('%Y%m%d-%H%M%S')
    args = DEMO_ARGS + ['--run-dir', run_dir] + list(sys.argv[1:] if argv is None else argv)
    print('python -m gluon_resnet_v2.train %s' % ' '.join(args), flush=True)
    main_wrapper(train_main)(args)
    print('log: %s/log.jsonl  curves: %s/curves.png  evaluate: python -m '
          'gluon_resnet_v2.evaluate --run-dir %s' % (run_dir, run_dir, run_dir))


if __name__ == '__main__':
    main()
