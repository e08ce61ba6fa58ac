#!/usr/bin/env python3
"""A FUSE pass-through file system that fails on command, for the backstore failure tests
(in the spirit of dm-flakey, for files): it mirrors BACKING at MOUNTPOINT with direct I/O (no
page cache in between, so every pread/pwrite/fdatasync of the gateway reaches it) and fails
operations on files named *.img while CONTROL (a text file, read at every operation) says so:

    read_eio START END    reads overlapping [START, END) bytes fail with EIO
    write_eio START END   writes overlapping [START, END) fail with EIO
    fsync_eio             fsync/fdatasync fail with EIO

usage: /usr/bin/python3 faultfs.py BACKING MOUNTPOINT CONTROL   (foreground; needs python3-fusepy)
Test-only: nothing in the product uses it.
"""
import errno
import os
import sys

try:
    from fusepy import FUSE, FuseOSError, Operations  # Debian's python3-fusepy
except ImportError:
    from fuse import FUSE, FuseOSError, Operations  # the same module from PyPI


class Faults:
    def __init__(self, path):
        self.path = path
        self.stamp = None
        self.read = []
        self.write = []
        self.fsync = False

    def refresh(self):
        # Re-read on every operation: the file is tiny and timestamps are too coarse to trust.
        try:
            with open(self.path) as f:
                text = f.read()
        except FileNotFoundError:
            text = ''
        if text == self.stamp:
            return
        self.stamp = text
        self.read, self.write, self.fsync = [], [], False
        for line in text.splitlines():
            words = line.split()
            if not words:
                continue
            if words[0] == 'read_eio':
                self.read.append((int(words[1]), int(words[2])))
            elif words[0] == 'write_eio':
                self.write.append((int(words[1]), int(words[2])))
            elif words[0] == 'fsync_eio':
                self.fsync = True


def overlaps(ranges, offset, size):
    return any(start < offset + size and offset < end for start, end in ranges)


class FaultFS(Operations):
    def __init__(self, backing, control):
        self.backing = backing
        self.faults = Faults(control)

    def _path(self, path):
        return os.path.join(self.backing, path.lstrip('/'))

    def _target(self, path):
        return path.endswith('.img')

    def getattr(self, path, fh=None):
        st = os.lstat(self._path(path))
        keys = ('st_atime', 'st_ctime', 'st_gid', 'st_mode', 'st_mtime', 'st_nlink', 'st_size', 'st_uid', 'st_blocks')
        return {k: getattr(st, k) for k in keys}

    def readdir(self, path, fh):
        return ['.', '..'] + os.listdir(self._path(path))

    def statfs(self, path):
        st = os.statvfs(self._path(path))
        keys = ('f_bavail', 'f_bfree', 'f_blocks', 'f_bsize', 'f_favail', 'f_ffree', 'f_files', 'f_flag', 'f_frsize', 'f_namemax')
        return {k: getattr(st, k) for k in keys}

    def open(self, path, flags):
        return os.open(self._path(path), flags)

    def create(self, path, mode, fi=None):
        return os.open(self._path(path), os.O_RDWR | os.O_CREAT, mode)

    def unlink(self, path):
        os.unlink(self._path(path))

    def truncate(self, path, length, fh=None):
        if fh is not None:
            os.ftruncate(fh, length)
        else:
            os.truncate(self._path(path), length)

    def read(self, path, size, offset, fh):
        if self._target(path):
            self.faults.refresh()
            if overlaps(self.faults.read, offset, size):
                raise FuseOSError(errno.EIO)
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        if self._target(path):
            self.faults.refresh()
            if overlaps(self.faults.write, offset, len(data)):
                raise FuseOSError(errno.EIO)
        return os.pwrite(fh, data, offset)

    def fsync(self, path, datasync, fh):
        if self._target(path):
            self.faults.refresh()
            if self.faults.fsync:
                raise FuseOSError(errno.EIO)
        os.fsync(fh)
        return 0

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        os.close(fh)
        return 0


if __name__ == '__main__':
    backing, mountpoint, control = sys.argv[1:4]
    FUSE(FaultFS(backing, control), mountpoint, foreground=True, nothreads=False, direct_io=True)
