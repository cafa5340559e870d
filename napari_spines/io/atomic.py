"""All-or-nothing writes: a crash, a ``kill -9`` or a full disk never leaves a half output.

A file (`atomic_path`) or a folder (`atomic_folder`) is written under a temporary name beside
its target, flushed to disk (fsync) and renamed onto the target only once it is complete. The
temporary names are recognisably ours and carry the writing process and host::

    .{name}.{pid}-{host}-{n}.napari-spines-tmp{suffix}   being written
    .{name}.{pid}-{host}-{n}.napari-spines-old{suffix}   the replaced folder, during a swap

so that a later write into the same folder removes what a killed writer left behind
(`remove_stale_temporaries`), and puts back a folder whose swap a kill interrupted
(`recover_folder`). Temporaries of a live process, or of another host, are never touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import re
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

#: What every temporary name of ours holds.
MARK = ".napari-spines-"
_NAME = re.compile(
    r"^\.(?P<name>.+)\.(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-\d+"
    r"\.napari-spines-(?P<kind>tmp|old)(?P<suffix>.*)$"
)
_COUNTER = itertools.count()
_HOST = hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def is_temporary(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named as one of our temporary files or folders.

    Parameters
    ----------
    path
        A file or folder; only its name is looked at.

    Returns
    -------
    bool
        True for a name made by `atomic_path` or `atomic_folder`.
    """
    return _NAME.match(Path(path).name) is not None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    The temporary file keeps the target's suffix so writers that look at it behave the same;
    it is fsynced before the rename and the folder after it. When the block raises, the
    temporary file is removed and ``path`` is left as it was. Stale temporaries of killed
    writers in the folder are removed first (`remove_stale_temporaries`).

    Parameters
    ----------
    path
        The file to write; missing parent folders are created.

    Yields
    ------
    pathlib.Path
        The temporary file to write to (it exists, empty).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target.parent)
    tmp = _temporary(target, "tmp")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # the umask applies
    try:
        yield tmp
        fsync(tmp)
        os.replace(tmp, target)
        fsync(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``path``; swap it in for ``path`` on success.

    Everything in it is fsynced, then an existing ``path`` (folder or file) is renamed away,
    the new folder renamed onto ``path`` and the old one deleted. A kill between those two
    renames leaves no ``path``: the next write into the folder, or `recover_folder`, puts the
    old one back. When the block raises, the temporary folder is removed and ``path`` is left
    as it was.

    Parameters
    ----------
    path
        The folder to write; missing parent folders are created.

    Yields
    ------
    pathlib.Path
        The temporary folder to write into (it exists, empty).
    """
    target = Path(os.path.abspath(path))  # "." or "out/" name their folder
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target.parent)
    tmp = _temporary(target, "tmp")
    tmp.mkdir()
    try:
        yield tmp
        for root, folders, files in os.walk(tmp, topdown=False):
            for name in (*files, *folders):
                if not os.path.islink(entry := os.path.join(root, name)):
                    fsync(Path(entry))
        fsync(tmp)
        _swap(tmp, target)
    except BaseException:
        _remove(tmp)
        raise


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Clean up after writers that were killed: remove their temporaries, recover their swaps.

    Only names of ours (`is_temporary`) made on this host by a process that is no longer alive
    are touched. A replaced folder whose target is missing (a kill between the two renames of
    `atomic_folder`) is renamed back onto it; otherwise it is deleted, as are temporaries.

    Parameters
    ----------
    folder
        The folder to clean; nothing happens when it is missing or cannot be changed.

    Returns
    -------
    list of pathlib.Path
        The paths removed or put back (their names before).
    """
    return _clean(Path(folder), None)


def recover_folder(path: str | os.PathLike) -> bool:
    """Put back the earlier ``path`` when a killed `atomic_folder` left it renamed away.

    Readers may call this before opening a folder written by `atomic_folder`; it touches only
    the temporaries of ``path`` (see `remove_stale_temporaries`).

    Parameters
    ----------
    path
        The target folder of an earlier `atomic_folder`.

    Returns
    -------
    bool
        True when ``path`` was put back.
    """
    target = Path(path)
    if os.path.lexists(target):
        return False
    _clean(target.parent, target.name)
    return os.path.lexists(target)


def _temporary(target: Path, kind: str) -> Path:
    name = f".{target.name}.{os.getpid()}-{_HOST}-{next(_COUNTER)}{MARK}{kind}{target.suffix}"
    return target.with_name(name)


def _swap(tmp: Path, target: Path) -> None:
    """Rename ``target`` away, ``tmp`` onto it, then delete the old one."""
    old = None
    if os.path.lexists(target):
        old = _temporary(target, "old")
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    fsync(target.parent)
    if old is not None:
        _remove(old)


def _clean(folder: Path, only: str | None) -> list[Path]:
    try:
        entries = [(m, p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    except OSError:
        return []
    done = []
    # replaced folders first: a target put back is then never taken for a finished swap
    for match, entry in sorted(entries, key=lambda e: e[0]["kind"] != "old"):
        if only is not None and match["name"] != only:
            continue
        if match["host"] != _HOST or _alive(int(match["pid"])):
            continue
        target = folder / match["name"]
        try:
            if match["kind"] == "old" and not os.path.lexists(target):
                os.replace(entry, target)
                logger.warning("put back %s: its replacement was interrupted", target)
            else:
                _remove(entry)
        except OSError as exc:  # another process cleaned it, or the folder is read-only
            logger.debug("could not clean %s: %s", entry, exc)
            continue
        done.append(entry)
    if done:
        fsync(folder)
    return done


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (on this host); True when that cannot be told."""
    if pid == os.getpid():
        return True
    if sys.platform == "win32":
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return kernel32.GetLastError() == 5  # access denied: it runs, as another user
        try:
            code = ctypes.c_ulong()
            return not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)) or code.value == 259
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True
    return True


def fsync(path: Path) -> None:
    """Flush a file, or a folder's entries, to disk (folders: not possible on Windows).

    Parameters
    ----------
    path
        The file or folder.
    """
    if path.is_dir():
        if sys.platform == "win32":
            return
        flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    else:
        flags = os.O_RDWR if sys.platform == "win32" else os.O_RDONLY
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
