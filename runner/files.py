"""Reading input files as untrusted (regular, bounded, UTF-8), writing output files without following
symbolic links, and command-line types for output paths.

A file option must not name a directory or a symbolic link; a folder option must not name a file or
a link; files go into folders with O_NOFOLLOW, so a link planted inside an output folder is refused
instead of followed out of it.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import stat
from pathlib import Path
from typing import Any


class OutputError(ValueError):
    """An output path that cannot be written as asked; str() is the one line the CLI prints."""


def _refuse(path: Path, why: str) -> None:
    raise argparse.ArgumentTypeError(f"{path}: {why}")


def output_file(text: str) -> Path:
    """argparse type of a file to write (created with its folder when written)."""
    path = Path(text)
    if path.is_symlink():
        _refuse(path, "is a symbolic link (not followed): name the file itself")
    if path.is_dir():
        _refuse(path, "is a directory: name a file to write")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            _refuse(path, f"{parent} is not a directory")
    return path


def output_dir(text: str) -> Path:
    """argparse type of a folder to write files into (created when written)."""
    path = Path(text)
    if path.is_symlink():
        _refuse(path, "is a symbolic link (not followed): name the folder itself")
    if path.exists() and not path.is_dir():
        _refuse(path, "is a file: name a folder to write into")
    return path


def write(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` (its folders made), refusing to follow a symbolic link at `path`."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        if path.parent.is_symlink():  # e.g. DIR/<strategy>/ planted as a link out of DIR
            raise OutputError(f"{path.parent}: is a symbolic link inside the output folder (not followed)")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        why = "is a symbolic link (not followed)" if exc.errno == errno.ELOOP else exc.strerror
        raise OutputError(f"{path}: cannot write: {why}") from None
    with os.fdopen(fd, "wb") as out:
        out.write(raw)


class InputError(ValueError):
    """An input file that cannot be read as what it should be; str() is the one line the CLI prints."""


def read_text(path: Path, limit: int, what: str, follow_links: bool = False) -> str:
    """The UTF-8 text of `path`, a regular file (not a FIFO or device; not a link unless `follow_links`)
    of at most `limit` bytes."""
    try:
        info = path.stat() if follow_links else path.lstat()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    if stat.S_ISLNK(info.st_mode):
        raise InputError(f"{path}: is a symbolic link (not followed): {what} is a regular file")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{path}: not a regular file ({what} is one)")
    if info.st_size > limit:
        raise InputError(f"{path}: {info.st_size} bytes; {what} is at most {limit} bytes")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | (0 if follow_links else os.O_NOFOLLOW))
        with os.fdopen(fd, "rb") as handle:
            raw = handle.read(limit + 1)
        return raw[:limit].decode("utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})") from None


def read_json_object(path: Path, limit: int, what: str) -> dict[str, Any]:
    """A JSON object from `path` (read_text's checks, then JSON, then an object)."""
    text = read_text(path, limit, what)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{path}: not JSON: {' '.join(str(exc).split())[:200]}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: must be a JSON object, got {type(data).__name__}")
    return data
