"""Which of the installation's files another account on the machine could read.

Careloop makes every file it writes 0600 and every folder 0700 (:mod:`security.files`), but a
file copied in, restored from a backup, made by an older version or changed by hand may be
looser. :func:`loose_file_lines` names each one with the command that fixes it::

    instance/careloop.db is mode 644, readable by group or others: chmod 600 instance/careloop.db

Looked at: the master key file (unless the key comes from ``CARELOOP_MASTER_KEY``), the audit key
and the anchor file, the SQLite database with its ``-wal``, ``-shm`` and worker lock, and the blob
store with every folder and blob in it (their names carry patient ids). The folders holding the key
and the database are not: they may be shared ones (``/etc``, ``/var/lib``), and a 0600 file in a
readable folder is still private.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from careloop.settings import Settings
from security.files import PRIVATE_FILE, PRIVATE_FOLDER, loose_modes

#: What SQLite keeps beside a database file (and the lock of ``careloop worker``).
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal", ".worker.lock")


def private_paths(settings: Settings) -> list[Path]:
    """The files that must be private (absent ones are skipped when checked)."""
    paths = [] if settings.master_key else [settings.key_file]
    paths += [settings.audit_key_path, settings.audit_anchor_path]
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        paths += [Path(url.database + suffix) for suffix in SQLITE_COMPANIONS]
    return list(dict.fromkeys(paths))


def loose_file_lines(settings: Settings, *, leave_out: frozenset[Path] = frozenset()) -> list[str]:
    """One line per file or folder that the group or others can get at, saying how to fix it."""
    blob_dir = settings.blob_dir
    found = loose_modes([*private_paths(settings), blob_dir], below=[blob_dir])
    return [f"{path} is mode {bits:o}, readable by group or others: "
            f"chmod {PRIVATE_FOLDER if path.is_dir() else PRIVATE_FILE:o} {path}"
            for path, bits in found if path not in leave_out]
