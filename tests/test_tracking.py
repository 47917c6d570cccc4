"""MLflow tracking of studies (experiments/tracking/): what a user finds in ``mlflow ui``.

End-to-end tests run ``run.py`` in a subprocess from a temp dir (``experiment=quick``: a few
short trials on two moons), then read the runs back with ``MlflowClient`` and the study from
``optuna.journal``: against SQLite (the default store) and against a real ``mlflow server``
on 127.0.0.1, started in the background when this module starts and stopped at its end.
"""

import http.server
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from experiments import sweep, tracking
from experiments.data import load_dataset
from experiments.tracking import (
    NullTracker,
    TrackingError,
    absolute_uri,
    check_reachable,
    make_tracker,
    run_status,
)
from experiments.trainer import TrainResult, output_and_cost
from nncore import Network
from tests.helpers import explain, load, run_py
from tests.services import MlflowServer, as_from_a_terminal, free_port, interrupt_when

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["experiment=quick"]  # study "moons-quick": 4 searched keys, 3-5 epochs of a tiny net
# sgd with lr up to 1e4 diverges above ~20; the median pruner (2 startup trials, 1 warm-up epoch) prunes.
WILD = ['sweep.params={optimizer: sgd, optimizer.lr: "tag(log, interval(1e-2, 1e4))"}', "sweep.sampler.name=random",
        "sweep.sampler.seed=3", "sweep.n_trials=8", "sweep.max_failures=8"]
STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
OUTCOME = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}  # the tag, and the run name's suffix


# ---------------------------------------------------------------------------- helpers
def study_runs(client, experiment: str = "moons-quick"):
    """(the parent run, {trial number: child run}) of the study's experiment; exactly one parent."""
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r}"
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    children = {int(r.data.tags["optuna.trial_number"]): r for r in runs if r not in parents}
    return parents[0], children


def check_study_record(client, study: optuna.Study, tmp: Path) -> dict:
    """What every study record must hold; returns {trial number: child run}."""
    parent, children = study_runs(client)
    assert parent.info.status == "FINISHED"
    assert study.user_attrs[tracking.PARENT_ATTR] == parent.info.run_id
    n_trials = parent.data.tags.get("changed.sweep.n_trials", parent.data.params["sweep.n_trials"])
    assert n_trials == str(len(study.trials))  # a resumed study's new total is a tag: params are immutable
    assert parent.data.params["sweep.params.optimizer.lr"].startswith("tag(log, interval(")
    tags = parent.data.tags
    assert {"version.python", "version.numpy", "version.optuna", "version.mlflow", "version.hydra-core",
            "host"} <= set(tags)
    assert int(tags["trials.complete"]) + int(tags["trials.pruned"]) + int(tags["trials.failed"]) == len(study.trials)
    best = study.best_trial
    assert f"Best: trial {best.number}" in tags["mlflow.note.content"]  # the description names the winner
    link = f"[`trial-{best.number:04d}`](#/experiments/{parent.info.experiment_id}/runs/{tags['best.run_id']})"
    assert link in tags["mlflow.note.content"]  # ... and links to its run (the UI's relative address)
    assert tags["best.trial_number"] == str(best.number)
    assert tags["best.optimizer.lr"] == str(best.params["optimizer.lr"])
    assert parent.data.metrics["best.val_cost"] == pytest.approx(best.value)
    assert "best.test_cost" in parent.data.metrics
    experiment = client.get_experiment(parent.info.experiment_id)  # described in the experiments list
    assert {k: experiment.tags.get(k) for k in ("study", "data", "objective")} == {
        "study": study.study_name, "data": "moons", "objective": "minimize val_cost"}
    assert "Optuna study **moons-quick** on the data set `moons`" in experiment.tags["mlflow.note.content"]
    parent_files = {a.path for a in client.list_artifacts(parent.info.run_id)}
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert "trials.csv" in parent_files
    assert {"plots/optimization_history.png", "plots/parallel_coordinate.png", "plots/intermediate_values.png",
            "plots/param_importances.png", "plots/param_importances.csv", "plots/param_importances.json"} <= plots
    assert sorted(children) == [t.number for t in study.trials]
    for trial in study.trials:
        run = children[trial.number]
        outcome = OUTCOME[trial.state.name]
        assert run.info.run_name == f"trial-{trial.number:04d}" + ("" if outcome == "complete" else f"-{outcome}")
        assert run.data.tags["outcome"] == outcome
        assert (run.data.tags.get("best") == "true") == (trial.number == best.number), trial.number
        assert (run.info.run_id == tags["best.run_id"]) == (trial.number == best.number)
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["optuna.trial_state"] == trial.state.name
        assert run.info.status == STATUS[trial.state.name], (trial.number, trial.state, run.info.status)
        assert run.data.params["optimizer.lr"] == str(trial.params["optimizer.lr"])
        files = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "config.yaml" in files
        if trial.state != optuna.trial.TrialState.FAIL:
            assert "curves.png" in files
            epochs = trial.user_attrs["epochs_run"]
            for name in ("train_cost", "val_cost", "val_accuracy", "time"):
                history = client.get_metric_history(run.info.run_id, name)
                assert [m.step for m in history] == list(range(1, epochs + 1)), name
            # the curves and, when complete, the objective's value are the only metrics (the UI's Model
            # metrics tab leads with the curves); the final numbers are tags, n_params a param
            value = {"value"} if trial.state == optuna.trial.TrialState.COMPLETE else set()
            assert set(run.data.metrics) == {"train_cost", "val_cost", "train_accuracy", "val_accuracy", "time",
                                             *value}, trial.number
            assert run.data.metrics.get("value", trial.value) == trial.value
            assert float(run.data.tags["test_cost"]) > 0 and 0 <= float(run.data.tags["test_accuracy"]) <= 1
            assert run.data.tags["epochs_run"] == str(epochs) and int(run.data.params["n_params"]) > 0
            weights = {a.path for a in client.list_artifacts(run.info.run_id, "weights")}
            assert weights == {"weights/initial.npz", "weights/final.npz"}
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    check_weights_reproduce(client, children[complete[0].number], tmp / "download")
    return children


