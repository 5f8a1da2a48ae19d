"""Run configuration: one frozen dataclass per concern, defaults = the paper's recipe.

The click CLI (`gluon_resnet_v2.train`) mirrors these fields 1:1 (option name = field
name with dashes, help = the field's comment), a `--config run.yaml` file fills them,
and the resolved config is written into the run directory and every checkpoint.
Invariants are checked in `__post_init__` with messages meant for the user; they raise
`ConfigError`, which the CLI turns into a one-line error and exit code 2.
"""
from dataclasses import asdict, dataclass, field, fields
from typing import Optional, Tuple

from .errors import UserError


class ConfigError(UserError):
    """A user-facing configuration problem; the message names the problem and the fix."""


DATASETS = ('cifar10', 'cifar100', 'cifar10-sample', 'folder', 'imagenet')


@dataclass(frozen=True)
class DataConfig:
    dataset: str = 'cifar10'          # cifar10 | cifar100 | cifar10-sample (embedded) | folder | imagenet
    data_dir: Optional[str] = None    # dataset folder (default ~/.mxnet/datasets/<dataset>)
    download: bool = False            # fetch CIFAR from the official source (checksum-verified) if missing
    subset: Optional[int] = None      # train on the first N training images only (quick runs)
    num_workers: int = 2              # background workers that decode/augment batches (0 = in the main thread)
    pad: int = 4                      # CIFAR: zero padding (pixels) before the random 32x32 crop
    crop_size: int = 224              # ImageNet: training crop (pixels)
    test_crop: int = 224              # ImageNet: centre test crop after resizing the shorter side to it (paper: 320)

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ConfigError('unknown dataset %r: choose one of %s'
                              % (self.dataset, ', '.join(DATASETS)))
        if self.subset is not None and self.subset < 1:
            raise ConfigError('--subset must be a positive number of images, got %d' % self.subset)
        if self.num_workers < 0:
            raise ConfigError('--num-workers must be >= 0, got %d' % self.num_workers)


@dataclass(frozen=True)
class ModelConfig:
    depth: int = 110                  # network depth; picks cifar_resnet{depth} or resnet{depth} (ImageNet)
    model: Optional[str] = None       # a registry name (overrides --depth), e.g. cifar_resnet164_v2
    version: str = 'v2'               # v1 = original unit (Fig. 4a), v2 = full pre-activation (Fig. 4e)
    block: Optional[str] = None       # basic | bottleneck | 1layer (default: the paper's choice for the depth)
    shortcut: str = 'identity'        # Table 1 variant: identity | scale | gate_exclusive | gate_shortcut | conv1x1 | dropout
    placement: Optional[str] = None   # Table 2 placement (default: from --version)
    projection: str = 'B'             # where a unit changes dimensions: B = 1x1 conv, A = zero padding
    scale: float = 0.5                # lambda of the 'scale' shortcut
    scale_residual: bool = False      # 'scale' shortcut: also scale F by 1 - lambda
    gate_bias: float = -6.0           # initial b_g of the gating shortcuts
    drop_rate: float = 0.5            # dropout rate of the 'dropout' shortcut
    classes: Optional[int] = None     # output classes (default: the dataset's)

    def __post_init__(self):
        if self.version not in ('v1', 'v2'):
            raise ConfigError('unknown version %r: choose v1 or v2' % self.version)


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = 'nag'            # nag (Nesterov, as the notes) | sgd (heavy-ball momentum)
    lr: float = 0.1                   # base learning rate
    momentum: float = 0.9             # momentum
    wd: float = 1e-4                  # weight decay
    batch_size: int = 128             # global mini-batch, split across devices
    warmup_iters: int = 400           # iterations at --warmup-lr before the base rate (paper: 400; 0 = none)
    warmup_lr: float = 0.01           # constant learning rate during warm-up
    lr_steps: Tuple[int, ...] = (32000, 48000)  # iterations at which the rate is multiplied by --lr-factor
    lr_factor: float = 0.1            # step decay factor
    max_iters: int = 64000            # training length in iterations
    epochs: Optional[int] = None      # alternative to --max-iters: train this many epochs
    dtype: str = 'float32'            # float32 | float16 (with multi-precision master weights)

    def __post_init__(self):
        if self.optimizer not in ('nag', 'sgd'):
            raise ConfigError('unknown optimizer %r: choose nag or sgd' % self.optimizer)
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
        if self.dtype not in ('float32', 'float16'):
            raise ConfigError('unknown dtype %r: choose float32 or float16' % self.dtype)
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError('--epochs must be positive, got %d' % self.epochs)


KVSTORES = ('device', 'local', 'nccl', 'dist_sync', 'dist_device_sync', 'dist_async', 'None')


@dataclass(frozen=True)
class RunConfig:
    gpus: Tuple[int, ...] = ()        # GPU ids, e.g. 0,1 (empty: CPU)
    cpus: int = 1                     # number of CPU contexts when no GPU is given (multi-device on CPU)
    kvstore: str = 'device'           # gradient aggregation: device | local | nccl | dist_sync | dist_device_sync | None
    seed: int = 0                     # seed of weights, data order and augmentation
    hybridize: bool = True            # compile the network (static_alloc, static_shape)
    run_dir: str = 'runs/default'     # where config, log.jsonl, checkpoints and curves.png go
    resume: bool = True               # continue from the run dir's latest checkpoint if there is one
    log_interval: int = 50            # iterations between training-log lines (each is a host sync)
    eval_interval: int = 1000         # iterations between test-set evaluations (0 = only at the end)
    checkpoint_interval: int = 1000   # iterations between checkpoints (0 = only at the end)

    def __post_init__(self):
        if self.kvstore not in KVSTORES:
            raise ConfigError('unknown kvstore %r: choose one of %s' % (self.kvstore, ', '.join(KVSTORES)))
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
        for f in fields(cls):
            sub, section = f.default_factory, d.get(f.name) or {}
            if not isinstance(section, dict):
                raise ConfigError('config section %r must be a mapping' % f.name)
            known = {x.name for x in fields(sub)}
            unknown = sorted(set(section) - known)
            if unknown:
                raise ConfigError('unknown %s option(s) %s in config: valid are %s'
                                  % (f.name, ', '.join(unknown), ', '.join(sorted(known))))
            parts[f.name] = sub(**{k: tuple(v) if isinstance(v, list) else v for k, v in section.items()})
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError('unknown config section(s) %s: valid are model, data, optim, run'
                              % ', '.join(unknown))
        return cls(**parts)
