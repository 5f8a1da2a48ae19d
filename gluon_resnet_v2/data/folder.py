"""Image-folder datasets: `train/<class>/*` and `test/<class>/*`, in a folder or a tar.

The images are decoded once into one uint8 array, so they must share one size; larger,
varied photos belong in RecordIO (`--dataset imagenet`). Classes are the sorted names of
the train subfolders. The fixed image order (which `--subset N` takes the first N of) is
round-robin over the classes: the 1st image of every class (sorted file names), then the
2nd of every class, ... so any prefix is as class-balanced as the data allow. A folder
and a tar of the same layout give identical datasets.
"""
import os
import tarfile
import zlib
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from .base import DataError, InMemoryData

SPLITS = ('train', 'test')
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')
SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'cifar10_sample.tar.gz')
LAYOUT = 'lay images out as train/<class>/* and test/<class>/* (or a .tar/.tar.gz of that)'


def load_folder(name, path, pad=4, subset=None, num_workers=0, val_size=None):
    """An image-folder dataset from the folder or tar archive `path`, as InMemoryData."""
    entries = read_entries(path, name)
    classes = sorted({cls for split, cls, _, _ in entries if split == 'train'})
    if not classes:
        raise DataError('%s: %s has no images under train/<class>/: %s' % (name, path, LAYOUT))
    test_classes = {cls for split, cls, _, _ in entries if split == 'test'}
    if test_classes != set(classes):
        raise DataError('%s: test classes differ from train classes in %s (missing in test: %s;'
                        ' extra in test: %s): give test/ the same class folders as train/'
                        % (name, path, ', '.join(sorted(set(classes) - test_classes)) or '-',
                           ', '.join(sorted(test_classes - set(classes))) or '-'))
    index = {cls: i for i, cls in enumerate(classes)}
    splits = [_decode_split([e for e in entries if e[0] == split], index, name, num_workers)
              for split in SPLITS]
    _check_one_size(splits, name)
    return InMemoryData(name, splits[0][:2], splits[1][:2], len(classes), pad=pad,
                        subset=subset, num_workers=num_workers, class_names=classes,
                        names=(splits[0][2], splits[1][2]), val_size=val_size)


def load_sample(pad=4, subset=None, num_workers=0, val_size=None):
    """The embedded 6,000-image CIFAR-10 sample (see SAMPLE.md)."""
    if not os.path.isfile(SAMPLE):
        raise DataError('cifar10-sample: the embedded sample %s is missing: reinstall the '
                        'package or rebuild it with scripts/make_cifar_sample.py' % SAMPLE)
    return load_folder('cifar10-sample', SAMPLE, pad, subset, num_workers, val_size)


def read_entries(path, name):
    """[(split, class, file name, encoded bytes)] of every image file under path."""
    if os.path.isdir(path):
        return _read_dir(path, name)
    if os.path.isfile(path):
        return _read_tar(path, name)
    raise DataError('%s: data dir %s does not exist: point --data-dir at a folder that holds '
                    'train/<class>/ and test/<class>/ images (or a .tar/.tar.gz of it)'
                    % (name, path))


def _is_image(filename):
    return not filename.startswith('.') and filename.lower().endswith(IMAGE_EXTENSIONS)


def _read_dir(root, name):
    entries = []
    for split in SPLITS:
        split_dir = os.path.join(root, split)
        if not os.path.isdir(split_dir):
            raise DataError('%s: %s has no %s/ folder: %s' % (name, root, split, LAYOUT))
        for cls in sorted(d.name for d in os.scandir(split_dir) if d.is_dir()):
            files = sorted(f for f in os.listdir(os.path.join(split_dir, cls)) if _is_image(f))
            if not files:
                raise DataError('%s: class folder %s/%s has no images: add images or remove '
                                'the folder' % (name, split_dir, cls))
            for f in files:
                with open(os.path.join(split_dir, cls, f), 'rb') as fh:
                    entries.append((split, cls, f, fh.read()))
    return entries


def _read_tar(path, name):
    """Stream the archive once (random access into a .gz is slow). One optional top-level
    folder is allowed, as in `tar czf x.tar.gz mydata/`."""
    entries = []
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                parts = member.name[2:] if member.name.startswith('./') else member.name
                parts = parts.split('/')
                if len(parts) == 4:
                    parts = parts[1:]
                if (member.isfile() and len(parts) == 3 and parts[0] in SPLITS
                        and _is_image(parts[2])):
                    entries.append((parts[0], parts[1], parts[2],
                                    tar.extractfile(member).read()))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataError('%s: cannot read %s as a folder or a tar archive (%s): point --data-dir'
                        ' at an image folder or a valid .tar/.tar.gz' % (name, path, e)) from None
    for split in SPLITS:
        if not any(e[0] == split for e in entries):
            raise DataError('%s: archive %s has no %s/<class>/ images: %s'
                            % (name, path, split, LAYOUT))
    return entries


def _round_robin(entries, index):
    """Entries ordered 1st of each class, 2nd of each class, ... (classes in label order)."""
    entries = sorted(entries, key=lambda e: (index[e[1]], e[2]))
    rank, keyed = {}, []
    for e in entries:
        rank[e[1]] = rank.get(e[1], -1) + 1
        keyed.append(((rank[e[1]], index[e[1]]), e))
    return [e for _, e in sorted(keyed, key=lambda k: k[0])]


def _decode(entry):
    image = cv2.imdecode(np.frombuffer(entry[3], np.uint8), cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)   # cv2 is BGR


def _decode_split(entries, index, name, num_workers):
    """(images uint8 NHWC, labels int32, file names) of one split, in round-robin order.
    cv2 releases the GIL while decoding, so threads decode in parallel."""
    entries = _round_robin(entries, index)
    if num_workers > 0:
        with ThreadPoolExecutor(num_workers) as pool:
            images = list(pool.map(_decode, entries))
    else:
        images = [_decode(e) for e in entries]
    names = ['%s/%s/%s' % e[:3] for e in entries]
    for image, where in zip(images, names):
        if image is None:
            raise DataError('%s: cannot decode %s as an image: delete or replace the file'
                            % (name, where))
        if image.shape != images[0].shape:
            raise DataError(_size_message(name, (images[0], names[0]), (image, where)))
    labels = np.array([index[e[1]] for e in entries], np.int32)
    return np.stack(images), labels, names


def _check_one_size(splits, name):
    (train, _, train_names), (test, _, test_names) = splits
    if train.shape[1:] != test.shape[1:]:
        raise DataError(_size_message(name, (train[0], train_names[0]), (test[0], test_names[0])))


def _size_message(name, first, other):
    """first, other: (image, 'split/class/file')."""
    sizes = tuple(v for image, where in (first, other)
                  for v in (image.shape[1], image.shape[0], where))
    return ('%s: images differ in size (%dx%d in %s, %dx%d in %s): resize them to one size, or '
            "pack them with mxnet's im2rec into train.rec/val.rec and use --dataset imagenet"
            % ((name,) + sizes))
