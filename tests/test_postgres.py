"""One study, many machines: Optuna on a real PostgreSQL, MLflow on a real ``mlflow server`` backed by it.

tests/conftest.py starts both on 127.0.0.1 (tests/services.py). Each worker is a separate
``python run.py`` launched from a launch dir of its own (nothing shared on disk, as on separate
machines) with the same ``study_name``, ``sweep.storage=postgresql://...`` and ``tracking.uri=http://...``.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest

from experiments.storage import claim_lock, lock_key, open_storage
from experiments.sweep import FINISHED, counted
from tests.helpers import explain

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["experiment=quick", "tracking.log_plots=false"]  # 3-5 epochs of a tiny net on two moons
S = optuna.trial.TrialState
STATUS = {S.COMPLETE: "FINISHED", S.PRUNED: "KILLED", S.FAIL: "FAILED"}
PASSWORD = "s3cr3t-Pw9"


def start_worker(cwd: Path, *overrides: str, env: dict | None = None) -> subprocess.Popen:
    """``python run.py OVERRIDES`` from ``cwd`` in a process group of its own (a machine of its own)."""
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, str(ROOT / "run.py"), *overrides], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, **(env or {})})


def finish(procs: list[subprocess.Popen], timeout: float = 300) -> list[subprocess.CompletedProcess]:
    """Wait for every worker; kill any still running after ``timeout`` s (and their process groups)."""
    results = []
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def load(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(url))


def study_runs(client, experiment: str):
    """(the parent run, {trial number: its child run}): exactly one parent, one child per trial number."""
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    children = [r for r in runs if r not in parents]
    numbers = [int(r.data.tags["optuna.trial_number"]) for r in children]
    assert len(numbers) == len(set(numbers)), sorted(numbers)
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in children)
    return parents[0], dict(zip(numbers, children))


@pytest.fixture
def storage(postgres, request) -> str:
    """A fresh database for this test's study; its URL."""
    return postgres.create_database(request.node.name.lower()[:40].replace("[", "_").replace("]", ""))


# ---------------------------------------------------------------------------- the lock
def test_the_claim_lock_holds_every_connection_of_a_study_and_only_its_study(postgres):
    url = postgres.url()
    assert lock_key("claim:a") == lock_key("claim:a") != lock_key("claim:b")
    events = []

    def second(name: str) -> None:
        with claim_lock(url, name):  # a connection of its own, as another machine's
            events.append(f"got {name}")

    with claim_lock(url, "a"):
        same, other = threading.Thread(target=second, args=("a",)), threading.Thread(target=second, args=("b",))
        same.start()
        other.start()
        other.join(10)
        time.sleep(0.5)
        events.append("released a")
    same.join(10)
    assert events == ["got b", "released a", "got a"]


def test_a_study_goes_on_while_the_database_drops_its_connections(postgres, storage):
    study = optuna.create_study(study_name="dropped", storage=open_storage(storage))
    database, stop, dropped = storage.rsplit("/", 1)[1], threading.Event(), []

    def chaos() -> None:  # the connections die mid-query too, where a pre-ping cannot help
        while not stop.wait(0.2):
            dropped.append(postgres.terminate_backends(database))

    thread = threading.Thread(target=chaos)
    thread.start()
    try:
        for value in range(20):
            with claim_lock(storage, "dropped"):  # a connection of its own, taken again when it drops
                trial = study.ask()
            trial.set_user_attr("pid", os.getpid())
            study.tell(trial, float(value))
            assert len(study.get_trials(deepcopy=False)) == value + 1
    finally:
        stop.set()
        thread.join()
    assert sum(dropped) >= 3  # connections were dropped all along
    assert [t.value for t in load(storage, "dropped").trials] == [float(v) for v in range(20)]


# ---------------------------------------------------------------------------- many workers
@pytest.mark.slow
def test_three_workers_on_postgres_make_one_study_with_one_parent_run(storage, mlflow_on_postgres, tmp_path):
    name, n = "pg-three", 12
    command = [*QUICK, f"sweep.storage={storage}", f"tracking.uri={mlflow_on_postgres.url}", f"study_name={name}",
               f"sweep.n_trials={n}", "data.n_samples=4000", "train.batch_size=4"]  # about half a second a trial
    results = finish([start_worker(tmp_path / f"machine{i}", *command) for i in range(3)])
    for proc in results:
        assert proc.returncode == 0, explain(proc)
        assert "warning: tracking" not in proc.stderr and "Traceback" not in proc.stderr, explain(proc)
    study = load(storage, name)
    assert sorted(t.number for t in study.trials) == list(range(n))
    assert all(t.state in FINISHED for t in study.trials)
    assert len({t.user_attrs["pid"] for t in study.trials}) >= 2  # more than one machine took trials
    from mlflow.tracking import MlflowClient
    client = MlflowClient(mlflow_on_postgres.url)
    parent, children = study_runs(client, name)
    assert parent.info.status == "FINISHED" and study.user_attrs["mlflow_parent_run_id"] == parent.info.run_id
    assert sorted(children) == list(range(n))
    for t in study.trials:
        assert children[t.number].info.status == STATUS[t.state]
    done = next(t for t in study.trials if t.state == S.COMPLETE)
    files = {f.path for f in client.list_artifacts(children[done.number].info.run_id)}
    assert {"config.yaml", "weights"} <= files  # artifacts went through the server (--serve-artifacts)


