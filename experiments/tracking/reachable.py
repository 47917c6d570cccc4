"""Is the tracking store there? A check before any record, in a few ms, without importing MLflow."""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.parse
import urllib.request

from ..urls import mask_password
from .schema import TrackingError

CHECK_TIMEOUT = 5.0  # seconds for the reachability check before a study
DB_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mssql": 1433}


def is_file_store(uri: str) -> bool:
    """A plain path or ``file:`` URI: MLflow's file store, which MLflow 3 refuses by default."""
    scheme = urllib.parse.urlsplit(uri).scheme
    return scheme in ("", "file") or len(scheme) == 1  # len 1: a Windows drive letter


def check_reachable(uri: str, timeout: float = CHECK_TIMEOUT) -> None:
    """Raise ``TrackingError`` unless the store at ``uri`` answers, within about ``timeout`` seconds.

    http(s): ``GET /health`` of the MLflow server; sqlite: the database's directory is writable;
    another database URL: its host accepts a TCP connection. Nothing here imports MLflow.
    """
    shown = mask_password(uri)
    parts = urllib.parse.urlsplit(uri)
    scheme = parts.scheme.split("+")[0]
    try:
        if scheme in ("http", "https"):
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
                if response.status != 200:
                    raise OSError(f"/health answered HTTP {response.status}")
        elif scheme == "sqlite":
            _check_sqlite_path(uri[len("sqlite:///"):])
        elif is_file_store(uri):
            if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("1", "true"):
                raise OSError("MLflow 3 refuses the file store; use sqlite:///mlflow.db or an http:// server")
        elif parts.hostname:
            port = parts.port or DB_PORTS.get(scheme)
            if port is not None:
                socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except urllib.error.HTTPError as err:
        raise TrackingError(f"cannot reach tracking.uri={shown}: /health answered HTTP {err.code}") from None
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise TrackingError(f"cannot reach tracking.uri={shown}: {reason}") from None


def _check_sqlite_path(path: str) -> None:
    if not path:
        raise OSError("an in-memory database is lost when the run ends; name a file: sqlite:///mlflow.db")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OSError(f"directory {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OSError(f"directory {folder} is not writable")
    if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        raise OSError(f"{os.path.abspath(path)} is not readable and writable")
