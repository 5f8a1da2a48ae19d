"""Run configuration: one frozen dataclass per concern, defaults = the paper's recipe.

Each field is declared with `option(default, help, ...)`: its help text, the table its
value must come from (`choices`) and whether a resumed run must keep it (`frozen`) live
in the field's metadata. The command line (cli.py) builds one option per field from
them (option name = field name with dashes), validation reads the same choices, and
resuming compares the frozen fields; a `--config run.yaml` file fills the fields, and
the resolved config is written into the run directory and every checkpoint. Invariants
are checked in `__post_init__` with messages meant for the user; they raise
`ConfigError`, which the CLI turns into a one-line error and exit code 2.

The shortcut parameters of the model (scale, gate_bias, ...) are not written out here:
they are models.tables.SHORTCUT_OPTIONS, one field each.
"""
from dataclasses import MISSING, asdict, dataclass, field, fields, make_dataclass
from typing import Optional, Tuple

from .data import DATASETS
from .errors import UserError
from .models.tables import BLOCKS, PLACEMENTS, SHORTCUT_OPTIONS, SHORTCUTS, VERSIONS


class ConfigError(UserError):
    """A user-facing configuration problem; the message names the problem and the fix."""


def option(default, help, choices=None, frozen=False):
    """A config field: its default, its help text (the CLI option's), the table its value
    must come from (any container of names; None = free) and whether a resumed run must
    keep it (`frozen`: model, data and recipe; the rest may change on resume)."""
    return field(default=default, metadata=dict(help=help, choices=choices, frozen=frozen))


class Section:
    """Checks every config section shares: a value outside its field's table is refused."""

    def __post_init__(self):
        for f in fields(self):
            value, choices = getattr(self, f.name), f.metadata.get('choices')
            if choices is not None and value is not None and value not in choices:
                raise ConfigError('unknown %s %r: choose one of %s'
                                  % (f.name, value, ', '.join(map(str, choices))))


@dataclass(frozen=True)
class DataConfig(Section):
    dataset: str = option('cifar10', 'dataset (data.DATASETS; cifar10-sample: the embedded '
                          '6,000-image sample of CIFAR-10)', DATASETS, frozen=True)
    data_dir: Optional[str] = option(None, 'dataset folder (default ~/.mxnet/datasets/<dataset>)')
    download: bool = option(False, 'fetch CIFAR from the official source (checksum-verified) '
                            'if missing')
    subset: Optional[int] = option(None, 'train on the first N training images only (quick runs)',
                                   frozen=True)
    num_workers: int = option(2, 'background workers that decode/augment batches (0 = in the '
                              'main thread)')
    pad: int = option(4, 'CIFAR: zero padding (pixels) before the random 32x32 crop', frozen=True)
    crop_size: int = option(224, 'ImageNet: training crop (pixels)', frozen=True)
    test_crop: int = option(224, 'ImageNet: centre test crop after resizing the shorter side to '
                            'it (paper: 320)')

    def __post_init__(self):
        super().__post_init__()
        if self.subset is not None and self.subset < 1:
            raise ConfigError('--subset must be a positive number of images, got %d' % self.subset)
        if self.num_workers < 0:
            raise ConfigError('--num-workers must be >= 0, got %d' % self.num_workers)


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


# The model section: the architecture, then one field per shortcut parameter of the table
# (so a new shortcut option is a config field and a CLI option without more code), then
# the classes.
ModelConfig = make_dataclass(
    'ModelConfig',
    [(name, o.type, option(o.default, o.help, frozen=True))
     for name, o in SHORTCUT_OPTIONS.items()] +
    [('classes', Optional[int], option(None, "output classes (default: the dataset's)",
                                       frozen=True))],
    bases=(_Architecture,), frozen=True,
    namespace={'__module__': __name__, '__doc__': 'The network: architecture and ablation.'})


