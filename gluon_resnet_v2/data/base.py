"""The dataset interface the trainer consumes, and its in-memory implementation.

Every dataset is a `BatchSource`: `train_batches(batch_size, seed, epoch, start, part)`
yields the batches [start, steps) of one epoch (or one worker's rows of each), `eval_batches(split, batch_size)` the whole test
split (or the validation split held out of the training images with --val-size) in
order. Subclasses provide only how to build one batch from image indices.
"""
import numpy as np

from ..errors import UserError
from . import augment
from .loader import PrefetcherRegistry, batch_rng, epoch_order


class DataError(UserError):
    """A user-facing data problem; the one-line message names the problem and the fix."""

    def __init__(self, message):
        # quoted exception texts may span lines; the CLI prints exactly one
        super().__init__(' '.join(str(message).split()))


class BatchSource:
    """Batch scheduling shared by all datasets (see loader.py for the RNG contract).

    Subclasses set classes, num_train, num_test, num_val, mean, std, num_workers and
    implement `_train_batch(indices, rng, rows)` and `_eval_batch(split, indices)` ('test'
    or 'val'), each returning (x, y): x float32 NCHW normalised, y int32. `rows` (a slice)
    is the part of the batch to build: every random choice is drawn for the whole batch,
    so a worker's rows are exactly those rows of the batch one process would build.
    """
    name = 'dataset'
    num_val = 0            # images held out of the training split for validation

    def __init__(self, num_workers):
        self.num_workers = num_workers
        self._iterators = PrefetcherRegistry()

    def steps_per_epoch(self, batch_size):
        """Full batches per epoch; the last partial batch is dropped (drop_last)."""
        if batch_size < 1:
            raise DataError('batch size must be >= 1, got %d: pass a positive --batch-size'
                            % batch_size)
        if batch_size > self.num_train:
            raise DataError('batch size %d exceeds the %d training images of %s: lower '
                            '--batch-size or raise --subset' % (batch_size, self.num_train,
                                                                self.name))
        return self.num_train // batch_size

    def train_batches(self, batch_size, seed, epoch, start=0, part=(0, 1)):
        """Batches start .. steps_per_epoch-1 of `epoch`, identical to the same batches of
        an iteration started at 0, for any num_workers. part=(index, count): only rows
        [index * n, (index + 1) * n) of each batch, n = batch_size / count (the share of
        one of `count` distributed workers, which reads and decodes no other image)."""
        steps = self.steps_per_epoch(batch_size)
        if not 0 <= start <= steps:
            raise ValueError('start batch %d is outside 0..%d' % (start, steps))
        index, count = part
        if batch_size % count or not 0 <= index < count:
            raise ValueError('part %d of %d does not divide a batch of %d' % (index, count,
                                                                               batch_size))
        rows = slice(index * batch_size // count, (index + 1) * batch_size // count)
        order = epoch_order(seed, epoch, self.num_train)

        def make(b):
            return self._train_batch(order[b * batch_size:(b + 1) * batch_size],
                                     batch_rng(seed, epoch, b), rows)
        return self._iterators.start(make, range(start, steps), self.num_workers)

    def eval_batches(self, split, batch_size):
        """The 'test' or 'val' split in its fixed order; the last batch may be partial."""
        if batch_size < 1:
            raise DataError('batch size must be >= 1, got %d: pass a positive --batch-size'
                            % batch_size)
        size = {'test': self.num_test, 'val': self.num_val}[split]
        return self._iterators.start(
            lambda s: self._eval_batch(split, np.arange(s, min(s + batch_size, size))),
            range(0, size, batch_size), self.num_workers)

    def test_batches(self, batch_size):
        return self.eval_batches('test', batch_size)

    def close(self):
        """Stop the workers of every iterator still open."""
        self._iterators.close_all()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return ('%s(%s: %d classes, %d train, %d test images)'
                % (type(self).__name__, self.name, self.classes, self.num_train, self.num_test))


def check_val_size(val_size, available, name):
    """The number of training images held out for validation (0 without --val-size)."""
    if not val_size:
        return 0
    if val_size >= available:
        raise DataError('--val-size %d leaves none of the %d training images of %s to train on: '
                        'lower --val-size' % (val_size, available, name))
    return val_size


def check_subset(subset, available, name):
    """The number of training images to use: all, or the first `subset`."""
    if subset is None:
        return available
    if subset > available:
        raise DataError('--subset %d exceeds the %d training images of %s: lower --subset '
                        '(or drop it to use them all)' % (subset, available, name))
    return subset


class InMemoryData(BatchSource):
    """Images decoded once into uint8 arrays (N, H, W, 3) with int32 labels.

    `train` and `test` are (images, labels) pairs; `names` optional file-name lists.

    With `val_size` N, the last N training images are the validation split (deterministic,
    the same for every seed). Mean and std are measured over the training images (without
    the validation split, before --subset) so that a quick subset run normalises exactly
    like the full run. Training batches get the paper's pad/crop/flip; validation and test
    batches are only normalised.
    """

    def __init__(self, name, train, test, classes, pad=4, subset=None, num_workers=0,
                 class_names=None, names=(None, None), val_size=None):
        super().__init__(num_workers)
        (train_x, train_y), (test_x, test_y) = train, test
        self.num_val = check_val_size(val_size, len(train_x), name)
        cut = len(train_x) - self.num_val
        self.val_x, self.val_y = train_x[cut:], np.asarray(train_y[cut:], np.int32)
        train_x, train_y = train_x[:cut], train_y[:cut]
        names = (names[0][:cut] if names[0] is not None else None, names[1])
        self.name = name
        self.classes = int(classes)
        self.class_names = list(class_names) if class_names is not None else None
        if not 0 <= pad < min(train_x.shape[1:3]):
            raise DataError('--pad %d does not fit the %dx%d images of %s: use 0 <= --pad < %d'
                            % (pad, train_x.shape[1], train_x.shape[2], name,
                               min(train_x.shape[1:3])))
        self.pad = pad
        self.mean, self.std = augment.channel_stats(train_x)
        n = check_subset(subset, len(train_x), name)
        self.train_x, self.train_y = train_x[:n], np.asarray(train_y[:n], np.int32)
        self.test_x, self.test_y = test_x, np.asarray(test_y, np.int32)
        self.num_train, self.num_test = n, len(test_x)
        # file names per image, where the source has them (for tracing an image back)
        self.train_names = names[0][:n] if names[0] is not None else None
        self.test_names = names[1]

    def _train_batch(self, indices, rng, rows=slice(None)):
        draws = augment.draw_crop_flip(rng, len(indices), self.pad)      # the whole batch's
        images = augment.crop_flip(self.train_x[indices[rows]], self.pad,
                                   *(d[rows] for d in draws))
        return augment.normalize(images, self.mean, self.std), self.train_y[indices[rows]]

    def _eval_batch(self, split, indices):
        x, y = (self.test_x, self.test_y) if split == 'test' else (self.val_x, self.val_y)
        return augment.normalize(x[indices], self.mean, self.std), y[indices]
