"""Run configuration: one frozen dataclass per concern, defaults = the paper's recipe.

Each field is declared with `option(default, help, ...)`: its help text, the table its
value must come from (`choices`), its valid range (`valid`, e.g. '[0, 1)'), whether a
resumed run must keep it (`frozen`) and whether a config file used as a template may set
it (`template`; not for the fields that name one run) live in the field's metadata. The
command line (cli.py) builds one option per field from them (option name = field name
with dashes), validation reads the same choices and ranges, and resuming compares the
frozen fields; a `--config run.yaml` file fills the fields (`Config.from_dict` checks
each value's type), and the resolved config is written into the run directory and every
checkpoint. Every section checks its fields' choices and ranges, and that floats are
finite, in `Section.__post_init__`; rules between fields follow in the section's own
`__post_init__`. They raise `ConfigError` with messages meant for the user, which the CLI
turns into a one-line error and exit code 2.

The shortcut parameters of the model (scale, gate_bias, ...) are not written out here:
they are models.tables.SHORTCUT_OPTIONS, one field each.
"""
import math
import re
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, make_dataclass
from typing import Optional, Tuple

from .data import DATASETS
from .errors import UserError
from .models.tables import BLOCKS, PLACEMENTS, SHORTCUT_OPTIONS, SHORTCUTS, VERSIONS


class ConfigError(UserError):
    """A user-facing configuration problem; the message names the problem and the fix."""


class Interval:
    """A field's valid range, written as in mathematics: '[0, 1)', '(0, 1]', '[1, inf)',
    '[0, 2**32)'; a square bracket includes the end, a round one excludes it, inf is
    unbounded. For a tuple field the range holds for every element."""

    def __init__(self, text):
        m = re.fullmatch(r'([\[(])\s*([^,]+?)\s*,\s*([^,]+?)\s*([\])])', text.strip())
        if not m:
            raise ValueError('invalid range %r: write it as [lo, hi), (lo, hi], ...' % text)
        self.text = text
        self.lo, self.hi = _number(m[2]), _number(m[3])
        self.lo_closed, self.hi_closed = m[1] == '[', m[4] == ']'

    def __contains__(self, value):
        above = self.lo <= value if self.lo_closed else self.lo < value
        below = value <= self.hi if self.hi_closed else value < self.hi
        return above and below

    def describe(self):
        """'>= 1' for a range without an upper end, else 'in [0, 1)'."""
        if self.hi == math.inf:
            return '%s %s' % ('>=' if self.lo_closed else '>', _plain(self.lo))
        return 'in ' + self.text


def _number(token):
    """'inf', '-inf', '2**32', '0.5' or '3' as a number."""
    if '**' in token:
        base, power = token.split('**')
        return int(base) ** int(power)
    return float(token) if token.lstrip('-') == 'inf' or '.' in token or 'e' in token \
        else int(token)


def _plain(number):
    return '%g' % number if isinstance(number, float) else str(number)


def option(default, help, choices=None, frozen=False, valid=None, template=True):
    """A config field: its default, its help text (the CLI option's), the table its value
    must come from (any container of names; None = free), its valid range (an Interval's
    text, e.g. '[0, 1)'; None = any value of its type), whether a resumed run must keep it
    (`frozen`: model, data and recipe; the rest may change on resume) and whether a
    `--config` file may set it (`template=False`: the field names one run, such as its
    directory, so a run's own config.yaml used as a template must not bring it back)."""
    return field(default=default, metadata=dict(help=help, choices=choices, frozen=frozen,
                                                valid=Interval(valid) if valid else None,
                                                template=template))


def flag(name):
    """The command-line option of a field: --field-name."""
    return '--' + name.replace('_', '-')


class Section:
    """Checks every config section shares, each read from the field's declaration: a value
    outside its field's table or range is refused, and so is a float that is NaN or
    infinite."""

    def __post_init__(self):
        for f in fields(self):
            value, choices = getattr(self, f.name), f.metadata.get('choices')
            if choices is not None and value is not None and value not in choices:
                raise ConfigError('unknown %s %r: choose one of %s'
                                  % (f.name, value, ', '.join(map(str, choices))))
            for v in value if isinstance(value, tuple) else (value,):
                _check_number(f, v, isinstance(value, tuple))


