"""Files and folders that hold keys or PHI: made private whatever the umask, and checked.

A file is created 0600 and a folder 0700 (each missing parent too), with the mode set explicitly
after creation, so a umask of 002 or 000 changes nothing. An existing file written again is made
0600 as well; an existing folder is left as it is (it may be shared, e.g. ``/var/lib``), and
:func:`loose_mode` tells whether the group or others can get at something, for the start-up
warnings of ``careloop serve`` and the checks of ``careloop doctor``.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterable
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_FOLDER = 0o700


def private_folder(path: Path) -> Path:
    """Create ``path`` and each missing parent, mode 0700; return ``path``."""
    missing: list[Path] = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_FOLDER)
        except FileExistsError:
            continue  # another process made it meanwhile
        os.chmod(folder, PRIVATE_FOLDER)
    return path


def open_private(path: Path, flags: int) -> int:
    """``os.open`` a file for writing, creating it 0600; an existing file is made 0600 too.

    Raises:
        OSError: as ``os.open`` and ``os.fchmod`` do (a file of another user cannot be made private).
    """
    descriptor = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        os.fchmod(descriptor, PRIVATE_FILE)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (a temporary file beside it, then a rename), mode 0600.

    The folder is made (0700) when missing.
    """
    private_folder(path.parent)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    descriptor = open_private(temporary, os.O_WRONLY | os.O_EXCL)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def append_private(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` and sync it; the file (0600) and its folder (0700) are made when missing."""
    private_folder(path.parent)
    descriptor = open_private(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(descriptor, data)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def loose_mode(path: Path) -> int | None:
    """Return the permission bits of ``path`` when its group or others have any, else None (absent: None)."""
    try:
        bits = stat.S_IMODE(path.lstat().st_mode)
    except FileNotFoundError:
        return None
    return bits if bits & 0o077 else None


def loose_modes(paths: Iterable[Path], *, below: Iterable[Path] = ()) -> list[tuple[Path, int]]:
    """Return each of ``paths``, and each file and folder inside the folders ``below``, that is not private."""
    found = [(path, bits) for path in paths if (bits := loose_mode(path)) is not None]
    for root in below:
        for folder, folders, files in os.walk(root):
            found.extend((Path(folder, name), bits) for name in sorted(folders) + sorted(files)
                         if (bits := loose_mode(Path(folder, name))) is not None)
    return found
