"""New SQLite tracking stores made from a cached copy of MLflow's empty schema.

MLflow makes a new SQLite store by running every one of its schema migrations (alembic: about
1.3 s of CPU here, the largest fixed cost tracking adds to a study). The first store made on a
machine by a given MLflow version is saved, without its ``Default`` experiment, as
``$XDG_CACHE_HOME/nnsweep/mlflow-<version>.db`` (``~/.cache`` by default); every later new store
starts as a copy of it, and MLflow adds the ``Default`` experiment with the new store's own
artifact location when it opens it. A store that already exists is never touched.

``store_lock``: the lock under which a process opens a SQLite store (and MLflow makes its tables).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

from ..storage import file_lock
from ..urls import sqlite_file


def template_path() -> Path:
    """Where this MLflow version's empty schema is kept."""
    from importlib.metadata import version

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "nnsweep" / f"mlflow-{version('mlflow')}.db"


def seed_store(uri: str) -> bool:
    """Copy the cached schema to ``uri``'s file when the file does not exist yet; True when it did
    not (a new store: the caller saves the template after MLflow made it, see :func:`save_template`)."""
    path = sqlite_file(uri)
    if path is None or os.path.exists(path):
        return False
    template = template_path()
    if not template.is_file():
        return True
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=".mlflow-seed-", dir=os.path.dirname(path))
    os.close(fd)
    try:
        shutil.copyfile(template, staging)
        os.chmod(staging, 0o666 & ~_umask())  # as a file MLflow made itself (mkstemp's is 0600)
        os.link(staging, path)  # never replaces a store another process made meanwhile
    except FileExistsError:
        pass
    finally:
        os.unlink(staging)
    return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_template(uri: str) -> None:
    """Keep a copy of the store MLflow just made at ``uri`` (its schema; no experiment, no run) as the
    template of later new stores. Does nothing when a template exists or the store holds runs."""
    path, template = sqlite_file(uri), template_path()
    if path is None or template.exists():
        return
    template.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=".mlflow-template-", dir=template.parent)
    os.close(fd)
    try:
        with sqlite3.connect(path) as source, sqlite3.connect(staging) as copy:
            source.backup(copy)
        with sqlite3.connect(staging) as copy:
            if copy.execute("SELECT COUNT(*) FROM runs").fetchone()[0]:
                return
            copy.execute("DELETE FROM experiment_tags")
            copy.execute("DELETE FROM experiments")
        os.replace(staging, template)
    finally:
        if os.path.exists(staging):
            os.unlink(staging)


def store_lock(uri: str):
    """An flock beside a SQLite store (MLflow creates its tables on first use: two processes at once
    collide); nothing for other stores."""
    path = sqlite_file(uri)
    return contextlib.nullcontext() if path is None else file_lock(path + ".init-lock")
