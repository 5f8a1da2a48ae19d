"""Data pipeline: datasets, augmentation, determinism, workers, errors, downloads.

Everything is built in tmp dirs; the real CIFAR-10 from ../shared/data is used when
present (skipped with a reason otherwise).
"""
import functools
import hashlib
import http.server
import os
import pickle
import re
import socket
import subprocess
import sys
import tarfile
import threading
import time
import types
from dataclasses import replace
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
import pytest

from gluon_resnet_v2.config import DataConfig
from gluon_resnet_v2.data import (DataError, InMemoryData, augment, batch_rng, build_data,
                                  cifar, epoch_order, folder, loader)

from support import write_rec

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / 'shared'
CIFAR_JPEG = SHARED / 'data' / 'cifar10-jpeg.tar.gz'
CLASSES10 = ['airplane', 'automobile', 'bird', 'cat', 'deer',
             'dog', 'frog', 'horse', 'ship', 'truck']


def need_shared():
    if not CIFAR_JPEG.is_file():
        pytest.skip('../shared/data not present: %s is missing (checkout outside the workspace)'
                    % CIFAR_JPEG)


def cfg(**kw):
    kw.setdefault('num_workers', 0)
    return DataConfig(**kw)


def unnormalise(x, data):
    """Float NCHW batch back to [0, 255] NHWC."""
    mean = np.asarray(data.mean).reshape(1, 3, 1, 1)
    std = np.asarray(data.std).reshape(1, 3, 1, 1)
    return ((x * std + mean) * 255).transpose(0, 2, 3, 1)


# ---------------------------------------------------------------- fake data builders

def dump(path, obj):
    with open(path, 'wb') as f:
        pickle.dump(obj, f, protocol=4)


def write_cifar10(root, per_batch=20, test=30, seed=0):
    """A tiny cifar-10-batches-py with random pixels; returns (train data, train labels)."""
    rng = np.random.default_rng(seed)
    dest = root / 'cifar-10-batches-py'
    dest.mkdir(parents=True)
    data = rng.integers(0, 256, (5 * per_batch, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, 5 * per_batch).tolist()
    for b in range(5):
        s = slice(b * per_batch, (b + 1) * per_batch)
        dump(dest / ('data_batch_%d' % (b + 1)), {b'data': data[s], b'labels': labels[s]})
    dump(dest / 'test_batch', {b'data': rng.integers(0, 256, (test, 3072), dtype=np.uint8),
                               b'labels': rng.integers(0, 10, test).tolist()})
    dump(dest / 'batches.meta', {b'label_names': [c.encode() for c in CLASSES10]})
    return data, labels


def make_targz(src_dir, out, arcname):
    with tarfile.open(out, 'w:gz') as tar:
        tar.add(src_dir, arcname=arcname)
    return hashlib.md5(Path(out).read_bytes()).hexdigest()


def write_folder(root, classes=('b_cat', 'a_dog', 'c_eel'), per_class=(4, 2), size=(8, 6)):
    """PNG (lossless) images with known RGB pixels; returns {relative path: rgb array}."""
    rng = np.random.default_rng(1)
    pixels = {}
    for split, count in zip(('train', 'test'), per_class):
        for cls in classes:
            (root / split / cls).mkdir(parents=True)
            for i in range(count):
                rgb = rng.integers(0, 256, size + (3,), dtype=np.uint8)
                cv2.imwrite(str(root / split / cls / ('%03d.png' % i)), rgb[:, :, ::-1])
                pixels['%s/%s/%03d.png' % (split, cls, i)] = rgb
    return pixels


@pytest.fixture(scope='module')
def sample():
    data = build_data(cfg(dataset='cifar10-sample'))
    yield data
    data.close()


# ---------------------------------------------------------------- embedded sample

def test_sample_archive_is_balanced_small_and_official_order():
    path = Path(folder.SAMPLE)
    assert path.stat().st_size <= 3 * 1024 * 1024
    counts = {}
    with tarfile.open(path) as tar:
        for name in tar.getnames():
            split, cls, fname = name.split('/')
            assert re.fullmatch(r'\d{4}\.jpg', fname), name
            counts[split, cls] = counts.get((split, cls), 0) + 1
    assert counts == {**{('train', c): 500 for c in CLASSES10},
                      **{('test', c): 100 for c in CLASSES10}}


def test_sample_rebuild_is_identical_and_copies_original_bytes(tmp_path):
    need_shared()
    out = tmp_path / 'sample.tar.gz'
    subprocess.run([sys.executable, str(REPO / 'scripts' / 'make_cifar_sample.py'),
                    '--source', str(CIFAR_JPEG), '--out', str(out)], check=True,
                   capture_output=True)
    assert out.read_bytes() == Path(folder.SAMPLE).read_bytes()
    with tarfile.open(out) as tar:
        ours = {m.name: tar.extractfile(m).read() for m in tar}
    with tarfile.open(CIFAR_JPEG) as tar:
        originals = {m.name: tar.extractfile(m).read() for m in tar if m.name in ours}
    assert originals == ours


def test_sample_dataset_shapes_labels_and_stats(sample):
    assert (sample.classes, sample.num_train, sample.num_test) == (10, 5000, 1000)
    assert sample.class_names == CLASSES10
    assert np.bincount(sample.train_y).tolist() == [500] * 10
    x = sample.train_x / 255.0
    np.testing.assert_allclose(sample.mean, x.mean(axis=(0, 1, 2)), atol=1e-9)
    np.testing.assert_allclose(sample.std, x.std(axis=(0, 1, 2)), atol=1e-9)
    normed = augment.normalize(sample.train_x, sample.mean, sample.std)
    # float64 accumulation: a float32 sum over 5M values drifts by ~1e-3 by itself
    np.testing.assert_allclose(normed.mean(axis=(0, 2, 3), dtype=np.float64), 0, atol=1e-5)
    np.testing.assert_allclose(normed.std(axis=(0, 2, 3), dtype=np.float64), 1, atol=1e-5)
    xb, yb = next(iter(sample.train_batches(128, seed=0, epoch=0)))
    assert (xb.shape, xb.dtype) == ((128, 3, 32, 32), np.float32)
    assert (yb.shape, yb.dtype) == ((128,), np.int32)


def test_test_batches_in_order_unaugmented(sample):
    batches = list(sample.test_batches(128))
    assert [len(y) for _, y in batches] == [128] * 7 + [1000 - 7 * 128]
    x = np.concatenate([b[0] for b in batches])
    np.testing.assert_allclose(unnormalise(x, sample), sample.test_x, atol=1e-3)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), sample.test_y)


