"""ImageNet (or any photo set) from MXNet RecordIO: train.rec/.idx and val.rec/.idx.

Make them with mxnet's tools/im2rec.py (labels 0..K-1 in the record headers). Images are
decoded per batch (they do not fit in memory), with cv2 in the loader's worker threads;
cv2 releases the GIL while decoding and resizing, so 2 workers use 2 cores.
Training views: random-resized crop + flip (augment.py); test views: shorter side
resized to `test_crop`, centre crop (Table 5 evaluates 320 crops of 224-trained nets).
"""
import os
import struct
import threading

import cv2
import mxnet as mx
import numpy as np

from . import augment
from .base import BatchSource, DataError, check_subset, check_val_size

# Reading every header of a 1.28M-record train.rec costs a disk seek each; past this many
# records only val.rec (small) is read and the ImageNet class count assumed.
LABEL_SCAN_LIMIT = 200_000
IMAGENET_CLASSES = 1000
_RECORD_MAGIC = 0xced7230a
_HEAD = struct.Struct('<II')           # magic, length (+ continuation flag in the top 3 bits)
_IR_HEADER = struct.Struct('<IfQQ')    # flag, label, id, id2 (mx.recordio.IRHeader)
IM2REC = ("point --data-dir at a folder holding train.rec/.idx and val.rec/.idx "
          "(make them with mxnet's tools/im2rec.py)")


class RecordFile:
    """One indexed .rec file; thread-safe random access to decoded RGB images."""

    def __init__(self, data_dir, split):
        self.rec = os.path.join(data_dir, split + '.rec')
        idx = os.path.join(data_dir, split + '.idx')
        missing = [p for p in (self.rec, idx) if not os.path.isfile(p)]
        if missing:
            raise DataError('imagenet: missing %s: %s' % (', '.join(missing), IM2REC))
        try:
            self._record = mx.recordio.MXIndexedRecordIO(idx, self.rec, 'r')
        except (ValueError, IndexError, mx.base.MXNetError) as e:
            raise DataError('imagenet: cannot read %s (%s): re-create it with im2rec, or %s'
                            % (idx, e, IM2REC)) from None
        self.keys = list(self._record.keys)
        if not self.keys:
            raise DataError('imagenet: %s lists no records: %s' % (idx, IM2REC))
        self._lock = threading.Lock()   # seek + read on one handle must not interleave

    def __len__(self):
        return len(self.keys)

    def read(self, i):
        """(RGB uint8 image, int label) of the i-th record in index order."""
        try:
            with self._lock:
                raw = self._record.read_idx(self.keys[i])
            header, encoded = mx.recordio.unpack(raw)
        except (mx.base.MXNetError, struct.error) as e:
            raise DataError('imagenet: cannot read record %d of %s (%s): re-create it with '
                            'im2rec' % (i, self.rec, e)) from None
        image = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise DataError('imagenet: record %d of %s does not decode as an image: '
                            're-create the .rec with im2rec' % (i, self.rec))
        label = header.label if np.isscalar(header.label) else header.label[0]
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), int(label)

    def labels(self, count):
        """Labels of the first `count` records, read from their headers only (32 bytes
        each, no image data), so even 50k validation records take a moment."""
        labels = np.empty(count, np.int64)
        fd = os.open(self.rec, os.O_RDONLY)
        try:
            for n, key in enumerate(self.keys[:count]):
                labels[n] = self._label_at(fd, self._record.idx[key], n)
        finally:
            os.close(fd)
        return labels

    def _label_at(self, fd, offset, n):
        head = os.pread(fd, _HEAD.size + _IR_HEADER.size + 4, offset)
        if len(head) < _HEAD.size + _IR_HEADER.size or _HEAD.unpack_from(head)[0] != _RECORD_MAGIC:
            raise DataError('imagenet: record %d of %s is not where its .idx says: the .idx does '
                            'not belong to this .rec; re-create both with im2rec' % (n, self.rec))
        flag, label = _IR_HEADER.unpack_from(head, _HEAD.size)[:2]
        if flag > 0:   # label array follows the header: take its first entry
            label = struct.unpack_from('<f', head, _HEAD.size + _IR_HEADER.size)[0]
        return label

    def close(self):
        self._record.close()


class RecordData(BatchSource):
    """ImageNet-style RecordIO dataset; normalised with the standard ImageNet statistics."""
    name = 'imagenet'

    def __init__(self, data_dir, crop_size=224, test_crop=224, subset=None, num_workers=0,
                 val_size=None):
        super().__init__(num_workers)
        if not os.path.isdir(data_dir):
            raise DataError('imagenet: data dir %s does not exist: %s' % (data_dir, IM2REC))
        self._train = RecordFile(data_dir, 'train')
        self._val = RecordFile(data_dir, 'val')
        self.crop_size, self.test_crop = crop_size, test_crop
        self.mean, self.std = augment.IMAGENET_MEAN, augment.IMAGENET_STD
        self.classes = self._count_classes()
        self.class_names = None
        # --val-size N: the last N training records, viewed as test images are
        self.num_val = check_val_size(val_size, len(self._train), self.name)
        self._val_start = len(self._train) - self.num_val
        self.num_train = check_subset(subset, self._val_start, self.name)
        self.num_test = len(self._val)

    def _count_classes(self):
        labels = self._val.labels(len(self._val))
        if len(self._train) <= LABEL_SCAN_LIMIT:
            labels = np.concatenate([labels, self._train.labels(len(self._train))])
            return int(labels.max()) + 1
        # full ImageNet: trust its 1000 classes rather than read 1.28M headers; batches
        # still check every label against this count
        return max(IMAGENET_CLASSES, int(labels.max()) + 1)

    def _batch(self, source, indices, view):
        images, labels = [], []
        for i in indices:
            image, label = source.read(int(i))
            if not 0 <= label < self.classes:
                raise DataError('imagenet: record %d of %s has label %d outside 0..%d: '
                                're-create the .rec with labels 0..K-1'
                                % (i, source.rec, label, self.classes - 1))
            images.append(view(image))
            labels.append(label)
        x = augment.normalize(np.stack(images), self.mean, self.std)
        return x, np.asarray(labels, np.int32)

    def _train_batch(self, indices, rng, rows=slice(None)):
        # one generator per image, seeded from the whole batch's draw: reproducible per
        # batch, and a worker's rows need no other image decoded (the number of draws of
        # a crop depends on the image's size)
        seeds = iter(rng.integers(0, 2 ** 63, size=len(indices))[rows])
        return self._batch(self._train, indices[rows], lambda im: augment.random_resized_crop(
            im, self.crop_size, np.random.default_rng(next(seeds))))

    def _eval_batch(self, split, indices):
        source, offset = (self._val, 0) if split == 'test' else (self._train, self._val_start)
        return self._batch(source, indices + offset,
                           lambda im: augment.resize_center_crop(im, self.test_crop))

    def close(self):
        super().close()
        self._train.close()
        self._val.close()
