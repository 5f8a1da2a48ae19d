"""`log.jsonl`: one JSON object per log or evaluation point, appended as training goes.

Every record has all of KEYS (a value not measured at that point is null), so any set
of runs, Gluon or Module, can be read back and plotted together. Records of older logs
without the validation keys read back with them null.

A line that is not a record (cut by a kill mid-write, edited by hand, a stray object)
is skipped with a warning naming the line, never taken as the end of the log: the
records after it count. When the log is rewritten (a resume redoes what followed its
checkpoint), nothing is dropped silently: the damaged lines and the superseded records
go to `log.aside.jsonl`, one {"line", "reason", "text"} object each.
"""
import json
import math
import os
import sys

KEYS = ('iteration', 'epoch', 'lr', 'train_loss', 'train_err', 'val_loss', 'val_err',
        'test_loss', 'test_err', 'img_per_sec', 'time')
ASIDE = 'log.aside.jsonl'


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
        """Keep the records up to `iteration` (on resume the rest is redone from the
        checkpoint); the superseded records and any damaged line go to log.aside.jsonl.
        Returns the number of lines set aside."""
        records, damaged = scan(self.path)
        keep = [r for _, r, _ in records if r['iteration'] <= iteration]
        aside = [(n, 'damaged', text) for n, text in damaged] + [
            (n, 'after the checkpoint of iteration %d: redone on resume' % iteration, text)
            for n, r, text in records if r['iteration'] > iteration]
        if not aside:
            return 0
        with open(os.path.join(os.path.dirname(self.path), ASIDE), 'a') as f:
            f.writelines(json.dumps(dict(line=n, reason=why, text=text)) + '\n'
                         for n, why, text in sorted(aside))
        tmp = self.path + '.tmp'
        with open(tmp, 'w') as f:
            f.writelines(json.dumps(r) + '\n' for r in keep)
        os.replace(tmp, self.path)
        return len(aside)


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


def parse_line(text):
    """The record on one line of a log (all KEYS, missing ones null), or None when the line
    is not one: not JSON, not an object, an unknown key, a non-integer iteration or a
    value that is not a number."""
    try:
        rec = json.loads(text)
    except ValueError:
        return None
    if not isinstance(rec, dict) or set(rec) - set(KEYS) or not _is_int(rec.get('iteration')):
        return None
    if any(v is not None and not _is_number(v) for v in rec.values()):
        return None
    return {k: rec.get(k) for k in KEYS}


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def log_path(path):
    """A run dir's log.jsonl (a path to a log file is returned as it is)."""
    return os.path.join(path, 'log.jsonl') if os.path.isdir(path) else path


def scan(path):
    """([(line number, record, text)], [(line number, text)] of the damaged lines) of a log
    (or a run dir); empty for a missing file."""
    records, damaged = [], []
    try:
        f = open(log_path(path), errors='replace')
    except FileNotFoundError:
        return records, damaged
    with f:
        for n, line in enumerate(f, 1):
            text = line.rstrip('\n')
            if not text.strip():
                continue
            rec = parse_line(text)
            if rec is None:
                damaged.append((n, text))
            else:
                records.append((n, rec, text))
    return records, damaged


def warn_stderr(message):
    print('warning: %s' % message, file=sys.stderr)


def read_log(path, warn=warn_stderr):
    """The records of a log.jsonl (a run dir is accepted too), in file order. A damaged
    line is skipped and reported through `warn` (None: silently)."""
    records, damaged = scan(path)
    for n, text in damaged if warn else ():
        warn('%s line %d is not a log record, skipped: %s'
             % (log_path(path), n, text[:80] + ('...' if len(text) > 80 else '')))
    return [r for _, r, _ in records]
