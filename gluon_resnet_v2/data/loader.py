"""Deterministic batch scheduling and a bounded, ordered prefetcher.

Exact resume after a crash needs every batch to be a pure function of
(seed, epoch, batch index): the image order of an epoch comes from one RNG stream and
each batch's augmentation from its own, so batch k is the same whether the epoch was
started at 0 or at k, and whichever worker thread happens to compute it.
"""
import collections
import threading
import weakref
from concurrent.futures import CancelledError, ThreadPoolExecutor

import numpy as np

# A trailing stream tag keeps the two RNG families apart. numpy's SeedSequence pads the
# entropy with zeros, so default_rng([s, e]) (an order) would equal
# default_rng([s, e, 0]) (batch 0's augmentation) without it.
_ORDER_STREAM = 1
_AUGMENT_STREAM = 2


def epoch_order(seed, epoch, n):
    """The permutation of the n training images used in `epoch` (int64 indices)."""
    return np.random.default_rng([seed, epoch, _ORDER_STREAM]).permutation(n)


def batch_rng(seed, epoch, batch):
    """The generator that draws every random choice of one training batch."""
    return np.random.default_rng([seed, epoch, batch, _AUGMENT_STREAM])


class Prefetcher:
    """Iterate `fn(task)` over `tasks` in order, computed by `num_workers` threads.

    At most 2 * num_workers results are in flight, so memory stays bounded however
    slowly the consumer pulls. num_workers=0 computes each result on demand in the
    caller's thread. Threads (not processes) suffice: numpy and cv2 release the GIL
    in the heavy loops, and threads share the decoded dataset without copies.
    The pool is shut down when the iterator is exhausted, closed, or garbage collected
    (a consumer that `break`s and drops the iterator), so no worker outlives it.
    """

    def __init__(self, fn, tasks, num_workers):
        self._closed, self._lock = False, threading.Lock()
        self._pending = collections.deque()
        self._fn, self._tasks, self._depth = fn, iter(tasks), 2 * num_workers
        self._pool = (ThreadPoolExecutor(num_workers, thread_name_prefix='data')
                      if num_workers > 0 else None)

    def __iter__(self):
        return self

    def __next__(self):
        try:
            if self._pool is None:
                task = next(self._tasks, _END)
                if task is _END or self._closed:
                    raise StopIteration
                return self._fn(task)
            self._fill()
            with self._lock:
                future = self._pending.popleft() if self._pending else None
            if future is None:
                raise StopIteration
            result = future.result()
        except CancelledError:                # close() was called from another thread
            self.close()
            raise StopIteration from None
        except BaseException:                 # exhausted, or a failed batch: end the epoch
            self.close()
            raise
        self._fill()  # keep the workers busy while the caller consumes this batch
        return result

    def _fill(self):
        with self._lock:                      # close() may run in another thread
            while not self._closed and len(self._pending) < self._depth:
                task = next(self._tasks, _END)
                if task is _END:
                    return
                self._pending.append(self._pool.submit(self._fn, task))

    def close(self):
        """Cancel queued work and join the worker threads (waits for at most the
        batches already being computed)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pending, self._pending = self._pending, collections.deque()
        for future in pending:
            future.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True)   # queued futures were cancelled above

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_END = object()


class PrefetcherRegistry:
    """The open prefetchers of one dataset, so `close()` can stop them all.

    Weak references: an iterator the caller dropped is not kept alive by this."""

    def __init__(self):
        self._live = weakref.WeakSet()

    def start(self, fn, tasks, num_workers):
        it = Prefetcher(fn, tasks, num_workers)
        self._live.add(it)
        return it

    def close_all(self):
        for it in list(self._live):
            it.close()
