"""The environment and loggers of a process that uses MLflow (the tracking process, a replay)."""

from __future__ import annotations

import logging
import os


def quiet_mlflow() -> None:
    """Environment and loggers of the tracking process (its own: nothing here reaches the trials)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    for name in ("alembic", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("optuna").setLevel(logging.ERROR)  # run.py prints what the study has to say