def test_subset_takes_a_class_mixed_prefix_and_keeps_full_stats(sample):
    data = build_data(cfg(dataset='cifar10-sample', subset=30))
    assert data.num_train == 30 and np.bincount(data.train_y).tolist() == [3] * 10
    np.testing.assert_array_equal(data.train_x, sample.train_x[:30])
    assert data.steps_per_epoch(8) == 3 and len(list(data.train_batches(8, 0, 0))) == 3
    # normalisation comes from the full split, so a quick subset run matches the full one
    assert (data.mean, data.std) == (sample.mean, sample.std)


# ---------------------------------------------------------------- augmentation

def test_crop_flip_equals_explicit_pad_slice_flip():
    images = np.random.default_rng(0).integers(1, 256, (16, 32, 32, 3), dtype=np.uint8)
    rows, cols, flips = augment.draw_crop_flip(np.random.default_rng(7), 16, 4)
    out = augment.crop_flip(images, 4, rows, cols, flips)
    assert 0 < flips.sum() < 16 and len(set(rows)) > 1
    for i in range(16):
        padded = np.pad(images[i], ((4, 4), (4, 4), (0, 0)))
        want = padded[rows[i]:rows[i] + 32, cols[i]:cols[i] + 32]
        np.testing.assert_array_equal(out[i], want[:, ::-1] if flips[i] else want)


def test_train_batch_follows_the_rng_contract(sample):
    seed, epoch, b, bs = 5, 2, 3, 64
    x, y = list(sample.train_batches(bs, seed, epoch, start=b))[0]
    idx = epoch_order(seed, epoch, sample.num_train)[b * bs:(b + 1) * bs]
    rows, cols, flips = augment.draw_crop_flip(batch_rng(seed, epoch, b), bs, sample.pad)
    want = augment.crop_flip(sample.train_x[idx], sample.pad, rows, cols, flips)
    np.testing.assert_array_equal(x, augment.normalize(want, sample.mean, sample.std))
    np.testing.assert_array_equal(y, sample.train_y[idx])


