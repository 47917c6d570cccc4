"""Reading a recorded run back (``replay=<run id>``): its resolved config and its curves."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml

from ..urls import absolute_uri, mask_password, sqlite_file
from .quiet import quiet_mlflow
from .reachable import check_reachable
from .schema import TrackingError


def fetch_run(uri: str, run_id: str, metrics: tuple[str, ...]) -> tuple[dict, dict[str, list[tuple[int, float]]]]:
    """What run ``run_id`` in ``uri`` logged: its resolved config (the ``config.yaml`` artifact) and the
    per-epoch history of ``metrics``, {name: [(epoch, value)]} in epoch order. ``TrackingError`` (one
    line naming the run) when the store, the run or its config cannot be had."""
    uri = absolute_uri(uri)
    check_reachable(uri)
    path = sqlite_file(uri)
    if path is not None and not os.path.exists(path):
        raise TrackingError(f"replay={run_id}: no such run in tracking.uri={mask_password(uri)} (no such file)")
    quiet_mlflow()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    try:
        client.get_run(run_id)
    except Exception as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise TrackingError(f"replay={run_id}: no such run in tracking.uri={mask_password(uri)} ({reason})") from None
    try:
        with tempfile.TemporaryDirectory(prefix="nnsweep-replay-") as folder:
            stored = yaml.safe_load(Path(client.download_artifacts(run_id, "config.yaml", folder)).read_text())
        curves = {name: sorted((m.step, m.value) for m in client.get_metric_history(run_id, name)) for name in metrics}
    except Exception as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise TrackingError(f"replay={run_id}: cannot read its config.yaml and curves: {reason}") from None
    if not isinstance(stored, dict):
        raise TrackingError(f"replay={run_id}: its config.yaml holds no config")
    return stored, curves