def check_weights_reproduce(client, run, dst: Path) -> None:
    """The logged final weights, loaded into a Network, give the logged result: with
    ``train.restore_best`` (the default) the lowest val_cost of the curve, at ``restored_epoch``."""
    dst.mkdir(exist_ok=True)
    cfg = OmegaConf.load(client.download_artifacts(run.info.run_id, "config.yaml", str(dst)))
    final = Network.load(client.download_artifacts(run.info.run_id, "weights/final.npz", str(dst)))
    initial = Network.load(client.download_artifacts(run.info.run_id, "weights/initial.npz", str(dst)))
    assert initial.sizes == final.sizes and (initial.params != final.params).any()
    data = load_dataset(cfg.data, cfg.train.seed)
    cost = output_and_cost(cfg, data.task)[1]
    val = TrainResult(final, initial.params, None, {}).evaluate(data.X_val, data.y_val, cost, "val")
    curve = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "val_cost")}
    best = min(curve, key=curve.get)
    assert cfg.train.restore_best and run.data.tags["restored_epoch"] == str(best)
    assert float(run.data.tags["restored_val_cost"]) == pytest.approx(curve[best], rel=1e-9)
    assert run.data.metrics["value"] == float(run.data.tags["restored_val_cost"])  # the objective, sortable
    assert val["val_cost"] == pytest.approx(curve[best], rel=1e-6)


