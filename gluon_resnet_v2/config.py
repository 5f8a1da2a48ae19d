"""Run configuration: one frozen dataclass per concern, defaults = the paper's recipe.

The click CLI (`gluon_resnet_v2.train`) mirrors these fields 1:1 (option name = field
name with dashes, help = the field's comment), a `--config run.yaml` file fills them,
and the resolved config is written into the run directory and every checkpoint.
Invariants are checked in `__post_init__` with messages meant for the user; they raise
`ConfigError`, which the CLI turns into a one-line error and exit code 2.
"""
from dataclasses import asdict, dataclass, field, fields
from typing import Optional, Tuple


class ConfigError(ValueError):
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
