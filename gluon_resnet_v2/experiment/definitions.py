"""The experiments as data: one YAML file per paper table in this folder (table1.yaml ...)
and the scales they run at (scales.yaml).

A table file holds a title, the metric, the number of seeds the paper's medians are over,
`defaults` (train options of every row), optionally `scales` (those it may run at; default
all) and `rows`: each a name, its own train options, the paper's number (a percentage, or
"fail" where the paper reports above 20 %), an optional note and an optional group (the
rows the paper compares with one another, e.g. one network's placements: ranks are taken
within a group; default one group, the whole table). Train options are config
field names (config.py; `python -m gluon_resnet_v2.train` takes each with dashes), so a
row is exactly a training command and is checked as one: every row at every scale builds
its Config (types, choices, ranges) and resolves its network (the registry's checks)
before anything runs. Importing this module loads no MXNet.
"""
import os
import re
from dataclasses import dataclass
from typing import Optional, Tuple, Union

from ..cli import load_yaml
from ..config import ConfigError, field_sections, flag, template_fields
from ..errors import UserError
from ..data import DATASETS
from ..factory import model_overrides
from ..models import architecture, resolve

HERE = os.path.dirname(os.path.abspath(__file__))
SCALES_FILE = 'scales.yaml'
FAIL = 'fail'
NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.+-]*')
# fields a definition may not set: the runner names each run (its dir, its seed)
RUNNER_FIELDS = tuple(name for _, name in template_fields()) + ('seed',)


class DefinitionError(UserError):
    """A definition file that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class Row:
    name: str
    train: dict                      # config field -> value: the table's defaults + its own
    paper: Union[float, str, None]   # the paper's error %, FAIL, or None (not reported)
    note: str = ''
    group: str = ''                  # rows ranked together ('': the whole table)


@dataclass(frozen=True)
class Scale:
    name: str
    description: str
    train: dict                      # laid over every row
    fail_above: Optional[float]      # error % the paper calls "fail"; None: not applied
    compare: bool                    # numbers comparable to the paper's (differences shown)


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    metric: str
    seeds: int
    rows: Tuple[Row, ...]
    scales: Tuple[str, ...]          # the scales it may run at
    path: str

    def row_names(self):
        return [r.name for r in self.rows]


def table_names():
    """The tables shipped with the package (the YAML files here but scales.yaml)."""
    return sorted(f[:-5] for f in os.listdir(HERE)
                  if f.endswith('.yaml') and f != SCALES_FILE)


def table_path(name):
    """A table's file: a shipped table's name, or the path of a YAML file of one's own."""
    if name.endswith(('.yaml', '.yml')) or os.sep in name:
        if not os.path.isfile(name):
            raise DefinitionError('definition file %s does not exist: pass a table name (%s) '
                                  'or the path of a YAML file' % (name, ', '.join(table_names())))
        return name
    if name not in table_names():
        raise DefinitionError('unknown experiment %r: choose one of %s, or pass the path of a '
                              'YAML definition file' % (name, ', '.join(table_names())))
    return os.path.join(HERE, name + '.yaml')


def read_yaml(path):
    return load_yaml(path, 'definition file', 'of a table (title, rows, ...)',
                     DefinitionError, empty_ok=False)


def _mapping(value, where):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DefinitionError('%s must be a mapping of train options: fix the file' % where)
    unknown = sorted(set(value) - set(field_sections()))
    if unknown:
        raise DefinitionError('%s: unknown train option %s: use the config fields (python -m '
                              'gluon_resnet_v2.train --help, without the dashes)'
                              % (where, ', '.join(unknown)))
    bad = sorted(set(value) & set(RUNNER_FIELDS))
    if bad:
        raise DefinitionError('%s sets %s: the runner names each run (its dir, its seed), drop '
                              'it' % (where, ', '.join(bad)))
    return dict(value)


def load_scales(path=None):
    """{name: Scale} of scales.yaml."""
    path = path or os.path.join(HERE, SCALES_FILE)
    out = {}
    for name, spec in read_yaml(path).items():
        where = '%s scale %r' % (os.path.basename(path), name)
        if not isinstance(spec, dict):
            raise DefinitionError('%s must be a mapping: fix the file' % where)
        out[name] = Scale(name, ' '.join(str(spec.get('description', '')).split()),
                          _mapping(spec.get('train'), where + ' train'),
                          spec.get('fail_above'), bool(spec.get('compare')))
    return out


