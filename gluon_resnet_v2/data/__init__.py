"""Data pipeline: CIFAR-10/100, image folders, the embedded CIFAR-10 sample, ImageNet .rec.

    data = build_data(DataConfig(dataset='cifar10', download=True))
    for x, y in data.train_batches(128, seed=0, epoch=3, start=k):   # resume at batch k
        ...
    data.close()

Every batch is a pure function of (seed, epoch, batch index) — see loader.py — so a run
resumed at batch k reproduces an uninterrupted one bit for bit, for any num_workers.
Every user-facing problem raises DataError with a one-line message and its fix.

DATASETS is the one table of datasets: a new dataset is one entry here (its loader
returns a `BatchSource`, base.py). The config, the trainers and export read it. This
module imports no image or array library itself: the config reads the table without them.
"""
import os
from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class DatasetSpec:
    load: Callable            # (DataConfig, data folder) -> BatchSource
    family: str               # the network family it trains (models.tables.FAMILIES)
    classes: Optional[int]    # number of classes, None: read from the data
    input_size: Callable      # (DataConfig) -> side of the network's input, None: the images'
    augmentation: str         # what its training batches get (documentation)
    uses_data_dir: bool = True


def _common(cfg):
    """Loader arguments every dataset takes from a DataConfig."""
    return dict(subset=cfg.subset, num_workers=cfg.num_workers, val_size=cfg.val_size)


def _cifar(cfg, data_dir):
    from .cifar import load_cifar
    return load_cifar(cfg.dataset, data_dir, cfg.download, pad=cfg.pad, **_common(cfg))


def _sample(cfg, data_dir):
    from .folder import load_sample
    return load_sample(pad=cfg.pad, **_common(cfg))


def _folder(cfg, data_dir):
    from .folder import load_folder
    return load_folder('folder', data_dir, pad=cfg.pad, **_common(cfg))


def _imagenet(cfg, data_dir):
    from .imagenet import RecordData         # imports mxnet: only when asked for
    return RecordData(data_dir, crop_size=cfg.crop_size, test_crop=cfg.test_crop,
                      **_common(cfg))


PAD_CROP_FLIP = 'zero-pad --pad, random crop to the image size, horizontal flip'
DATASETS = {
    'cifar10': DatasetSpec(_cifar, 'cifar', 10, lambda cfg: 32, PAD_CROP_FLIP),
    'cifar100': DatasetSpec(_cifar, 'cifar', 100, lambda cfg: 32, PAD_CROP_FLIP),
    # the embedded 6,000-image sample: --data-dir is ignored, it ships inside the package
    'cifar10-sample': DatasetSpec(_sample, 'cifar', 10, lambda cfg: 32, PAD_CROP_FLIP,
                                  uses_data_dir=False),
    'folder': DatasetSpec(_folder, 'cifar', None, lambda cfg: None, PAD_CROP_FLIP),
    'imagenet': DatasetSpec(_imagenet, 'imagenet', None, lambda cfg: cfg.crop_size,
                            'random area/aspect crop to --crop-size, flip; test: resize, '
                            'centre --test-crop'),
}


def default_data_dir(dataset):
    return os.path.join(os.path.expanduser('~'), '.mxnet', 'datasets', dataset)


def dataset_spec(name):
    """The DATASETS entry of `name`, or a DataError listing the valid names."""
    if name not in DATASETS:
        from .base import DataError
        raise DataError('unknown dataset %r: choose one of %s' % (name, ', '.join(DATASETS)))
    return DATASETS[name]


def build_data(cfg):
    """The dataset described by a DataConfig, ready to iterate (see BatchSource)."""
    spec = dataset_spec(cfg.dataset)
    data_dir = os.path.expanduser(cfg.data_dir) if cfg.data_dir else default_data_dir(cfg.dataset)
    return spec.load(cfg, data_dir)


def input_size(cfg, data):
    """(height, width) of a training image: the dataset's input size (e.g. the ImageNet
    crop), else the size of its stored images."""
    size = dataset_spec(cfg.dataset).input_size(cfg)
    return (size, size) if size else tuple(data.train_x.shape[1:3])


_LAZY = {'BatchSource': 'base', 'DataError': 'base', 'InMemoryData': 'base',
         'epoch_order': 'loader', 'batch_rng': 'loader'}


def __getattr__(name):          # numpy / OpenCV modules, imported on first use
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module('.' + _LAZY[name], __name__), name)
    raise AttributeError('module %r has no attribute %r' % (__name__, name))
