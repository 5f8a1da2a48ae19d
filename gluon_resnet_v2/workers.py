"""What the workers of a distributed run (a dist_* kvstore) agree on beyond the gradients.

The Trainer sums the gradients through the kvstore under its keys 0..P-1. The workers must
also share:
* the BatchNorm running statistics: each worker accumulates its own from its own rows (as
  each device does), so before every evaluation and checkpoint they are averaged over the
  workers, as over the devices (otherwise worker 0's checkpoint would hold only its half);
* the training log's sums: the logged loss and error are those of the global batch, not of
  worker 0's share, and a loss that diverges on one worker's rows stops every worker;
* the start: every worker resumes from the same checkpoint, with the same recipe.

Those values go through the same kvstore under keys from OFFSET up. A parameter server
without an optimizer (the Trainer keeps update_on_kvstore=False) stores the sum of the
workers' pushes, so a push-pull is an all-reduce sum; `init` stores worker 0's value, so
an init followed by a pull is a broadcast from worker 0.
"""
import mxnet as mx
import numpy as np

OFFSET = 1 << 30                 # above any Trainer key (one per parameter)


class Workers:
    """The workers of one run; with one worker every method is the identity."""

    def __init__(self, kv=None, rank=0, count=1):
        self.kv, self.rank, self.count = kv, rank, count
        self._keys = {}

    def start(self, trainer):
        """Put a gluon.Trainer's parameters on the servers now (worker 0's values, pulled by
        every worker), and wait at a barrier until every worker holds them, before any
        worker pushes a gradient.

        Left to the Trainer's first step, that broadcast runs just before the step's
        gradient push-pull. Measured (2 workers, 1 server, loopback): in 4 and 5 of 20 jobs
        one worker then held the first summed gradient in place of the initial weights of
        the last parameters (the run silently trained two different models); the likely
        cause, not traced inside ps-lite, is a fast worker's first push overlapping the
        other's pull of those weights. With this: none in 45 jobs
        (scripts/bench_dist_sync.py)."""
        if self.count == 1:
            return
        if not trainer._kv_initialized:        # MXNet 1.9.1 (final): what step() does first
            trainer._init_kvstore()
        if trainer._params_to_init:
            trainer._init_params()
        mx.nd.waitall()
        self.kv._barrier()

    def _keys_of(self, name, arrays):
        """Keys of the values called `name`, initialised (collectively) on first use from
        `arrays`: worker 0's values are stored."""
        if name not in self._keys:
            start = OFFSET + sum(len(k) for k in self._keys.values())
            keys = list(range(start, start + len(arrays)))
            self.kv.init(keys, arrays)
            self._keys[name] = keys
        return self._keys[name]

    def sum(self, name, arrays):
        """Sums over the workers of NDArrays (the same shapes on every worker), written
        into `arrays`. Every worker must make the same calls in the same order."""
        if self.count > 1:
            keys = self._keys_of(name, [mx.nd.zeros(a.shape, dtype=a.dtype) for a in arrays])
            self.kv.pushpull(keys, arrays, out=arrays)
        return arrays

    def total(self, name, values):
        """Sums over the workers of a few numbers (a sync point). The servers add in float32
        whatever the dtype (measured): integers are exact below 2**24."""
        if self.count == 1:
            return [float(v) for v in values]
        array = mx.nd.array(values, dtype='float32')
        return [float(v) for v in self.sum(name, [array])[0].asnumpy()]

    def mean_of(self, name, values):
        """Means over the workers of a few numbers: the same float32 values on every worker
        (with one worker, `values` unchanged)."""
        return [v / self.count for v in self.total(name, values)] if self.count > 1 else values

    def gather(self, name, values):
        """Every worker's few numbers (the same count on each; float32), by rank."""
        if self.count == 1:
            return [[float(v) for v in values]]
        table = np.zeros((self.count, len(values)), np.float32)
        table[self.rank] = values                  # + 0 from the other workers: exact
        return self.sum(name, [mx.nd.array(table)])[0].asnumpy().tolist()

    def mean(self, name, arrays):
        """Averages over the workers, in place; NDArrays on any context."""
        if self.count > 1:
            for a in self.sum(name, arrays):
                a /= self.count
        return arrays

    def first(self, name, values):
        """Worker 0's values of a few numbers (float32), on every worker (once per name)."""
        if self.count == 1:
            return list(values)
        array = mx.nd.array(values, dtype='float32')
        keys = self._keys_of(name, [array])
        out = mx.nd.zeros(array.shape, dtype='float32')
        self.kv.pull(keys[0], out=out)
        return list(out.asnumpy())

    def disagreeing(self, name, values):
        """How many workers hold other `values` than worker 0 (0: all agree), on every
        worker, so that all of them can stop together."""
        mine = [float(np.float32(v)) for v in values]
        return int(self.total(name + '/differ', [float(self.first(name, mine) != mine)])[0])