def test_augmentation_pads_and_flips_half_the_images():
    image = np.full((32, 32, 3), 100, np.uint8)
    image[:, 16:] = 200                      # asymmetric: a flip moves the bright half left
    n = 512
    data = InMemoryData('toy', (np.repeat(image[None], n, 0), np.zeros(n)),
                        (image[None], np.zeros(1)), classes=1, pad=4)
    x, _ = next(iter(data.train_batches(n, seed=0, epoch=0)))
    pixels = np.rint(unnormalise(x, data))[..., 0]
    zero_rows = (pixels == 0).all(axis=2).sum(axis=1)
    zero_cols = (pixels == 0).all(axis=1).sum(axis=1)
    assert set(zero_rows) == set(zero_cols) == {0, 1, 2, 3, 4}  # every pad offset occurs
    assert 1.8 < zero_rows.mean() < 2.7                 # E|U{-4..4}| = 20/9
    content = np.where(pixels > 0, pixels, np.nan)
    left, right = (np.nanmean(content[:, :, cols], axis=(1, 2)) for cols in (slice(0, 8),
                                                                             slice(-8, None)))
    flipped = left > right
    assert 0.4 < flipped.mean() < 0.6


def test_random_resized_crop_boxes_respect_area_and_aspect():
    rng = np.random.default_rng(0)
    areas, aspects = [], []
    for _ in range(500):
        h, w = rng.integers(20, 300, 2)
        top, left, ch, cw = augment.draw_resized_crop(rng, h, w)
        assert 0 <= top and top + ch <= h and 0 <= left and left + cw <= w
        areas.append(ch * cw / (h * w))
        aspects.append(cw / ch)
    assert 0.07 < min(areas) < 0.2 and max(areas) > 0.9 and max(areas) <= 1
    assert min(aspects) > 0.7 and max(aspects) < 1.4
    crop = augment.random_resized_crop(np.zeros((50, 70, 3), np.uint8), 24, rng)
    assert crop.shape == (24, 24, 3)


def test_resize_center_crop_keeps_the_middle():
    image = np.random.default_rng(0).integers(0, 256, (40, 80, 3), dtype=np.uint8)
    out = augment.resize_center_crop(image, 20)
    want = cv2.resize(image, (40, 20), interpolation=cv2.INTER_AREA)[:, 10:30]
    np.testing.assert_array_equal(out, want)


# ---------------------------------------------------------------- determinism, workers

def test_determinism_resume_and_worker_independence(sample):
    def run(num_workers, start=0, seed=1, epoch=0):
        sample.num_workers = num_workers
        try:
            return list(sample.train_batches(256, seed, epoch, start=start))
        finally:
            sample.num_workers = 0
    full = run(0)
    assert len(full) == sample.steps_per_epoch(256) == 5000 // 256
    for other in (run(0), run(2), [None] * 7 + run(0, start=7), [None] * 7 + run(2, start=7)):
        for a, b in zip(full, other):
            if b is not None:
                np.testing.assert_array_equal(a[0], b[0])
                np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(full[0][1], run(0, epoch=1)[0][1])
    assert not np.array_equal(full[0][1], run(0, seed=2)[0][1])


def test_a_workers_part_is_its_rows_of_the_full_batch(sample, rec_dir):
    """A distributed worker builds only its rows of each batch: exactly the rows one process
    builds (every random choice is drawn for the whole batch), for in-memory and RecordIO
    data, and it reads no other image."""
    imagenet = build_data(cfg(dataset='imagenet', data_dir=str(rec_dir[0]), crop_size=16))
    for data, batch in ((sample, 12), (imagenet, 8)):
        full = list(data.train_batches(batch, 3, 1, start=1))
        parts = [list(data.train_batches(batch, 3, 1, start=1, part=(k, 4))) for k in range(4)]
        assert len(full) == len(parts[0]) == data.steps_per_epoch(batch) - 1
        for b, (x, y) in enumerate(full):
            np.testing.assert_array_equal(np.concatenate([p[b][0] for p in parts]), x)
            np.testing.assert_array_equal(np.concatenate([p[b][1] for p in parts]), y)
        assert parts[3][0][0].shape[0] == batch // 4
    read = []
    imagenet._train.read = lambda i, read_=imagenet._train.read: read.append(i) or read_(i)
    next(iter(imagenet.train_batches(8, 3, 1, part=(1, 2))))
    assert sorted(read) == sorted(epoch_order(3, 1, 40)[4:8])
    with pytest.raises(ValueError, match='part 1 of 3'):
        sample.train_batches(8, 0, 0, part=(1, 3))
    imagenet.close()