def load_table(name):
    """The Table of a shipped name or a file path, every row checked at every scale."""
    path = table_path(name)
    data, base = read_yaml(path), os.path.basename(path)
    stem = os.path.splitext(base)[0]
    defaults = _mapping(data.get('defaults'), '%s defaults' % base)
    rows, seen = [], set()
    for i, spec in enumerate(data.get('rows') or [], 1):
        rows.append(_row(spec, defaults, '%s row %d' % (base, i)))
        if rows[-1].name in seen:
            raise DefinitionError('%s: row name %r appears twice: make it unique'
                                  % (base, rows[-1].name))
        seen.add(rows[-1].name)
    if not rows:
        raise DefinitionError('%s has no rows: add a list `rows`' % base)
    seeds = data.get('seeds', 1)
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise DefinitionError('%s: seeds must be a positive integer, got %r' % (base, seeds))
    scales = load_scales()
    names = tuple(data.get('scales') or scales)
    unknown = sorted(set(names) - set(scales))
    if unknown:
        raise DefinitionError('%s: unknown scale %s: choose from %s'
                              % (base, ', '.join(unknown), ', '.join(scales)))
    table = Table(stem, str(data.get('title', stem)), str(data.get('metric', 'test error %')),
                  seeds, tuple(rows), names, path)
    for scale in names:
        for row in rows:
            check_row(table, row, scales[scale])
    return table


def _row(spec, defaults, where):
    if not isinstance(spec, dict) or not isinstance(spec.get('name'), str) \
            or not NAME.fullmatch(spec['name']):
        raise DefinitionError('%s needs a name of letters, digits, _ . + - (it names a folder): '
                              'fix the file' % where)
    where = '%s (%s)' % (where, spec['name'])
    unknown = sorted(set(spec) - {'name', 'train', 'paper', 'note', 'group'})
    if unknown:
        raise DefinitionError('%s: unknown key %s: a row has name, train, paper, note, group'
                              % (where, ', '.join(unknown)))
    group = spec.get('group', '')
    if not isinstance(group, str):
        raise DefinitionError('%s: group must be a text (the rows ranked together), got %r'
                              % (where, group))
    paper = spec.get('paper')
    if not (paper is None or paper == FAIL or
            (isinstance(paper, (int, float)) and not isinstance(paper, bool))):
        raise DefinitionError('%s: paper must be a number (error %%) or "fail", got %r'
                              % (where, paper))
    train = layer(defaults, _mapping(spec.get('train'), where + ' train'))
    return Row(spec['name'], train, paper, str(spec.get('note') or ''), group)


def layer(*parts):
    """Train options merged left to right; a later part's length (max_iters or epochs)
    replaces an earlier part's other one, as a flag replaces a config file's."""
    out = {}
    for part in parts:
        for a, b in (('max_iters', 'epochs'), ('epochs', 'max_iters')):
            if part.get(a) is not None:
                out.pop(b, None)
        out.update({k: v for k, v in part.items() if v is not None})
    return out


def row_settings(row, scale, extra=None):
    """The train options of a row at a scale, with `extra` (device and data options of the
    command line) on top."""
    return layer(row.train, scale.train, extra or {})


def build(settings, run_dir, seed):
    """The Config of one run (cli.build_config: the train command's own path)."""
    from ..cli import build_config
    return build_config(None, dict(settings, run_dir=run_dir, seed=seed))


def check_row(table, row, scale):
    """A row at a scale must make a valid config and a network the registry builds."""
    try:
        cfg = build(row_settings(row, scale), 'unused', 0)
        check_network(cfg)
    except ConfigError as e:
        raise DefinitionError('%s row %s at scale %s: %s' % (os.path.basename(table.path),
                                                               row.name, scale.name, e))


def check_network(cfg):
    """The registry's checks of the model options, without building (no MXNet)."""
    m, family = cfg.model, DATASETS[cfg.data.dataset].family
    kw = model_overrides(m, m.classes)
    try:
        if not m.model:
            resolve(m.depth, family, m.version, **kw)
            return
        arch = architecture(m.model)
        if arch['family'] != family:
            raise ValueError('%s is a network of the %s family and %s a dataset of the %s '
                             'family: choose a %s network' % (m.model, arch['family'],
                                                              cfg.data.dataset, family, family))
        resolve(**dict(arch, **kw))
    except ValueError as e:
        raise ConfigError(str(e)) from None


def train_argv(settings):
    """The command-line options of `python -m gluon_resnet_v2.train` for train options."""
    argv = []
    for name, value in settings.items():
        if isinstance(value, bool):
            argv.append(flag(name) if value else '--no-' + flag(name)[2:])
        elif isinstance(value, (list, tuple)):
            argv += [flag(name), ','.join(map(str, value))]
        else:
            argv += [flag(name), str(value)]
    return argv
