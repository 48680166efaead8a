"""Writing an output file or folder safely: atomically (a temporary file or folder beside the target, complete
before it is renamed into place, so a killed writer leaves the old output or the new one, never half of one) and
never onto its own input."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from vlforge.common.errors import VLForgeError


def check_output_path(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = (),
                      folder: bool = False) -> str:
    """``out`` as a string, after refusing an output that is one of ``inputs`` (None entries are skipped), lies
    inside an input folder (a store directory) or exists and is not a regular file (a FIFO or a device would block
    or be destroyed; with ``folder``, an output folder, it must be a directory)."""
    out = os.fspath(out)
    real_out = os.path.realpath(out)
    for source in (s for s in inputs if s is not None):
        real_in = os.path.realpath(os.fspath(source))
        if real_out == real_in or (os.path.isdir(real_in) and os.path.commonpath([real_in, real_out]) == real_in):
            raise VLForgeError(f"output {out!r} would overwrite the input {os.fspath(source)!r}; write elsewhere")
    try:
        mode = os.stat(out).st_mode
    except FileNotFoundError:
        return out
    except OSError as err:
        raise VLForgeError(f"output {out!r} cannot be checked: {err.strerror or err}") from None
    if folder and not stat.S_ISDIR(mode):
        raise VLForgeError(f"output folder {out!r} exists and is not a directory")
    if not folder and not stat.S_ISREG(mode):
        raise VLForgeError(f"output {out!r} exists and is not a regular file")
    return out


@contextlib.contextmanager
def atomic_output(out: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (), binary: bool = False,
                  newline: str | None = None) -> Iterator[IO]:
    """A file object whose content replaces ``out`` only when the block ends without an exception."""
    out = check_output_path(out, inputs)
    parent = os.path.dirname(os.path.abspath(out))
    try:
        os.makedirs(parent, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(out)}.", suffix=".tmp", dir=parent)
    except OSError as err:
        raise VLForgeError(f"cannot write {out!r}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": newline})
                       ) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_atomically(out: str | os.PathLike, data: str | bytes, inputs: Iterable[str | os.PathLike] = ()) -> None:
    with atomic_output(out, inputs, binary=isinstance(data, bytes)) as f:
        f.write(data)


@contextlib.contextmanager
def atomic_folder(out: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Iterator[Path]:
    """An empty folder beside ``out`` to write into; when the block ends without an exception it is renamed to
    ``out`` (an existing ``out`` is replaced), so a killed or failed writer never leaves a half folder under the
    target's name. Refused in one line: an ``out`` that is, lies in or holds one of ``inputs``, and replacing a
    folder that holds files the new one does not (an unrelated folder is never deleted)."""
    inputs = [os.fspath(source) for source in inputs if source is not None]
    out = os.path.realpath(check_output_path(out, inputs, folder=True))  # a link: its target is replaced
    for source in inputs:
        if os.path.commonpath([out, os.path.realpath(source)]) == out:
            raise VLForgeError(f"output folder {out!r} holds the input {source!r}; write elsewhere")
    tmp = os.path.join(os.path.dirname(out), f".{os.path.basename(out)}.{secrets.token_hex(4)}.tmp")
    try:
        os.makedirs(tmp)
    except OSError as err:
        raise VLForgeError(f"cannot write {out!r}: {err.strerror or err}") from None
    try:
        yield Path(tmp)
        _replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace_folder(new: str, out: str) -> None:
    if not os.path.isdir(out):
        os.rename(new, out)
        return
    extra = sorted(set(os.listdir(out)) - set(os.listdir(new)))
    if extra:
        raise VLForgeError(f"output folder {out!r} holds {', '.join(extra[:3])}{' ...' * (len(extra) > 3)}, which "
                           "this export does not write; remove it or write elsewhere")
    old = new.removesuffix(".tmp") + ".old"
    os.rename(out, old)  # a kill from here to the next rename leaves both folders complete beside ``out``
    os.rename(new, out)
    shutil.rmtree(old)