def test_an_epoch_uses_every_image_once(sample):
    ys = np.concatenate([y for _, y in sample.train_batches(100, seed=3, epoch=4)])
    np.testing.assert_array_equal(np.sort(ys), np.sort(sample.train_y))
    order = epoch_order(3, 4, sample.num_train)
    np.testing.assert_array_equal(ys, sample.train_y[order])


def test_early_break_close_and_exhaustion_leave_no_workers(sample):
    baseline = threading.active_count()
    sample.num_workers = 2
    try:
        for _ in sample.train_batches(64, 0, 0):
            break                                   # the dropped iterator joins its workers
        assert threading.active_count() == baseline
        it = sample.train_batches(64, 0, 0)
        next(it)
        assert threading.active_count() > baseline  # workers exist while it is open
        sample.close()
        assert threading.active_count() == baseline and list(it) == []
        assert len(list(sample.test_batches(300))) == 4
        assert threading.active_count() == baseline
    finally:
        sample.num_workers = 0


def test_prefetch_is_bounded_and_errors_propagate():
    started = []

    def work(i):
        started.append(i)
        if i == 6:
            raise RuntimeError('bad batch')
        return i
    it = loader.Prefetcher(work, range(10), num_workers=2)
    assert next(it) == 0
    time.sleep(0.2)
    assert len(started) <= 1 + 2 * 2               # at most 2 * num_workers ahead
    assert [next(it) for _ in range(5)] == [1, 2, 3, 4, 5]
    with pytest.raises(RuntimeError, match='bad batch'):
        next(it)
    assert list(it) == []


# ---------------------------------------------------------------- errors

def test_every_error_is_a_value_error_with_a_fix(sample, tmp_path):
    assert issubclass(DataError, ValueError)
    bogus = types.SimpleNamespace(**{**vars(cfg()), 'dataset': 'mnist'})
    with pytest.raises(DataError, match='unknown dataset .*choose one of'):
        build_data(bogus)
    with pytest.raises(DataError, match='--subset'):
        build_data(cfg(dataset='cifar10-sample', subset=5001))
    with pytest.raises(DataError, match='--batch-size'):
        sample.steps_per_epoch(5001)
    with pytest.raises(DataError, match='--batch-size'):
        sample.steps_per_epoch(0)


def test_cifar_missing_files_need_download_or_data_dir(tmp_path):
    with pytest.raises(DataError, match='--download.*--data-dir') as e:
        build_data(cfg(dataset='cifar10', data_dir=str(tmp_path / 'nothing')))
    assert '\n' not in str(e.value)
    write_cifar10(tmp_path)
    (tmp_path / 'cifar-10-batches-py' / 'data_batch_3').unlink()
    with pytest.raises(DataError, match='missing data_batch_3.*--download'):
        build_data(cfg(dataset='cifar10', data_dir=str(tmp_path)))


def test_cifar_corrupt_batch(tmp_path):
    write_cifar10(tmp_path)
    path = tmp_path / 'cifar-10-batches-py' / 'data_batch_2'
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match='corrupt.*--download'):
        build_data(cfg(dataset='cifar10', data_dir=str(tmp_path)))


# ---------------------------------------------------------------- CIFAR pickles

def test_cifar10_pickles_are_read_as_rgb_nhwc(tmp_path):
    data, labels = write_cifar10(tmp_path)
    for data_dir in (tmp_path, tmp_path / 'cifar-10-batches-py'):   # parent or the folder
        d = build_data(cfg(dataset='cifar10', data_dir=str(data_dir), subset=50))
        assert (d.classes, d.num_train, d.num_test, d.class_names) == (10, 50, 30, CLASSES10)
        np.testing.assert_array_equal(d.train_x[7, 2, 3], data[7, [2 * 32 + 3 + c * 1024
                                                                   for c in range(3)]])
        np.testing.assert_array_equal(d.train_y, labels[:50])


