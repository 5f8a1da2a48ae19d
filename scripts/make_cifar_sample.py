#!/usr/bin/env python3
"""Build the embedded CIFAR-10 sample (gluon_resnet_v2/data/cifar10_sample.tar.gz).

    python scripts/make_cifar_sample.py [--source ../shared/data/cifar10-jpeg.tar.gz]
                                        [--out gluon_resnet_v2/data/cifar10_sample.tar.gz]

Class-balanced: from each class, the 500 train and 100 test files with the smallest
sha256("<seed>:<split>/<class>/<file>") — a selection that depends on nothing but the
names and the seed (no RNG whose stream could change between numpy versions). The JPEG
bytes are copied unchanged. The archive is byte-for-byte reproducible: members sorted,
mtime/uid/gid zeroed, gzip header without time stamp. See gluon_resnet_v2/data/SAMPLE.md.
"""
import argparse
import gzip
import hashlib
import io
import os
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(os.path.dirname(ROOT), 'shared', 'data', 'cifar10-jpeg.tar.gz')
OUT = os.path.join(ROOT, 'gluon_resnet_v2', 'data', 'cifar10_sample.tar.gz')
PER_CLASS = {'train': 500, 'test': 100}
SEED = 0


def read_source(path):
    """{(split, class): {file name: bytes}} of every JPEG in the source archive."""
    files = {}
    with tarfile.open(path) as tar:
        for member in tar:
            parts = member.name.split('/')
            if member.isfile() and len(parts) == 3 and parts[0] in PER_CLASS:
                files.setdefault((parts[0], parts[1]), {})[parts[2]] = \
                    tar.extractfile(member).read()
    return files


def select(files, seed, per_class):
    """[(archive name, bytes)] of the chosen files, sorted by name."""
    chosen = []
    for (split, cls), by_name in sorted(files.items()):
        def rank(name):
            return hashlib.sha256(('%d:%s/%s/%s' % (seed, split, cls, name)).encode()).digest()
        names = sorted(by_name, key=rank)[:per_class[split]]
        if len(names) < per_class[split]:
            raise SystemExit('%s/%s has only %d files' % (split, cls, len(names)))
        chosen += [('%s/%s/%s' % (split, cls, n), by_name[n]) for n in names]
    return sorted(chosen)


def write_archive(members, out):
    """A deterministic .tar.gz: same input -> same bytes."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename='', mode='wb', fileobj=buffer, compresslevel=9, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode='w', format=tarfile.USTAR_FORMAT) as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))
    tmp = out + '.part'
    with open(tmp, 'wb') as f:
        f.write(buffer.getvalue())
    os.replace(tmp, out)   # never leave a half-written sample in the package
    return buffer.getvalue()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--source', default=SOURCE, help='cifar10-jpeg.tar.gz')
    parser.add_argument('--out', default=OUT, help='the sample archive to write')
    parser.add_argument('--seed', type=int, default=SEED)
    args = parser.parse_args()
    members = select(read_source(args.source), args.seed, PER_CLASS)
    blob = write_archive(members, args.out)
    counts = {s: sum(n.startswith(s + '/') for n, _ in members) for s in PER_CLASS}
    print('%s: %d train + %d test images, %d bytes, sha256 %s'
          % (args.out, counts['train'], counts['test'], len(blob),
             hashlib.sha256(blob).hexdigest()))


if __name__ == '__main__':
    main()
