"""Checksum-verified downloads that never leave a partial or corrupt file behind.

The file is streamed into a temporary `.part` file beside its destination and renamed
into place only after its MD5 matched, so an interrupted or bad download cannot be
mistaken for a good archive on the next run.
"""
import hashlib
import http.client
import logging
import os
import tempfile
import urllib.request

from .base import DataError

log = logging.getLogger(__name__)
_CHUNK = 1 << 20
TIMEOUT = 60  # seconds without data before a download is abandoned


def md5sum(path):
    digest = hashlib.md5()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(_CHUNK), b''):
            digest.update(block)
    return digest.hexdigest()


def download(url, dest, md5, what):
    """Fetch `url` to `dest` (a file path) if its MD5 is `md5`; else raise DataError.

    `what` names the dataset in messages."""
    folder = os.path.dirname(dest) or '.'
    os.makedirs(folder, exist_ok=True)
    fd, part = tempfile.mkstemp(prefix=os.path.basename(dest) + '.', suffix='.part', dir=folder)
    log.info('downloading %s to %s', url, dest)
    try:
        with os.fdopen(fd, 'wb') as out:
            got = _stream(url, out, what, dest)
        if got != md5:
            raise DataError('%s: checksum mismatch for %s (md5 %s, expected %s); the download '
                            'was deleted: retry --download, or fetch the file by hand into %s'
                            % (what, url, got, md5, folder))
        os.replace(part, dest)
    finally:
        if os.path.exists(part):
            os.remove(part)


def _stream(url, out, what, dest):
    """Copy the response body into `out`; returns its MD5. Network errors -> DataError."""
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            for block in iter(lambda: response.read(_CHUNK), b''):
                digest.update(block)
                out.write(block)
    except (OSError, ValueError, http.client.HTTPException) as e:  # URLError is an OSError
        reason = getattr(e, 'reason', None) or e
        raise DataError('%s: could not download %s (%s): check the network, or fetch it by '
                        'hand to %s, or point --data-dir at a folder that has the data'
                        % (what, url, reason, dest)) from None
    return digest.hexdigest()
