"""How long loading a study's curves into pandas takes (analysis.loading).

What it measures (target: ≤ 5 s for 200 trials × 100 epochs × 4 metrics from SQLite):

1. Builds a synthetic study in a temp dir: an MLflow store ``sqlite:///mlflow.db`` with the
   study's parent run and ``--trials`` child runs shaped like the sweep's (tags
   ``optuna.study``, ``optuna.trial_number``, ``mlflow.parentRunId``), each with ``--epochs``
   epochs of ``train_cost``, ``val_cost``, ``train_accuracy``, ``val_accuracy`` logged with one
   ``MlflowClient.log_batch``; and the Optuna journal of the same trials (their sampled values,
   their val_cost per epoch as intermediate values).
2. Times, in a fresh process each (``--repeats`` times, median):
   - ``load_curves`` alone (the store opened and MLflow imported before the clock starts);
   - the whole cold call: importing ``analysis``, opening the store, ``find_study``, ``load_curves``;
   - ``load_trials`` (MLflow runs joined with the Optuna trials);
   - for comparison, ``MlflowClient.get_metric_history`` per run and metric on 20 runs,
     scaled to all of them: what reading the curves run by run would cost.
3. Checks the frame: one row per (trial, epoch, metric) and the values that were logged.

Run it (about a minute on 2 cores)::

    python benchmarks/bench_analysis.py                # 200 trials × 100 epochs
    python benchmarks/bench_analysis.py --trials 500   # a bigger study

This is a script that prints figures, not a test: nothing here fails on a MISS.
"""

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_S = 5.0
METRICS = ("train_cost", "val_cost", "train_accuracy", "val_accuracy")
STUDY = "bench-analysis"


def value_of(trial: int, epoch: int, metric: int) -> float:
    """The synthetic value logged for (trial, epoch, metric): a decaying curve, exact in float64."""
    return (1.0 + trial % 7) * 0.97 ** epoch + metric / 8 + trial / 1024


def build_store(folder: Path, n_trials: int, n_epochs: int) -> float:
    """The synthetic study in ``folder``; returns the seconds it took."""
    import optuna
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    from experiments.storage import open_storage

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.create_experiment(STUDY)
    storage = str(folder / "optuna.journal")
    study = optuna.create_study(study_name=STUDY, storage=open_storage(storage))
    parent = client.create_run(experiment, run_name=STUDY, tags={"optuna.study": STUDY}).info.run_id
    study.set_user_attr("mlflow_parent_run_id", parent)
    client.log_batch(parent, params=[Param("sweep.storage", storage), Param("sweep.params.optimizer.lr", "x"),
                                     Param("sweep.objective.metrics", "[val_cost]"),
                                     Param("sweep.objective.directions", "[minimize]")])
    distribution = optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)
    now = int(time.time() * 1000)
    trials = []
    for trial in range(n_trials):
        tags = {"mlflow.parentRunId": parent, "optuna.study": STUDY, "optuna.trial_number": str(trial),
                "optuna.trial_state": "COMPLETE"}
        run = client.create_run(experiment, run_name=f"trial-{trial:04d}", tags=tags).info.run_id
        metrics = [Metric(name, value_of(trial, epoch, m), now + epoch, epoch)
                   for epoch in range(1, n_epochs + 1) for m, name in enumerate(METRICS)]
        for lo in range(0, len(metrics), 1000):
            client.log_batch(run, metrics=metrics[lo:lo + 1000], params=[Param("optimizer.lr", "0.01")] if not lo
                             else [], tags=[RunTag("seed", "0")] if not lo else [])
        client.set_terminated(run, "FINISHED")
        curve = {epoch: value_of(trial, epoch, 1) for epoch in range(1, n_epochs + 1)}
        trials.append(optuna.trial.create_trial(params={"optimizer.lr": 0.01}, distributions={"optimizer.lr":
                                                distribution}, value=curve[n_epochs], intermediate_values=curve,
                                                user_attrs={"seed": 0}))
    study.add_trials(trials)
    return time.perf_counter() - start