def _check_number(f, value, element):
    """One value (or one element of a tuple field) against its field's range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    valid = f.metadata.get('valid')
    use = ('use values %s' if element else 'use a value %s') % valid.describe() if valid else \
        'use a finite number'
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError('%s %s is not a finite number: %s' % (flag(f.name), value, use))
    if valid and value not in valid:
        raise ConfigError('%s %s is out of range: %s' % (flag(f.name), value, use))


@dataclass(frozen=True)
class DataConfig(Section):
    dataset: str = option('cifar10', 'dataset (data.DATASETS; cifar10-sample: the embedded '
                          '6,000-image sample of CIFAR-10)', DATASETS, frozen=True)
    data_dir: Optional[str] = option(None, 'dataset folder (default ~/.mxnet/datasets/<dataset>)')
    download: bool = option(False, 'fetch CIFAR from the official source (checksum-verified) '
                            'if missing')
    subset: Optional[int] = option(None, 'train on the first N training images only (quick runs)',
                                   frozen=True, valid='[1, inf)')
    val_size: Optional[int] = option(None, 'hold out N training images as a validation split '
                                     '(deterministic; the log gets val_err)', frozen=True,
                                     valid='[1, inf)')
    num_workers: int = option(2, 'background workers that decode/augment batches (0 = in the '
                              'main thread)', valid='[0, inf)')
    # below the crop: the training images (the dataset's input size) must still be the crop
    pad: int = option(4, 'CIFAR: zero padding (pixels) before the random 32x32 crop', frozen=True,
                      valid='[0, inf)')
    crop_size: int = option(224, 'ImageNet: training crop (pixels)', frozen=True, valid='[1, inf)')
    test_crop: int = option(224, 'ImageNet: centre test crop after resizing the shorter side to '
                            'it (paper: 320)', valid='[1, inf)')

    def __post_init__(self):
        super().__post_init__()
        # the crop's size where the config alone knows it (CIFAR: 32); for image folders it
        # is the images' own size, known once the data is read
        size = DATASETS[self.dataset].input_size(self)
        if size is not None and self.pad >= size:
            raise ConfigError('--pad %d is not smaller than the %d-pixel crop of %s: use a value '
                              'in [0, %d)' % (self.pad, size, self.dataset, size))


@dataclass(frozen=True)
class _Architecture(Section):
    depth: int = option(110, 'network depth; picks cifar_resnet{depth} or resnet{depth} '
                        '(ImageNet)', frozen=True)
    model: Optional[str] = option(None, 'a registry name (overrides --depth), e.g. '
                                  'cifar_resnet164_v2', frozen=True)
    version: str = option('v2', 'v1 = original unit (Fig. 4a), v2 = full pre-activation '
                          '(Fig. 4e)', VERSIONS, frozen=True)
    block: Optional[str] = option(None, 'residual branch (default: the paper\'s choice for the '
                                  'depth)', BLOCKS, frozen=True)
    shortcut: str = option('identity', 'Table 1 shortcut variant', SHORTCUTS, frozen=True)
    placement: Optional[str] = option(None, 'Table 2 activation placement (default: from '
                                      '--version)', PLACEMENTS, frozen=True)
    projection: str = option('B', 'where a unit changes dimensions: B = 1x1 conv, A = zero '
                             'padding', ('A', 'B'), frozen=True)


# Valid ranges of the shortcut parameters of models.tables.SHORTCUT_OPTIONS (an option
# without an entry takes any finite value of its type).
SHORTCUT_RANGES = {'scale': '(0, inf)', 'drop_rate': '[0, 1)'}

# The model section: the architecture, then one field per shortcut parameter of the table
# (so a new shortcut option is a config field and a CLI option without more code), then
# the classes.
ModelConfig = make_dataclass(
    'ModelConfig',
    [(name, o.type, option(o.default, o.help, frozen=True, valid=SHORTCUT_RANGES.get(name)))
     for name, o in SHORTCUT_OPTIONS.items()] +
    [('classes', Optional[int], option(None, "output classes (default: the dataset's)",
                                       frozen=True, valid='[1, inf)'))],
    bases=(_Architecture,), frozen=True,
    namespace={'__module__': __name__, '__doc__': 'The network: architecture and ablation.'})


@dataclass(frozen=True)
class OptimConfig(Section):
    optimizer: str = option('nag', 'nag (Nesterov, as the notes) | sgd (heavy-ball momentum)',
                            ('nag', 'sgd'), frozen=True)
    lr: float = option(0.1, 'base learning rate', frozen=True, valid='(0, inf)')
    momentum: float = option(0.9, 'momentum', frozen=True, valid='[0, 1)')
    wd: float = option(1e-4, 'weight decay', frozen=True, valid='[0, inf)')
    batch_size: int = option(128, 'global mini-batch, split across devices', frozen=True,
                             valid='[1, inf)')
    warmup_iters: int = option(400, 'iterations at --warmup-lr before the base rate (paper: 400; '
                               '0 = none)', frozen=True, valid='[0, inf)')
    warmup_lr: float = option(0.01, 'learning rate of the warm-up (linear: its first '
                              'iteration\'s)', frozen=True, valid='(0, inf)')
    warmup_mode: str = option('constant', 'constant: --warmup-lr throughout (the paper) | '
                              'linear: from --warmup-lr up to --lr (no jump at the switch; '
                              'for short schedules)', ('constant', 'linear'), frozen=True)
    lr_steps: Tuple[int, ...] = option((32000, 48000), 'iterations at which the rate is '
                                       'multiplied by --lr-factor', frozen=True, valid='[1, inf)')
    lr_factor: float = option(0.1, 'step decay factor', frozen=True, valid='(0, 1]')
    max_iters: int = option(64000, 'training length in iterations', valid='[1, inf)')
    epochs: Optional[int] = option(None, 'alternative to --max-iters: train this many epochs',
                                   valid='[1, inf)')
    dtype: str = option('float32', 'float32 | float16 (GPUs: float32 master weights, loss '
                        'scaling) | bfloat16 (CPUs with AVX512-BF16: convolutions and the '
                        'classifier in bfloat16, weights, optimizer and loss in float32)',
                        ('float32', 'float16', 'bfloat16'), frozen=True)

    def __post_init__(self):
        super().__post_init__()
        if self.warmup_iters and self.warmup_lr > self.lr:
            raise ConfigError('--warmup-lr %g must be in (0, --lr %g]: lower --warmup-lr or pass '
                              '--warmup-iters 0' % (self.warmup_lr, self.lr))
        if list(self.lr_steps) != sorted(set(self.lr_steps)):
            raise ConfigError('--lr-steps must be increasing positive iterations, e.g. '
                              '32000,48000; got %s' % ','.join(map(str, self.lr_steps)))

    def total_iters(self, steps_per_epoch):
        """The run's length in iterations: --epochs if given, else --max-iters."""
        return self.epochs * steps_per_epoch if self.epochs else self.max_iters