def test_cifar100_uses_fine_labels(tmp_path):
    rng = np.random.default_rng(0)
    dest = tmp_path / 'cifar-100-python'
    dest.mkdir()
    fine = {s: rng.integers(0, 100, n).tolist() for s, n in (('train', 40), ('test', 10))}
    for split, labels in fine.items():
        dump(dest / split, {b'data': rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8),
                            b'fine_labels': labels, b'coarse_labels': [f // 5 for f in labels]})
    dump(dest / 'meta', {b'fine_label_names': [b'c%d' % i for i in range(100)],
                         b'coarse_label_names': [b'g%d' % i for i in range(20)]})
    d = build_data(cfg(dataset='cifar100', data_dir=str(tmp_path)))
    assert d.classes == 100 and len(d.class_names) == 100
    np.testing.assert_array_equal(d.train_y, fine['train'])
    np.testing.assert_array_equal(np.concatenate([y for _, y in d.test_batches(4)]), fine['test'])


def test_cifar_archive_in_data_dir_is_checked_and_extracted(tmp_path, monkeypatch):
    write_cifar10(tmp_path / 'src')
    data_dir = tmp_path / 'data'
    data_dir.mkdir()
    md5 = make_targz(tmp_path / 'src' / 'cifar-10-batches-py',
                     data_dir / 'cifar-10-python.tar.gz', 'cifar-10-batches-py')
    monkeypatch.setitem(cifar.SOURCES, 'cifar10', replace(cifar.SOURCES['cifar10'], md5='0' * 32))
    with pytest.raises(DataError, match='checksum mismatch.*--download'):
        build_data(cfg(dataset='cifar10', data_dir=str(data_dir)))
    monkeypatch.setitem(cifar.SOURCES, 'cifar10', replace(cifar.SOURCES['cifar10'], md5=md5))
    assert build_data(cfg(dataset='cifar10', data_dir=str(data_dir))).num_train == 100
    assert sorted(os.listdir(data_dir)) == ['cifar-10-batches-py', 'cifar-10-python.tar.gz']
    # an archive with the right checksum that is not a tar (e.g. truncated upstream)
    broken = tmp_path / 'broken'
    broken.mkdir()
    (broken / 'cifar-10-python.tar.gz').write_bytes(b'\x1f\x8b garbage')
    monkeypatch.setitem(cifar.SOURCES, 'cifar10', replace(
        cifar.SOURCES['cifar10'], md5=hashlib.md5(b'\x1f\x8b garbage').hexdigest()))
    with pytest.raises(DataError, match='cannot unpack.*--download'):
        build_data(cfg(dataset='cifar10', data_dir=str(broken)))
    assert os.listdir(broken) == ['cifar-10-python.tar.gz']     # no half-extracted folder


# ---------------------------------------------------------------- download (loopback)

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def archive_server(tmp_path):
    """An HTTP server on 127.0.0.1 serving a tiny cifar-10-python.tar.gz; yields (url, md5)."""
    root = tmp_path / 'www'
    root.mkdir()
    write_cifar10(tmp_path / 'src')
    md5 = make_targz(tmp_path / 'src' / 'cifar-10-batches-py', root / 'cifar-10-python.tar.gz',
                     'cifar-10-batches-py')
    server = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield 'http://127.0.0.1:%d/cifar-10-python.tar.gz' % server.server_address[1], md5
    server.shutdown()
    server.server_close()


def download_cfg(monkeypatch, tmp_path, url, md5):
    monkeypatch.setitem(cifar.SOURCES, 'cifar10',
                        replace(cifar.SOURCES['cifar10'], url=url, md5=md5))
    return cfg(dataset='cifar10', data_dir=str(tmp_path / 'dl'), download=True)


def test_download_verifies_and_extracts(archive_server, tmp_path, monkeypatch):
    url, md5 = archive_server
    d = build_data(download_cfg(monkeypatch, tmp_path, url, md5))
    assert (d.num_train, d.num_test) == (100, 30)
    assert sorted(os.listdir(tmp_path / 'dl')) == ['cifar-10-batches-py', 'cifar-10-python.tar.gz']


@pytest.mark.parametrize('case', ['checksum', 'offline', 'not_found'])
def test_download_failures_leave_no_file(archive_server, tmp_path, monkeypatch, case):
    url, md5 = archive_server
    if case == 'checksum':
        md5 = 'f' * 32
    elif case == 'not_found':
        url += '.missing'
    else:
        with socket.socket() as s:               # a loopback port nobody listens on
            s.bind(('127.0.0.1', 0))
            url = 'http://127.0.0.1:%d/x.tar.gz' % s.getsockname()[1]
    message = ('checksum mismatch.*deleted' if case == 'checksum'
               else 'could not download.*--data-dir')
    with pytest.raises(DataError, match=message):
        build_data(download_cfg(monkeypatch, tmp_path, url, md5))
    assert os.listdir(tmp_path / 'dl') == []


# ---------------------------------------------------------------- image folders

def test_folder_from_dir_and_targz_are_identical(tmp_path):
    pixels = write_folder(tmp_path / 'imgs')
    make_targz(tmp_path / 'imgs', tmp_path / 'imgs.tar.gz', 'mydata')   # with a top folder
    a = build_data(cfg(dataset='folder', data_dir=str(tmp_path / 'imgs'), pad=2))
    b = build_data(cfg(dataset='folder', data_dir=str(tmp_path / 'imgs.tar.gz'), pad=2))
    assert a.class_names == b.class_names == ['a_dog', 'b_cat', 'c_eel']
    assert a.train_y.tolist() == [0, 1, 2] * 4                          # round-robin order
    for name in ('train_x', 'train_y', 'test_x', 'test_y'):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.train_x[1], pixels['train/b_cat/000.png'])
    x, _ = next(iter(a.train_batches(4, 0, 0)))
    assert x.shape == (4, 3, 8, 6)


def remove_test_split(root):
    for p in sorted((root / 'test').rglob('*'), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    (root / 'test').rmdir()


def add_test_only_class(root):
    (root / 'test' / 'zebra').mkdir()
    cv2.imwrite(str(root / 'test' / 'zebra' / 'z.png'), np.zeros((8, 6, 3)))


def add_odd_size_image(root):
    cv2.imwrite(str(root / 'train' / 'a_dog' / 'big.png'), np.zeros((9, 9, 3)))


def add_corrupt_image(root):
    (root / 'train' / 'a_dog' / 'bad.jpg').write_bytes(b'not a jpeg')


def add_empty_class(root):
    (root / 'train' / 'd_empty').mkdir()


@pytest.mark.parametrize('breakage, message', [
    (None, 'does not exist.*--data-dir'),        # None: the folder does not exist at all
    (remove_test_split, 'no test/ folder.*test/<class>'),
    (add_test_only_class, 'extra in test: zebra.*same class folders'),
    (add_odd_size_image, 'differ in size.*--dataset imagenet'),
    (add_corrupt_image, 'cannot decode train/a_dog/bad.jpg.*delete or replace'),
    (add_empty_class, 'no images: add images or remove'),
])
def test_folder_errors(tmp_path, breakage, message):
    root = tmp_path / 'imgs'
    if breakage is not None:
        write_folder(root)
        breakage(root)
    with pytest.raises(DataError, match=message):
        build_data(cfg(dataset='folder', data_dir=str(root)))


# ---------------------------------------------------------------- ImageNet RecordIO

@pytest.fixture(scope='module')
def rec_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp('rec')
    rng = np.random.default_rng(0)
    return root, write_rec(root, 'train', 40, rng), write_rec(root, 'val', 12, rng)


def test_imagenet_rec_views_labels_and_colours(rec_dir):
    root, (train_colours, train_labels), (val_colours, val_labels) = rec_dir
    d = build_data(cfg(dataset='imagenet', data_dir=str(root), crop_size=24, test_crop=20))
    assert (d.classes, d.num_train, d.num_test) == (4, 40, 12)
    assert d.mean == augment.IMAGENET_MEAN and d.std == augment.IMAGENET_STD
    batches = list(d.test_batches(5))
    assert [b[0].shape for b in batches] == [(5, 3, 20, 20)] * 2 + [(2, 3, 20, 20)]
    x = np.concatenate([b[0] for b in batches])
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), val_labels)
    np.testing.assert_allclose(unnormalise(x, d).mean(axis=(1, 2)), val_colours, atol=6)
    x, y = next(iter(d.train_batches(8, seed=0, epoch=0)))
    idx = epoch_order(0, 0, 40)[:8]
    assert x.shape == (8, 3, 24, 24) and y.tolist() == train_labels[idx].tolist()
    np.testing.assert_allclose(unnormalise(x, d).mean(axis=(1, 2)), train_colours[idx], atol=6)
    d.close()