PROBE = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    sys.path.insert(0, {root!r})
    from analysis import find_study, load_curves, load_trials
    from analysis.loading import client_for
    what = {what!r}
    if what == "cold":
        record = find_study({study!r})
        curves = load_curves(record)
        print(json.dumps({{"seconds": time.perf_counter() - t0, "rows": len(curves)}}))
        raise SystemExit
    record = find_study({study!r})  # imports MLflow and opens the store
    if what == "curves":
        t = time.perf_counter()
        curves = load_curves(record)
        seconds = time.perf_counter() - t
        values = curves.set_index(["trial", "epoch", "metric"])["value"]
        keys = [(0, 1, "val_cost"), ({last}, {epochs}, "train_accuracy"), (7, 50, "train_cost")]
        checks = {{f"{{t}},{{e}},{{m}}": float(values.loc[(t, e, m)]) for t, e, m in keys}}
        duplicated = int(curves.duplicated(["trial", "epoch", "metric"]).sum())
        print(json.dumps({{"seconds": seconds, "rows": len(curves), "checks": checks, "duplicated": duplicated}}))
    elif what == "trials":
        t = time.perf_counter()
        trials = load_trials(record)
        print(json.dumps({{"seconds": time.perf_counter() - t, "rows": len(trials),
                          "with_run": int(trials["run_id"].notna().sum())}}))
    else:
        client = client_for(record.tracking_uri)
        runs = client.search_runs([record.experiment_id], f"tags.`mlflow.parentRunId` = '{{record.parent_run_id}}'",
                                  max_results=20)
        t = time.perf_counter()
        for run in runs:
            for metric in {metrics!r}:
                client.get_metric_history(run.info.run_id, metric)
        print(json.dumps({{"seconds": time.perf_counter() - t, "runs": len(runs)}}))
""")


def probe(folder: Path, what: str, n_trials: int, n_epochs: int) -> dict:
    code = PROBE.format(root=str(ROOT), what=what, study=STUDY, last=n_trials - 1, epochs=n_epochs,
                        metrics=METRICS)
    out = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if out.returncode != 0:
        raise SystemExit(f"probe {what} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-analysis-") as tmp:
        folder = Path(tmp)
        built = build_store(folder, args.trials, args.epochs)
        rows = args.trials * args.epochs * len(METRICS)
        print(f"synthetic study: {args.trials} trials × {args.epochs} epochs × {len(METRICS)} metrics = {rows} "
              f"values, built in {built:.1f} s ({(folder / 'mlflow.db').stat().st_size / 1e6:.1f} MB mlflow.db)")
        curves = [probe(folder, "curves", args.trials, args.epochs) for _ in range(args.repeats)]
        cold = [probe(folder, "cold", args.trials, args.epochs) for _ in range(args.repeats)]
        trials = [probe(folder, "trials", args.trials, args.epochs) for _ in range(args.repeats)]
        history = probe(folder, "history", args.trials, args.epochs)
        first = curves[0]
        expected = {f"{t},{e},{m}": value_of(t, e, METRICS.index(m)) for t, e, m in
                    [(0, 1, "val_cost"), (args.trials - 1, args.epochs, "train_accuracy"), (7, 50, "train_cost")]}
        exact = first["checks"] == expected and first["rows"] == rows and first["duplicated"] == 0
        load = statistics.median(p["seconds"] for p in curves)
        whole = statistics.median(p["seconds"] for p in cold)
        per_run = history["seconds"] / max(history["runs"], 1) * args.trials
        verdict = {True: "PASS", False: "MISS"}
        print(f"load_curves (SQL on the metrics table):        {load:6.2f} s  (median of {args.repeats}; target ≤ "
              f"{TARGET_S:g} s: {verdict[load <= TARGET_S]})")
        print(f"cold: import analysis + find_study + load_curves: {whole:4.2f} s  ({verdict[whole <= TARGET_S]} "
              "against the same target)")
        seconds = statistics.median(p["seconds"] for p in trials)
        print(f"load_trials (MLflow runs + Optuna trials):      {seconds:6.2f} s  "
              f"({trials[0]['rows']} rows, {trials[0]['with_run']} with a run id)")
        print(f"get_metric_history per run and metric, scaled:  {per_run:6.2f} s  (measured on {history['runs']} runs)")
        print(f"frame: {first['rows']} rows, {first['duplicated']} duplicated keys, sampled values "
              f"{'equal to' if exact else 'DIFFER from'} the logged ones")


if __name__ == "__main__":
    main()