KVSTORES = ('device', 'local', 'nccl', 'dist_sync', 'dist_device_sync', 'dist_async', 'None')


@dataclass(frozen=True)
class RunConfig(Section):
    gpus: Tuple[int, ...] = option((), 'GPU ids, e.g. 0,1 (empty: CPU)', valid='[0, inf)')
    # measured on 2 cores (README, Benchmarks; scripts/bench_cpus.py): the contexts run one
    # after another, so splitting the batch rarely pays; one context is the default
    cpus: int = option(1, 'number of CPU contexts when no GPU is given; each takes an equal '
                       'share of the batch (and normalises its own BN share), and they run '
                       'one after another on all cores: for multi-device code, not for '
                       'speed (2 contexts measured 0.85-1.13x the speed of one, by network '
                       'and CPU; scripts/bench_cpus.py tells for yours)', valid='[1, inf)')
    kvstore: str = option('device', 'gradient aggregation', KVSTORES)
    seed: int = option(0, 'seed of weights, data order and augmentation', frozen=True,
                       valid='[0, 2**32)')              # MXNet's and numpy's seed range
    deterministic: bool = option(False, 'bit-reproducible runs: native kernels, one OpenMP '
                                 'thread, data in the main thread (about 4x slower)', frozen=True)
    hybridize: bool = option(True, 'compile the network (static_alloc, static_shape)')
    sync_bn: bool = option(False, 'BatchNorm statistics over the batch of all devices, not each '
                           "device's share (SyncBatchNorm; GPUs only, float32): for small "
                           'per-device batches', frozen=True)
    # not frozen: the same numbers either way, so a run may resume with or without it
    memory_saving: bool = option(False, 'train through the graph executor, recomputing most '
                                 'forward results in backward (memory.py; ResNet-1001 batch '
                                 '128: 19.3 -> 3.1 GB, 0.7x the speed; same numbers)')
    # the fields that name one run are not taken from a --config file (template=False)
    run_dir: str = option('runs/default', 'where config, log.jsonl, checkpoints and curves.png go '
                          '(created with its parent folders)', template=False)
    resume: bool = option(True, "continue from the run dir's latest checkpoint if there is one",
                          template=False)
    resume_from: str = option('latest', 'checkpoint a resume continues from: latest, or best '
                              '(the lowest validation/test error; the log after it is set '
                              'aside, e.g. after a divergence or a damaged latest checkpoint)',
                              ('latest', 'best'), template=False)
    restart: bool = option(False, "move the run dir's old contents aside (to <run_dir>.old-<time>) "
                           'and start afresh', template=False)
    log_interval: int = option(50, 'iterations between training-log lines (each is a host sync)',
                               valid='[1, inf)')
    eval_interval: int = option(1000, 'iterations between test-set evaluations (0 = only at the '
                                'end)', valid='[0, inf)')
    checkpoint_interval: int = option(1000, 'iterations between checkpoints (0 = only at the end)',
                                      valid='[0, inf)')

    def __post_init__(self):
        super().__post_init__()
        if self.sync_bn and not self.gpus:
            # measured: MXNet's SyncBatchNorm blocks an engine thread at each BN layer until
            # every device has arrived; CPU contexts share one worker pool and one pool of
            # temporary memory, so the devices wait on each other for ever
            raise ConfigError('--sync-bn needs --gpus: on CPU contexts MXNet\'s SyncBatchNorm '
                              'deadlocks; drop --sync-bn (each device then normalises its own '
                              'share of the batch)')


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        """Build from nested dicts (a config.yaml); unknown keys and values of the wrong type
        (checked against the fields' types: YAML lists become tuples, an integer is a
        fine float, a bool is no integer) are ConfigErrors naming the key."""
        parts = {}
        for name, sub in sections(cls).items():
            section = d.get(name) or {}
            if not isinstance(section, dict):
                raise ConfigError('config section %r must be a mapping' % name)
            known = {x.name: x for x in fields(sub)}
            unknown = sorted(set(section) - set(known))
            if unknown:
                raise ConfigError('unknown %s option(s) %s in config: valid are %s'
                                  % (name, ', '.join(unknown), ', '.join(sorted(known))))
            parts[name] = sub(**{k: typed('%s.%s' % (name, k), known[k].type, v)
                                 for k, v in section.items()})
        unknown = sorted(set(d) - set(parts))
        if unknown:
            raise ConfigError('unknown config section(s) %s: valid are %s'
                              % (', '.join(unknown), ', '.join(parts)))
        return cls(**parts)


