"""Claiming the output name, so a run never replaces a video it did not make.

A run claims ``<folder>/<name>.mp4`` by creating ``<folder>/.<name>.mp4.lock`` exclusively (an
atomic ``O_EXCL`` create) holding its pid. A second run asking for the same name while the first
is writing fails at once; a default name (``output/<date>_...``) instead moves on to ``_2``,
``_3``... so two runs started in the same second both keep their video. Leftovers of runs that
were killed (SIGKILL, power loss) are recognised by their dead pid and tidied by the next run in
the same folder: the lock is removed and a hidden ``.<name>.<pid>.tmp.mp4`` becomes a visible
``<name>.partial.mp4`` (its finished frames are playable), or is removed when empty.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from liveavatar.errors import UserError

_TMP = re.compile(r"^\.(?P<stem>.+)\.(?P<pid>\d+)\.tmp(?P<suffix>\.mp4)$")
_LOCK = re.compile(r"^\.(?P<name>.+\.mp4)\.lock$")
MAX_UNIQUE = 1000


@dataclass(frozen=True)
class Claim:
    """An output name held by this process until :meth:`release`."""

    path: Path
    lock: Path

    def release(self) -> None:
        self.lock.unlink(missing_ok=True)


def lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except (OverflowError, OSError):
        return False
    return _could_be_us(pid)


def _could_be_us(pid: int) -> bool:
    """False when the pid was reused by a program that is not Python (Linux; elsewhere, trust the pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    return b"python" in cmdline or b"liveavatar" in cmdline


def _lock_owner(lock: Path) -> int | None:
    try:
        return int(lock.read_text().strip() or "0")
    except (OSError, ValueError):
        return None


def _try_lock(lock: Path) -> bool:
    """Create ``lock`` exclusively; False if it exists. Other failures are the folder's: one line."""
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    except OSError as exc:
        raise UserError(
            "--save_file",
            f"cannot write in the folder {lock.parent} ({exc.strerror})",
            "choose a folder you can write to",
        ) from None
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    return True


def _numbered(path: Path, n: int) -> Path:
    return path if n == 1 else path.with_name(f"{path.stem}_{n}{path.suffix}")


def _refuse_special(path: Path) -> None:
    if path.is_dir():
        raise UserError("--save_file", f"{path} is a folder", "give a file name ending in .mp4")
    if path.exists() and not path.is_file():
        raise UserError(
            "--save_file",
            f"{path} is not a regular file (a device, pipe or socket)",
            "give the name of an ordinary .mp4 file",
        )


def claim_output(path: Path, overwrite: bool, unique: bool = False) -> Claim:
    """Hold ``path`` (or, with ``unique``, the first free ``path_N``) for this run.

    Without ``overwrite`` an existing file is never replaced; a name another live run is writing
    is never shared, even with ``overwrite``.
    """
    for n in range(1, MAX_UNIQUE + 1):
        candidate = _numbered(path, n)
        _refuse_special(candidate)
        lock = lock_path(candidate)
        if not _try_lock(lock):
            owner = _lock_owner(lock)
            if owner is not None and not pid_alive(owner):
                lock.unlink(missing_ok=True)  # a killed run's claim
                if _try_lock(lock):
                    return _checked(Claim(candidate, lock), overwrite, unique)
            if unique:
                continue
            raise UserError(
                "--save_file",
                f"another liveavatar run (pid {owner}) is writing {candidate}",
                "wait for it to finish or choose another --save_file",
            )
        claim = _checked(Claim(candidate, lock), overwrite, unique)
        if claim is not None:
            return claim
    raise UserError("--save_file", f"{MAX_UNIQUE} videos named like {path} already exist", "choose another --save_file")


def _checked(claim: Claim, overwrite: bool, unique: bool) -> Claim | None:
    """The claim if its file may be written; None (released) to try the next default name."""
    if claim.path.exists() and not overwrite:
        claim.release()
        if unique:
            return None
        raise UserError(
            "--save_file", f"{claim.path} already exists", "pass --overwrite to replace it, or choose another name"
        )
    return claim


def tidy_stale(folder: Path, notify: Callable[[str], None]) -> None:
    """Clear what killed runs left in ``folder``: their locks, and their temp files (kept as partials)."""
    from liveavatar.media.writer import keep_as_partial

    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        lock = _LOCK.match(entry.name)
        if lock:
            owner = _lock_owner(entry)
            if owner is not None and not pid_alive(owner):
                entry.unlink(missing_ok=True)
            continue
        tmp = _TMP.match(entry.name)
        if not tmp or pid_alive(int(tmp["pid"])):
            continue
        try:
            empty = entry.stat().st_size == 0
            if empty:
                entry.unlink()
                continue
            kept = keep_as_partial(entry, folder / f"{tmp['stem']}{tmp['suffix']}")
        except OSError:
            continue
        notify(f"note: a run that was stopped (pid {tmp['pid']}) left an unfinished video; it is now {kept}")
