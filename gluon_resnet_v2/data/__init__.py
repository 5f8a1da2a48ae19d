"""Data pipeline: CIFAR-10/100, image folders, the embedded CIFAR-10 sample, ImageNet .rec.

    data = build_data(DataConfig(dataset='cifar10', download=True))
    for x, y in data.train_batches(128, seed=0, epoch=3, start=k):   # resume at batch k
        ...
    data.close()

Every batch is a pure function of (seed, epoch, batch index) — see loader.py — so a run
resumed at batch k reproduces an uninterrupted one bit for bit, for any num_workers.
Every user-facing problem raises DataError with a one-line message and its fix.
"""
import os

from .base import BatchSource, DataError, InMemoryData
from .loader import batch_rng, epoch_order

__all__ = ['build_data', 'DataError', 'BatchSource', 'InMemoryData', 'epoch_order',
           'batch_rng', 'default_data_dir']

DATASETS = ('cifar10', 'cifar100', 'cifar10-sample', 'folder', 'imagenet')


def default_data_dir(dataset):
    return os.path.join(os.path.expanduser('~'), '.mxnet', 'datasets', dataset)


def build_data(cfg):
    """The dataset described by a DataConfig, ready to iterate (see BatchSource)."""
    if cfg.dataset not in DATASETS:
        raise DataError('unknown dataset %r: choose one of %s' % (cfg.dataset, ', '.join(DATASETS)))
    data_dir = os.path.expanduser(cfg.data_dir) if cfg.data_dir else default_data_dir(cfg.dataset)
    common = dict(subset=cfg.subset, num_workers=cfg.num_workers)
    if cfg.dataset in ('cifar10', 'cifar100'):
        from .cifar import load_cifar
        return load_cifar(cfg.dataset, data_dir, cfg.download, pad=cfg.pad, **common)
    if cfg.dataset == 'cifar10-sample':     # data_dir is ignored: the sample ships inside
        from .folder import load_sample
        return load_sample(pad=cfg.pad, **common)
    if cfg.dataset == 'folder':
        from .folder import load_folder
        return load_folder('folder', data_dir, pad=cfg.pad, **common)
    from .imagenet import RecordData         # imports mxnet: only when asked for
    return RecordData(data_dir, crop_size=cfg.crop_size, test_crop=cfg.test_crop, **common)
