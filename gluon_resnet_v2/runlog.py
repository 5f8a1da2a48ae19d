"""`log.jsonl`: one JSON object per log or evaluation point, appended as training goes.

Every record has all of KEYS (a value not measured at that point is null), so any set
of runs, Gluon or Module, can be read back and plotted together.
"""
import json
import math
import os

KEYS = ('iteration', 'epoch', 'lr', 'train_loss', 'train_err', 'test_loss', 'test_err',
        'img_per_sec', 'time')


def record(**values):
    """A full record: KEYS in order, missing ones null, non-finite floats null."""
    unknown = set(values) - set(KEYS)
    if unknown:
        raise KeyError('unknown log keys: %s' % ', '.join(sorted(unknown)))
    out = {}
    for k in KEYS:
        v = values.get(k)
        out[k] = None if isinstance(v, float) and not math.isfinite(v) else v
    return out


class JsonlLog:
    """Appends records to `<run_dir>/log.jsonl`, flushed per line so a kill loses nothing."""

    def __init__(self, run_dir, filename='log.jsonl'):
        self.path = os.path.join(run_dir, filename)

    def write(self, **values):
        rec = record(**values)
        with open(self.path, 'a') as f:
            f.write(json.dumps(rec) + '\n')
        return rec

    def truncate_after(self, iteration):
        """Drop records past `iteration`: on resume they are redone from the checkpoint."""
        keep = [r for r in read_log(self.path) if r['iteration'] <= iteration]
        tmp = self.path + '.tmp'
        with open(tmp, 'w') as f:
            f.writelines(json.dumps(r) + '\n' for r in keep)
        os.replace(tmp, self.path)


def write_config(run_dir, config):
    """`config.yaml` (a Config's dict; tuples as lists, so `--config` reads it back),
    written to a temporary name and renamed into place."""
    import yaml
    os.makedirs(run_dir, exist_ok=True)
    tmp = os.path.join(run_dir, '.config.yaml.tmp')
    with open(tmp, 'w') as f:
        yaml.safe_dump(_lists(config), f, sort_keys=False)
    os.replace(tmp, os.path.join(run_dir, 'config.yaml'))


def _lists(d):
    if isinstance(d, dict):
        return {k: _lists(v) for k, v in d.items()}
    return list(d) if isinstance(d, tuple) else d


def read_log(path):
    """The records of a log.jsonl (a run dir is accepted too); a torn last line is skipped."""
    if os.path.isdir(path):
        path = os.path.join(path, 'log.jsonl')
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except ValueError:
                break        # a line cut by a kill mid-write: nothing after it is trusted
    return records
