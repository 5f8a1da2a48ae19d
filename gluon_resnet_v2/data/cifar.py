"""CIFAR-10 / CIFAR-100 from the official python-pickle release (Krizhevsky, 2009).

Looks in `data_dir` for the unpacked folder (cifar-10-batches-py/, cifar-100-python/),
else the official archive (unpacked in place after its MD5 is checked), else downloads
the archive when --download is given. The batches are Python pickles, as the dataset's
authors distribute them; only load files from a source you trust.
"""
import os
import pickle
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass

import numpy as np

from .base import DataError, InMemoryData
from .download import download, md5sum


@dataclass(frozen=True)
class Source:
    """Where a CIFAR release comes from and how its pickles are laid out."""
    url: str
    md5: str                 # of the archive, as published (torchvision and gluon agree)
    folder: str              # what the archive unpacks to
    train_files: tuple
    test_files: tuple
    meta_file: str
    label_key: bytes         # CIFAR-100 has coarse (20) and fine (100) labels: use fine
    names_key: bytes
    classes: int

    @property
    def archive(self):
        return os.path.basename(self.url)


# Module constants so tests can point the download at a loopback server.
SOURCES = {
    'cifar10': Source('https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz',
                      'c58f30108f718f92721af3b95e74349a', 'cifar-10-batches-py',
                      tuple('data_batch_%d' % i for i in range(1, 6)), ('test_batch',),
                      'batches.meta', b'labels', b'label_names', 10),
    'cifar100': Source('https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz',
                       'eb9058c3a382ffc7106e4002c42a8d85', 'cifar-100-python',
                       ('train',), ('test',), 'meta', b'fine_labels', b'fine_label_names', 100),
}


def load_cifar(name, data_dir, download_missing=False, pad=4, subset=None, num_workers=0,
               val_size=None):
    """The CIFAR dataset `name` ('cifar10' | 'cifar100') as an InMemoryData."""
    src = SOURCES[name]
    folder = locate(src, name, data_dir, download_missing)
    missing = [f for f in src.train_files + src.test_files + (src.meta_file,)
               if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise DataError('%s: %s is missing %s: delete that folder and pass --download, or '
                        're-extract %s there' % (name, folder, ', '.join(missing), src.archive))
    train = _read_split(folder, src.train_files, src, name)
    test = _read_split(folder, src.test_files, src, name)
    class_names = [n.decode() for n in _load(folder, src.meta_file, src, name)[src.names_key]]
    return InMemoryData(name, train[:2], test[:2], src.classes, pad=pad, subset=subset,
                        num_workers=num_workers, class_names=class_names,
                        names=(train[2], test[2]), val_size=val_size)


def locate(src, name, data_dir, download_missing):
    """The folder holding the pickles: found, unpacked from the archive, or downloaded."""
    if os.path.basename(os.path.normpath(data_dir)) == src.folder:
        return data_dir                      # --data-dir points at the unpacked folder itself
    folder = os.path.join(data_dir, src.folder)
    if os.path.isdir(folder):
        return folder
    archive = os.path.join(data_dir, src.archive)
    if os.path.isfile(archive):
        got = md5sum(archive)
        if got != src.md5:
            raise DataError('%s: checksum mismatch for %s (md5 %s, expected %s): delete it and '
                            'pass --download' % (name, archive, got, src.md5))
    elif download_missing:
        download(src.url, archive, src.md5, name)
    else:
        raise DataError('%s: no %s/ or %s in %s: pass --download to fetch it, or point '
                        '--data-dir at the folder holding it' % (name, src.folder, src.archive,
                                                                   data_dir))
    _extract(archive, data_dir, src, name)
    return folder


def _extract(archive, data_dir, src, name):
    """Unpack into a temporary folder, then move the result into place in one rename, so
    an interrupted extraction never looks like a complete dataset."""
    tmp = tempfile.mkdtemp(prefix='.extract-', dir=data_dir)
    try:
        try:
            with tarfile.open(archive) as tar:
                _safe_extractall(tar, tmp)
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise DataError('%s: cannot unpack %s (%s): delete it and pass --download'
                            % (name, archive, e)) from None
        if not os.path.isdir(os.path.join(tmp, src.folder)):
            raise DataError('%s: %s holds no %s/ folder: delete it and pass --download'
                            % (name, archive, src.folder))
        os.replace(os.path.join(tmp, src.folder), os.path.join(data_dir, src.folder))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _safe_extractall(tar, dest):
    """Extract refusing members that would land outside `dest` (links, '../', devices)."""
    if hasattr(tarfile, 'data_filter'):          # Python >= 3.8.17 / 3.11.4
        tar.extractall(dest, filter='data')
        return
    root = os.path.realpath(dest)
    for m in tar.getmembers():
        target = os.path.realpath(os.path.join(dest, m.name))
        if not (m.isfile() or m.isdir()) or not target.startswith(root + os.sep):
            raise tarfile.TarError('unsafe member %r' % m.name)
    tar.extractall(dest)


def _load(folder, filename, src, name):
    path = os.path.join(folder, filename)
    try:
        with open(path, 'rb') as f:
            return pickle.load(f, encoding='bytes')
    except Exception as e:  # a truncated or foreign file raises anything from unpickling
        raise DataError('%s: cannot read %s (%s: %s): the file is corrupt; delete %s and pass '
                        '--download (or re-extract %s)' % (name, path, type(e).__name__, e,
                                                          folder, src.archive)) from None


def _read_split(folder, files, src, name):
    """Concatenated (images uint8 NHWC, labels int32, file names or None) of the given
    batch files, in order."""
    images, labels, names = [], [], []
    for filename in files:
        batch = _load(folder, filename, src, name)
        data = np.asarray(batch.get(b'data') if isinstance(batch, dict) else None)
        y = batch.get(src.label_key) if isinstance(batch, dict) else None
        if (data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or y is None
                or len(y) != len(data) or not all(0 <= v < src.classes for v in y)):
            raise DataError('%s: %s has no valid %r/%r entries: the file is corrupt; delete %s '
                            'and pass --download' % (name, os.path.join(folder, filename),
                                                     b'data', src.label_key, folder))
        # rows are 1024 red, 1024 green, 1024 blue values: to NHWC, which augment expects
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(y, np.int32))
        names.extend(n.decode() if isinstance(n, bytes) else str(n)
                     for n in batch.get(b'filenames', ()))
    names = names if len(names) == sum(map(len, labels)) else None
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels), names
