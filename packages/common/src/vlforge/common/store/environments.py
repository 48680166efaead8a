"""One LMDB environment per store directory per process, shared by every CaptionStore object on that directory.

Why: LMDB forbids opening the same environment twice in one process (its fcntl locks belong to the process), and
py-lmdb refuses a second open. An environment must also never be used across ``fork()``: a child that uses or
closes its parent's handle corrupts the parent's reader slots, and py-lmdb's guard stops the child from opening its
own while the inherited handle exists. So this registry

- opens each environment lazily, read-only unless some store in the process writes to it (then read-write);
- closes every environment in the parent just before any fork (``os.register_at_fork``); parent and child then
  reopen on their next access. No transaction of ours outlives a method call, so none is open at a fork.
  Forking while another thread is inside a store call is not supported.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import lmdb

from vlforge.common.errors import VLForgeError


@dataclass
class _Shared:
    writable: bool
    lock: bool
    map_size: int
    users: int = 0
    env: lmdb.Environment | None = None


_SHARED: dict[str, _Shared] = {}
_GUARD = threading.RLock()


def acquire(path: str, writable: bool, lock: bool, map_size: int) -> str:
    """Register one user of the store at ``path``; returns the registry key. Upgrades an open read-only (or
    lock-free) environment when a writer (or a locking reader) joins."""
    key = os.path.realpath(path)
    with _GUARD:
        shared = _SHARED.get(key)
        if shared is None:
            shared = _SHARED[key] = _Shared(writable=writable, lock=lock or writable, map_size=map_size)
        elif (writable and not shared.writable) or (lock and not shared.lock):
            _close(shared)
            shared.writable = shared.writable or writable
            shared.lock = shared.lock or lock or writable
        shared.map_size = max(shared.map_size, map_size)
        shared.users += 1
        return key


def release(key: str) -> None:
    """Drop one user; the environment is closed when its last user is gone."""
    with _GUARD:
        shared = _SHARED.get(key)
        if shared is None:
            return
        shared.users -= 1
        if shared.users <= 0:
            _close(shared)
            del _SHARED[key]


def environment(key: str) -> lmdb.Environment:
    """The open environment for a registered store, opening it on first use in this process."""
    shared = _SHARED.get(key)
    if shared is not None and shared.env is not None:
        return shared.env
    with _GUARD:
        shared = _SHARED.get(key)
        if shared is None:
            raise VLForgeError(f"store {key!r} is closed")
        if shared.env is None:
            shared.env = _open_in_place(key, readonly=not shared.writable, lock=shared.lock, map_size=shared.map_size)
        return shared.env


class StoreMoved(VLForgeError):
    """The store directory was gone, or replaced by another one, while its environment was being opened."""


def _directory_identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _open_in_place(path: str, readonly: bool, lock: bool, map_size: int) -> lmdb.Environment:
    """Open an existing store's environment. LMDB opens ``lock.mdb`` and ``data.mdb`` by name one after the other, so
    a store moved away (``CaptionStore.remove_if_unused``) and made again at the same path during the open could pair
    one store's lock file with the other's data file; the directory is checked to be the same before and after."""
    before = _directory_identity(path)
    if before is None:
        raise StoreMoved(f"store {path!r} does not exist (it was removed)")
    try:
        env = open_environment(path, readonly=readonly, lock=lock, map_size=map_size, create=False)
    except (VLForgeError, FileNotFoundError):  # e.g. data.mdb gone, or sized against the other store's file
        if _directory_identity(path) != before:
            raise StoreMoved(f"store {path!r} was moved away while it was being opened") from None
        raise
    if _directory_identity(path) != before:
        env.close()
        raise StoreMoved(f"store {path!r} was replaced while it was being opened")
    return env


def open_environment(path: str, readonly: bool, lock: bool, map_size: int, create: bool = False) -> lmdb.Environment:
    """Open the environment and check ``data.mdb`` holds every page its meta page names, before any page is read
    through the memory map (reading a page past the end of a truncated file is a SIGBUS, not an error)."""
    try:
        env = lmdb.open(path, subdir=True, readonly=readonly, lock=lock, create=create, map_size=map_size,
                        max_dbs=0, readahead=False, meminit=False, max_readers=1024)
    except lmdb.Error as err:
        hint = " (a read-only location needs lock=False)" if readonly and lock else ""
        raise VLForgeError(f"cannot open store {path!r}: {err}{hint}") from None
    try:
        check_file_size(path, env)
    except BaseException:
        env.close()
        raise
    return env


def check_file_size(path: str, env: lmdb.Environment) -> None:
    """A one-line error when ``data.mdb`` is shorter than (last page + 1) x page size of the newest meta page.

    LMDB writes data pages before the meta page that names them, so a committed store is never shorter; a shorter
    file was truncated (a failed copy, a full disk, a damaged medium). The meta pages are read with pread at open.
    """
    data_file = os.path.join(path, "data.mdb")
    size = os.stat(data_file).st_size
    needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    if size < needed:
        raise VLForgeError(f"store {path!r} is damaged: data.mdb has {size} bytes but its last committed page needs "
                           f"{needed} (the file was truncated); restore it from a copy")


def _close(shared: _Shared) -> None:
    if shared.env is not None:
        shared.env.close()
        shared.env = None


def _close_all_before_fork() -> None:
    with _GUARD:
        for shared in _SHARED.values():
            _close(shared)


os.register_at_fork(before=_close_all_before_fork)