def test_imagenet_workers_resume_and_subset(rec_dir):
    root = rec_dir[0]
    runs = []
    for workers, start in ((0, 0), (2, 0), (2, 2)):
        d = build_data(cfg(dataset='imagenet', data_dir=str(root), crop_size=16,
                           num_workers=workers, subset=32))
        assert d.num_train == 32 and d.steps_per_epoch(8) == 4
        runs.append([None] * start + list(d.train_batches(8, seed=4, epoch=1, start=start)))
        d.close()
    for a, b, c in zip(*runs):
        np.testing.assert_array_equal(a[0], b[0])
        if c is not None:
            np.testing.assert_array_equal(a[0], c[0])
    with pytest.raises(DataError, match='--subset'):
        build_data(cfg(dataset='imagenet', data_dir=str(root), subset=41))


def test_imagenet_bad_records(tmp_path):
    record = mx.recordio.MXIndexedRecordIO(str(tmp_path / 'train.idx'),
                                           str(tmp_path / 'train.rec'), 'w')
    for i in range(4):
        record.write_idx(i, mx.recordio.pack(mx.recordio.IRHeader(0, 0.0, i, 0), b'not a jpeg'))
    record.close()
    for split in ('val.rec', 'val.idx'):
        (tmp_path / split).write_bytes((tmp_path / split.replace('val', 'train')).read_bytes())
    d = build_data(cfg(dataset='imagenet', data_dir=str(tmp_path), num_workers=2))
    with pytest.raises(DataError, match='does not decode as an image.*im2rec'):
        list(d.train_batches(2, 0, 0))                  # raised in a worker, seen here
    d.close()
    (tmp_path / 'val.idx').write_text('0\t5\n')         # an offset inside a record
    with pytest.raises(DataError, match='not where its .idx says.*im2rec'):
        build_data(cfg(dataset='imagenet', data_dir=str(tmp_path)))


