"""Optuna storage from ``sweep.storage``: a file path → journal file, a URL → RDB engine.

A journal file is Optuna's advice for several processes on one machine; an RDB server
(PostgreSQL, MySQL) for several machines.
"""

import os
import re

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend


def mask_password(url: str) -> str:
    """``scheme://user:secret@host`` → ``scheme://user:***@host``."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", str(url))


def is_rdb(url: str) -> bool:
    """True for a database URL, False for a journal file path."""
    return "://" in str(url)


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """The storage ``url`` names; a journal file path is taken relative to the launch dir."""
    if is_rdb(url):
        return RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
    path = os.path.abspath(os.path.expanduser(str(url)))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return JournalStorage(JournalFileBackend(path))


def describe(url: str) -> str:
    """Where the study lives, for people: an absolute file path or the masked URL."""
    return mask_password(url) if is_rdb(url) else os.path.abspath(os.path.expanduser(str(url)))