@pytest.mark.slow
def test_a_dead_workers_trial_is_failed_by_its_heartbeat_and_retried_by_the_survivors(
        storage, mlflow_on_postgres, tmp_path):
    name, n = "pg-heartbeat", 6
    url = f"{storage}?heartbeat_interval=1&grace_period=3"
    command = [*QUICK, f"sweep.storage='{url}'", f"tracking.uri={mlflow_on_postgres.url}", f"study_name={name}",
               f"sweep.n_trials={n}", "data.n_samples=30000", "train.batch_size=1"]  # 3-5 s a trial
    from mlflow.tracking import MlflowClient
    client = MlflowClient(mlflow_on_postgres.url)
    procs = [start_worker(tmp_path / f"machine{i}", *command) for i in range(3)]
    try:
        victim, number = None, None
        deadline = time.monotonic() + 120
        while victim is None:  # a worker in a trial whose MLflow run is open
            assert time.monotonic() < deadline and any(p.poll() is None for p in procs), "no worker seen in a trial"
            time.sleep(0.2)
            try:
                running = load(storage, name).get_trials(deepcopy=False, states=(S.RUNNING,))
            except KeyError:  # the study is not made yet
                continue
            open_runs = {r.info.run_name for r in client.search_runs(
                [e.experiment_id for e in client.search_experiments(filter_string=f"name = '{name}'")],
                "attributes.status = 'RUNNING'")} if running else set()
            for trial in running:
                if f"trial-{trial.number:04d}" in open_runs:
                    victim = next((p for p in procs if p.pid == trial.user_attrs.get("pid")), None)
                    number = trial.number
                    if victim is not None:
                        break
        os.killpg(victim.pid, signal.SIGKILL)  # the machine is gone: run.py and its tracking process
        survivors = finish([p for p in procs if p is not victim])
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    for proc in survivors:
        assert proc.returncode == 0, explain(proc)
        assert "1 more failed when their worker died and were run again" in proc.stdout, explain(proc)
    study = load(storage, name)
    trials = study.trials
    assert counted(trials) == n and len(trials) == n + 1
    assert sorted(t.number for t in trials) == list(range(n + 1))
    assert all(t.state in FINISHED for t in trials)
    dead = trials[number]
    assert dead.state == S.FAIL and "fail_reason" not in dead.user_attrs
    (retry,) = [t for t in trials if t.system_attrs.get("retry_history") == [number]]
    assert retry.state in (S.COMPLETE, S.PRUNED) and retry.params == dead.params
    assert retry.user_attrs["pid"] != victim.pid
    parent, children = study_runs(client, name)
    assert sorted(children) == list(range(n + 1))
    assert children[number].info.status == "KILLED" and "killed_reason" in children[number].data.tags
    assert children[retry.number].info.status == STATUS[retry.state]
    assert parent.info.status == "FINISHED"


# ---------------------------------------------------------------------------- secrets
def test_a_password_in_the_storage_url_never_reaches_a_log_a_file_or_mlflow(postgres, tmp_path):
    url = postgres.create_database("secrets").replace("nnsweep@", f"nnsweep:{PASSWORD}@")
    first = subprocess.run(  # the documented way: the URL from the environment
        [sys.executable, str(ROOT / "run.py"), *QUICK, "sweep.storage=${oc.env:NNSWEEP_STORAGE}", "sweep.n_trials=2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**os.environ, "NNSWEEP_STORAGE": url})
    assert first.returncode == 0, explain(first)
    second = subprocess.run(  # on the command line: Hydra saves it in outputs/.../.hydra, masked by run.py
        [sys.executable, str(ROOT / "run.py"), *QUICK, f"sweep.storage={url}", "sweep.n_trials=3"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, explain(second)
    masked = url.replace(PASSWORD, "***")
    assert f"optuna study: {masked} (study_name=moons-quick)" in second.stdout, explain(second)
    for proc in (first, second):
        assert PASSWORD not in proc.stdout + proc.stderr
    saved = list(tmp_path.rglob("*"))
    assert len([p for p in saved if p.name == "overrides.yaml"]) == 2 and (tmp_path / "mlflow.db").exists()
    for path in saved:  # outputs/**/.hydra/*.yaml, mlflow.db, the runs' artifacts (config.yaml, ...)
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
    from mlflow.tracking import MlflowClient
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = client.search_runs([client.get_experiment_by_name("moons-quick").experiment_id],
                                "attributes.run_name = 'moons-quick'")[0]
    assert parent.data.params["sweep.storage"] == masked
    assert load(url, "moons-quick").trials and len(load(url, "moons-quick").trials) == 3


def test_every_storage_call_that_reconnects_exists_in_this_optuna():
    from optuna.storages import RDBStorage

    from experiments.storage import RECONNECTED, ReconnectingRDBStorage

    missing = [name for name in RECONNECTED if not hasattr(RDBStorage, name)]
    assert not missing, f"Optuna {optuna.__version__} has no {missing}: a dropped connection would fail these calls"
    assert all(getattr(ReconnectingRDBStorage, name) is not getattr(RDBStorage, name) for name in RECONNECTED)