def test_imagenet_missing_files(tmp_path):
    with pytest.raises(DataError, match='does not exist.*--data-dir'):
        build_data(cfg(dataset='imagenet', data_dir=str(tmp_path / 'absent')))
    with pytest.raises(DataError, match='missing .*train.rec.*im2rec'):
        build_data(cfg(dataset='imagenet', data_dir=str(tmp_path)))


# ---------------------------------------------------------------- the real CIFAR-10

@pytest.fixture(scope='session')
def full_cifar10(tmp_path_factory):
    need_shared()
    out = tmp_path_factory.mktemp('cifar_full')
    subprocess.run([sys.executable, str(SHARED / 'data' / 'make_cifar_python.py'), str(out)],
                   check=True, capture_output=True)
    return out


def test_full_cifar10_pickles_match_the_jpeg_sample(full_cifar10, sample):
    d = build_data(cfg(dataset='cifar10', data_dir=str(full_cifar10)))
    assert (d.classes, d.num_train, d.num_test) == (10, 50000, 10000)
    assert np.bincount(d.train_y).tolist() == [5000] * 10
    # the values ../shared/data/README.md states for this train split
    np.testing.assert_allclose(d.mean, (0.4913, 0.4821, 0.4465), atol=1e-4)
    np.testing.assert_allclose(d.std, (0.2452, 0.2428, 0.2606), atol=1e-4)
    # the pickles (decoded by PIL, stored as CHW rows) and the sample (cv2, BGR -> RGB)
    # hold the same pixels and labels for the same source JPEG
    where = {n: i for i, n in enumerate(d.train_names)}         # 'airplane_0123.jpg'
    for j in range(0, sample.num_train, 97):
        _, cls, fname = sample.train_names[j].split('/')
        i = where['%s_%s' % (cls, fname)]
        assert d.train_y[i] == sample.train_y[j] == CLASSES10.index(cls)
        assert np.abs(d.train_x[i].astype(int) - sample.train_x[j]).mean() < 0.5
    assert len(np.unique(d.train_y[:100])) == 10    # the fixed order already mixes classes