# ---------------------------------------------------------------------------- a real mlflow server
@pytest.fixture(scope="module", autouse=True)
def mlflow_server(tmp_path_factory):
    """Started when the module starts (it takes seconds to come up), so it is ready by its test."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    server = MlflowServer(f"sqlite:///{folder / 'server.db'}", folder)
    yield server
    server.stop()


# ---------------------------------------------------------------------------- units
def test_run_status_mirrors_the_trial():
    assert run_status("complete") == "FINISHED"
    assert run_status("pruned", "pruned at epoch 2 by the median pruner") == "KILLED"
    assert run_status("failed", "training diverged at epoch 3: train_cost=nan") == "FAILED"
    assert run_status("failed", sweep.INTERRUPTED) == "KILLED"
    assert tracking.INTERRUPTED_REASON == sweep.INTERRUPTED


def test_a_runs_final_numbers_are_tags_and_a_param_and_its_objective_the_one_metric():
    final = {"epochs_run": 5.0, "n_params": 162.0, "restored_epoch": 3.0, "restored_val_cost": 0.25,
             "restored_val_accuracy": 0.875, "test_cost": 0.1 + 0.2, "test_accuracy": 0.9}
    last = {"val_cost": 0.5, "val_accuracy": 0.75, "train_cost": 0.4}  # the curves' last epoch (not the kept)
    metrics, params, tags = tracking.result_records(final, last, ["val_cost"])
    assert metrics == {"value": 0.25} and params == {"n_params": "162"}
    assert tags == {"epochs_run": "5", "restored_epoch": "3", "restored_val_cost": "0.25",
                    "restored_val_accuracy": "0.875", "test_cost": repr(0.1 + 0.2), "test_accuracy": "0.9"}
    # sorted as MLflow's Model metrics tab sorts its charts: the curves come first
    assert sorted([*tracking.EPOCH_METRICS, *metrics])[-1] == "value"
    two, _, _ = tracking.result_records(final, last, ["val_accuracy", "n_params"])
    assert two == {"value_0": 0.875, "value_1": 162.0}
    assert tracking.result_records({}, last, ["train_cost"])[0] == {"value": 0.4}  # no kept epoch: the last
    assert tracking.result_records(final, last, [])[0] == {}  # pruned or failed: no objective value
    # read back, the tags and param give what the one-step metrics of older runs gave
    old = tracking.logged_results({**last, **final}, {}, {})
    assert tracking.logged_results({**last, **metrics}, params, tags) == old == final


def test_window_means_average_each_curve_over_the_last_epochs_and_become_the_objective():
    epochs = [{"val_cost": 9.0}, {"val_cost": 1.0, "val_accuracy": 0.5}, {"val_cost": 3.0, "val_accuracy": 0.75}]
    assert tracking.window_means(epochs, 2) == {"val_cost": 2.0, "val_accuracy": 0.625}
    assert tracking.window_means(epochs, 10) == {"val_cost": 13.0 / 3, "val_accuracy": 0.625}  # fewer epochs run
    assert tracking.window_means([], 3) == {}
    final = {"val_cost": 3.0, "val_accuracy": 0.75, "test_accuracy": 0.5}
    metrics, _, tags = tracking.result_records(final, epochs[-1], ["val_accuracy"], tracking.window_means(epochs, 2))
    assert metrics == {"value": 0.625} and tags["val_accuracy"] == "0.75"  # the result stays the last epoch's


def test_a_windowed_objective_is_the_value_logged_in_mlflow(tmp_path):
    from mlflow.tracking import MlflowClient

    proc = run_py(tmp_path, *QUICK, "sweep.n_trials=3", "sweep.pruner.name=none", "train.restore_best=false",
                  "sweep.objective.window=3", 'sweep.params={optimizer: sgd, train.epochs: 6}')
    assert proc.returncode == 0, explain(proc)
    assert "best trial #" in proc.stdout and "val_cost (mean of the last 3 epochs)=" in proc.stdout, explain(proc)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    _, children = study_runs(client)
    for trial in load(tmp_path).trials:
        run = children[trial.number]
        curve = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "val_cost"), key=lambda m: m.step)]
        assert len(curve) == 6
        assert run.data.metrics["value"] == pytest.approx(trial.value) == pytest.approx(sum(curve[-3:]) / 3)
        assert run.data.metrics["value"] != pytest.approx(curve[-1])
    from analysis import load_trials

    alone = load_trials("moons-quick", f"sqlite:///{tmp_path / 'mlflow.db'}", storage="none").set_index("trial")
    assert {t.number: t.value for t in load(tmp_path).trials} == pytest.approx(alone["value"].to_dict())


def test_sqlite_uri_is_made_absolute_and_the_null_tracker_is_off(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert absolute_uri("sqlite:///mlflow.db") == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert absolute_uri("sqlite:////abs/m.db") == "sqlite:////abs/m.db"
    assert absolute_uri("http://h:5000") == "http://h:5000"
    off = OmegaConf.create({"tracking": {"enabled": False}})
    assert isinstance(make_tracker(off), NullTracker) and make_tracker(off).problems() is None


def test_the_study_files_say_why_they_were_not_drawn_in_one_line(tmp_path):
    from experiments.plots import draw_study_files

    journal = str(tmp_path / "optuna.journal")
    optuna.create_study(study_name="s", storage=JournalStorage(JournalFileBackend(journal)))
    folder = tmp_path / "files"
    folder.mkdir()
    reason = draw_study_files("no-such-study", journal, ["val_cost"], str(folder), plots=False)
    assert reason and "\n" not in reason and not list(folder.iterdir())  # one line, nothing half-written
    assert draw_study_files("s", journal, ["val_cost"], str(folder), plots=False) is None
    assert [p.name for p in folder.iterdir()] == ["trials.csv"]


def test_a_plot_that_raises_is_named_and_the_others_are_drawn(tmp_path, monkeypatch):
    import optuna.visualization.matplotlib as vm

    from experiments.plots import draw_study_files

    journal = str(tmp_path / "optuna.journal")
    study = optuna.create_study(study_name="s", storage=JournalStorage(JournalFileBackend(journal)))
    study.optimize(lambda t: (t.suggest_float("x", 0, 1) - 0.3) ** 2 + t.suggest_float("y", 0, 1), n_trials=6)

    def boom(*args, **kwargs):
        raise ValueError("boom\nsecond line")

    monkeypatch.setattr(vm, "plot_parallel_coordinate", boom)  # drawn by the drawer's child
    monkeypatch.setattr(vm, "plot_optimization_history", boom)  # drawn by the drawer itself
    folder = tmp_path / "files"
    folder.mkdir()
    reason = draw_study_files("s", journal, ["val_cost"], str(folder), plots=True)
    assert reason is not None and "\n" not in reason and reason.startswith("not drawn: ")
    assert "parallel_coordinate.png (ValueError: boom)" in reason
    assert "optimization_history.png (ValueError: boom)" in reason
    assert sorted(p.name for p in folder.iterdir()) == ["plots", "trials.csv"]  # no error file left behind
    assert sorted(p.name for p in (folder / "plots").iterdir()) == [  # no study.html: nothing needs a network
        "intermediate_values.png", "param_importances.csv", "param_importances.json", "param_importances.png"]


def test_passwords_in_urls_never_reach_mlflow():
    cfg = {"sweep": {"storage": "postgresql://ann:s3cret@db/optuna", "n_trials": 5},
           "tracking": {"uri": "http://ann:pw@host:5000"}, "model": {"hidden": [8, 4]}}
    assert tracking.masked(cfg) == {"sweep": {"storage": "postgresql://ann:***@db/optuna", "n_trials": 5},
                                    "tracking": {"uri": "http://ann:***@host:5000"}, "model": {"hidden": [8, 4]}}


def test_unusable_stores_are_refused_with_the_uri_named(tmp_path):
    port = free_port()
    for uri, words in [(f"http://127.0.0.1:{port}", "refused"),
                       (f"sqlite:///{tmp_path}/missing/mlflow.db", "does not exist"),
                       (str(tmp_path / "mlruns"), "file store")]:
        with pytest.raises(TrackingError, match="tracking.uri=") as err:
            check_reachable(uri, timeout=2)
        assert uri in str(err.value) and words in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------------------- end to end
def test_a_sqlite_sweep_records_the_study_and_a_resume_reuses_its_parent(tmp_path):
    temp = tmp_path / "tmp"  # TMPDIR: the plots, trials.csv and weights pass through temporary folders
    temp.mkdir()
    proc = run_py(tmp_path, *QUICK, "sweep.n_trials=3", env={"TMPDIR": str(temp)})
    assert proc.returncode == 0, explain(proc)
    assert not list(temp.iterdir())  # none outlives the run
    assert "INFO" not in proc.stderr and "alembic" not in proc.stderr  # no MLflow start-up noise
    assert "warning: tracking" not in proc.stderr
    assert f"mlflow: sqlite:///{tmp_path / 'mlflow.db'} (experiment=moons-quick)" in proc.stdout, explain(proc)
    assert "next: mlflow ui --backend-store-uri sqlite:///mlflow.db   |   python -m analysis.report\n" in proc.stdout
    from mlflow.tracking import MlflowClient
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    study = load(tmp_path)
    children = check_study_record(client, study, tmp_path)
    parent, _ = study_runs(client)
    other = next(n for n in children if n != study.best_trial.number)
    client.set_tag(children[other].info.run_id, "best", "true")  # as if trial `other` had been the best before

    proc = run_py(tmp_path, *QUICK, "sweep.n_trials=4")  # resume: one more trial, same parent run
    assert proc.returncode == 0, explain(proc)
    study = load(tmp_path)
    children = check_study_record(client, study, tmp_path)  # `best=true` on the best trial's run alone again
    again, _ = study_runs(client)
    assert again.info.run_id == parent.info.run_id and len(children) == 4
    assert again.data.tags["changed.sweep.n_trials"] == "4"
    assert len(client.get_metric_history(parent.info.run_id, "best.val_cost")) == 2  # one point per session


def test_an_unreachable_server_fails_fast_before_any_trial(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    proc = run_py(tmp_path, *QUICK, f"tracking.uri={uri}")
    assert time.monotonic() - start < 10
    assert proc.returncode != 0, explain(proc)
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot reach tracking.uri=") and uri in last, explain(proc)
    assert not (tmp_path / "optuna.journal").exists() or not load(tmp_path).trials


class _Unavailable(http.server.BaseHTTPRequestHandler):
    """An MLflow server whose /health answers and whose store does not (503 for the rest)."""

    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()
        self.wfile.write(b"OK" if self.path == "/health" else b"store unavailable")

    do_POST = do_PATCH = do_PUT = do_GET

    def log_message(self, *args):
        pass


def test_a_store_that_stops_answering_never_fails_a_trial(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        proc = run_py(tmp_path, *QUICK, "sweep.n_trials=3", f"tracking.uri=http://127.0.0.1:{server.server_port}",
                      env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})
    finally:
        server.shutdown()
    assert proc.returncode == 0, explain(proc)
    study = load(tmp_path)
    assert len(study.trials) == 3 and all(t.state.is_finished() for t in study.trials)
    warning = [line for line in proc.stderr.splitlines() if line.startswith("warning: tracking:")]
    assert warning and "MLflow calls failed" in warning[0] and "incomplete" in warning[0], explain(proc)
    assert f"127.0.0.1:{server.server_port}" in warning[0]


def test_ctrl_c_leaves_no_run_running(tmp_path):
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *QUICK, "tracking.log_plots=false",
                             'sweep.params={train.epochs: "choice(100000)"}'], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=as_from_a_terminal)
    db = tmp_path / "mlflow.db"
    out, err = interrupt_when(proc, lambda: _running_trial(db), 60)
    assert proc.returncode == 130, err
    from mlflow.tracking import MlflowClient
    parent, children = study_runs(MlflowClient(f"sqlite:///{db}"))
    assert parent.info.status == "KILLED"
    assert children[0].info.status == "KILLED"
    assert children[0].data.tags["fail_reason"] == sweep.INTERRUPTED
    assert children[0].info.run_name == "trial-0000-interrupted" and children[0].data.tags["outcome"] == "interrupted"
    assert load(tmp_path).trials[0].user_attrs["fail_reason"] == sweep.INTERRUPTED


def _running_trial(db: Path) -> bool:
    if not db.exists():
        return False
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return bool(con.execute("select 1 from runs where name = 'trial-0000' and status = 'RUNNING'").fetchall())
    except sqlite3.Error:  # tables not made yet
        return False


def test_an_mlflow_server_records_complete_pruned_and_diverged_trials(tmp_path, mlflow_server):
    url = mlflow_server.wait()
    proc = run_py(tmp_path, *QUICK, *WILD, f"tracking.uri={url}")
    assert proc.returncode == 0, explain(proc)
    assert "View run" not in proc.stdout  # MLflow's per-run links stay out of the summary
    from mlflow.tracking import MlflowClient
    study = load(tmp_path)
    children = check_study_record(MlflowClient(url), study, tmp_path)
    states = {t.number: t.state for t in study.trials}
    diverged = [n for n, s in states.items() if s == optuna.trial.TrialState.FAIL]
    pruned = [n for n, s in states.items() if s == optuna.trial.TrialState.PRUNED]
    assert diverged and pruned, states
    run = children[diverged[0]]
    assert run.info.status == "FAILED" and "diverged" in run.data.tags["fail_reason"]
    run = children[pruned[0]]
    assert run.info.status == "KILLED" and run.data.tags["pruned"] == "true"
    assert run.data.tags["prune_reason"].startswith("pruned at epoch")
    assert run.data.tags["mlflow.note.content"].startswith("Pruned: pruned at epoch")
    assert run.info.run_name.endswith("-pruned") and children[diverged[0]].info.run_name.endswith("-failed")
