"""What many test modules need: run ``run.py`` as a user would, explain a failed run, open what it stored."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

ROOT = Path(__file__).resolve().parents[1]


def run_py(cwd: Path, *overrides: str, timeout: float = 180, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python run.py OVERRIDES`` launched from ``cwd`` (``env``: variables added to this process's)."""
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *overrides], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def explain(proc) -> str:
    """A finished process's exit code and the ends of its output, for an assertion message."""
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"


def load(cwd: Path, name: str = "moons-quick") -> optuna.Study:
    """Study ``name`` from the journal file ``optuna.journal`` in ``cwd``."""
    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(cwd / "optuna.journal"))))


def mlflow_client(cwd: Path):
    """An ``MlflowClient`` on the SQLite store ``mlflow.db`` in ``cwd``."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")


def running_runs(db: Path) -> list[str]:
    """Names of the MLflow runs left RUNNING in the SQLite store ``db`` (none when it or its tables do not exist)."""
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        tables = {row[0] for row in con.execute("select name from sqlite_master where type = 'table'")}
        if "runs" not in tables:
            return []
        return [row[0] for row in con.execute("select name from runs where status = 'RUNNING'")]
