"""Where and with what a run ran, as MLflow tags: git commit, Python and package versions, host, user."""

from __future__ import annotations

import contextlib
import importlib.metadata
import platform
import socket
import subprocess
from pathlib import Path

VERSIONED = ("numpy", "optuna", "mlflow", "hydra-core", "omegaconf", "scikit-learn")


def environment_tags() -> dict[str, str]:
    """Where and with what the study ran: git commit, Python and package versions, host, user."""
    tags = {"host": socket.gethostname(), "version.python": platform.python_version(),
            "mlflow.source.name": "run.py", "mlflow.source.type": "LOCAL"}
    for package in VERSIONED:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            tags[f"version.{package}"] = importlib.metadata.version(package)
    with contextlib.suppress(Exception):
        import getpass
        tags["mlflow.user"] = getpass.getuser()
    commit = git_commit(Path(__file__).resolve().parents[2])
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def git_commit(folder: Path) -> str | None:
    """The commit checked out in ``folder``'s git work tree, or None (no git, no repository)."""
    try:
        out = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None