@dataclass(frozen=True)
class OptimConfig(Section):
    optimizer: str = option('nag', 'nag (Nesterov, as the notes) | sgd (heavy-ball momentum)',
                            ('nag', 'sgd'), frozen=True)
    lr: float = option(0.1, 'base learning rate', frozen=True)
    momentum: float = option(0.9, 'momentum', frozen=True)
    wd: float = option(1e-4, 'weight decay', frozen=True)
    batch_size: int = option(128, 'global mini-batch, split across devices', frozen=True)
    warmup_iters: int = option(400, 'iterations at --warmup-lr before the base rate (paper: 400; '
                               '0 = none)', frozen=True)
    warmup_lr: float = option(0.01, 'constant learning rate during warm-up', frozen=True)
    lr_steps: Tuple[int, ...] = option((32000, 48000), 'iterations at which the rate is '
                                       'multiplied by --lr-factor', frozen=True)
    lr_factor: float = option(0.1, 'step decay factor', frozen=True)
    max_iters: int = option(64000, 'training length in iterations')
    epochs: Optional[int] = option(None, 'alternative to --max-iters: train this many epochs')
    dtype: str = option('float32', 'float32 | float16 (with multi-precision master weights)',
                        ('float32', 'float16'), frozen=True)

    def __post_init__(self):
        super().__post_init__()
        if self.batch_size < 1 or self.max_iters < 1 or self.lr <= 0:
            raise ConfigError('--batch-size, --max-iters and --lr must be positive')
        if self.warmup_iters < 0:
            raise ConfigError('--warmup-iters must be >= 0, got %d' % self.warmup_iters)
        if self.warmup_iters and not 0 < self.warmup_lr <= self.lr:
            raise ConfigError('--warmup-lr %g must be in (0, --lr %g]: lower --warmup-lr or pass '
                              '--warmup-iters 0' % (self.warmup_lr, self.lr))
        if list(self.lr_steps) != sorted(set(self.lr_steps)) or any(s <= 0 for s in self.lr_steps):
            raise ConfigError('--lr-steps must be increasing positive iterations, e.g. 32000,48000; '
                              'got %s' % ','.join(map(str, self.lr_steps)))
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError('--epochs must be positive, got %d' % self.epochs)

    def total_iters(self, steps_per_epoch):
        """The run's length in iterations: --epochs if given, else --max-iters."""
        return self.epochs * steps_per_epoch if self.epochs else self.max_iters


KVSTORES = ('device', 'local', 'nccl', 'dist_sync', 'dist_device_sync', 'dist_async', 'None')


@dataclass(frozen=True)
class RunConfig(Section):
    gpus: Tuple[int, ...] = option((), 'GPU ids, e.g. 0,1 (empty: CPU)')
    cpus: int = option(1, 'number of CPU contexts when no GPU is given (multi-device on CPU)')
    kvstore: str = option('device', 'gradient aggregation', KVSTORES)
    seed: int = option(0, 'seed of weights, data order and augmentation', frozen=True)
    hybridize: bool = option(True, 'compile the network (static_alloc, static_shape)')
    run_dir: str = option('runs/default', 'where config, log.jsonl, checkpoints and curves.png go')
    resume: bool = option(True, "continue from the run dir's latest checkpoint if there is one")
    log_interval: int = option(50, 'iterations between training-log lines (each is a host sync)')
    eval_interval: int = option(1000, 'iterations between test-set evaluations (0 = only at the '
                                'end)')
    checkpoint_interval: int = option(1000, 'iterations between checkpoints (0 = only at the end)')

    def __post_init__(self):
        super().__post_init__()
        if self.cpus < 1:
            raise ConfigError('--cpus must be >= 1, got %d' % self.cpus)
        if self.log_interval < 1 or self.eval_interval < 0 or self.checkpoint_interval < 0:
            raise ConfigError('--log-interval must be >= 1; --eval-interval and '
                              '--checkpoint-interval must be >= 0')


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
        """Build from nested dicts (a config.yaml); unknown keys are a ConfigError."""
        parts = {}
        for name, sub in sections(cls).items():
            section = d.get(name) or {}
            if not isinstance(section, dict):
                raise ConfigError('config section %r must be a mapping' % name)
            known = {x.name for x in fields(sub)}
            unknown = sorted(set(section) - known)
            if unknown:
                raise ConfigError('unknown %s option(s) %s in config: valid are %s'
                                  % (name, ', '.join(unknown), ', '.join(sorted(known))))
            parts[name] = sub(**{k: tuple(v) if isinstance(v, list) else v for k, v in section.items()})
        unknown = sorted(set(d) - set(parts))
        if unknown:
            raise ConfigError('unknown config section(s) %s: valid are %s'
                              % (', '.join(unknown), ', '.join(parts)))
        return cls(**parts)


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


def frozen_fields(cls=Config):
    """[(section, field)] a resumed run must keep (their metadata says frozen)."""
    return [(name, f.name) for name, sub in sections(cls).items() for f in fields(sub)
            if f.metadata.get('frozen')]


def field_default(f):
    return f.default if f.default is not MISSING else f.default_factory()