KINDS = {bool: 'true or false', int: 'an integer', float: 'a number', str: 'a string',
         tuple: 'a list of integers'}


def typed(key, kind, value):
    """`value` as a field of type `kind` holds it, or a ConfigError naming `key`."""
    if typing.get_origin(kind) is typing.Union:              # Optional[X]
        if value is None:
            return None
        kind = [a for a in typing.get_args(kind) if a is not type(None)][0]
    base = typing.get_origin(kind) or kind
    if base is tuple and isinstance(value, (list, tuple)) and all(_is(int, v) for v in value):
        return tuple(value)
    if base is not tuple and _is(base, value):
        return float(value) if base is float else value
    if base not in KINDS:              # a type this check does not know: the dataclass's job
        return value
    got = 'null' if value is None else '%r (%s)' % (value, type(value).__name__)
    raise ConfigError('config key %s is %s, expected %s: fix the config file'
                      % (key, got, KINDS[base]))


def _is(kind, value):
    """isinstance, where a bool is no number and an int is a float."""
    if isinstance(value, bool):
        return kind is bool
    return isinstance(value, (int, float) if kind is float else kind)


def sections(cls=Config):
    """{section name: its dataclass} of a config class."""
    return {f.name: f.default_factory for f in fields(cls)}


def field_sections(cls=Config):
    """{field name: section name}; field names must be unique across sections (each is
    one command-line option), so a duplicate is a ValueError."""
    out = {}
    for name, sub in sections(cls).items():
        for f in fields(sub):
            if f.name in out:
                raise ValueError('config field %r is in sections %s and %s: field names must be '
                                 'unique (each is one command-line option)'
                                 % (f.name, out[f.name], name))
            out[f.name] = name
    return out


def template_fields(cls=Config):
    """[(section, field)] that name one run (their metadata says template=False): a
    --config file does not set them."""
    return [(name, f.name) for name, sub in sections(cls).items() for f in fields(sub)
            if not f.metadata.get('template', True)]


def frozen_fields(cls=Config):
    """[(section, field)] a resumed run must keep (their metadata says frozen)."""
    return [(name, f.name) for name, sub in sections(cls).items() for f in fields(sub)
            if f.metadata.get('frozen')]


def differences(saved, current, keys):
    """[(section, field, saved value, current value)] of the (section, field) `keys` where
    two configs' dicts differ; a field `saved` predates had its default then."""
    defaults, out = Config().to_dict(), []
    for section, key in keys:
        old = saved.get(section, {}).get(key, defaults[section][key])
        new = current[section].get(key)
        if isinstance(old, list):
            old = tuple(old)
        if old != new:
            out.append((section, key, old, new))
    return out


def field_default(f):
    return f.default if f.default is not MISSING else f.default_factory()
