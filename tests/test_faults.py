"""Faults a study survives on one machine (embedded storage: the journal file, MLflow on SQLite).

- Ctrl-C: the sweep stops after closing its records, says how to resume; the same command resumes.
- An exception inside a trial (here: its config does not compose) fails that trial with its reason only.
- Concurrent workers: 4 ``run.py`` processes started together, each with ``sweep.n_workers=4``, on one
  journal file and one ``mlflow.db``: no lock error, exact count, one parent run, one child per trial.
- Replay: a trial of that study retrained from its MLflow run reproduces its logged curves bit for bit.

Elsewhere: kill -9 and resume (tests/test_sweep.py, with MLflow), divergence and exceptions inside a
trial (tests/test_sweep.py, tests/test_tracking.py), a worker that dies on a shared PostgreSQL study
(tests/test_postgres.py), bad input (tests/test_bad_input.py).
"""

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from experiments import sweep
from tests.helpers import explain, load, mlflow_client, run_py
from tests.services import as_from_a_terminal, interrupt_when

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["experiment=quick", "tracking.log_plots=false"]  # study "moons-quick": 3-5 epochs of a tiny net
S = optuna.trial.TrialState
STATUS = {S.COMPLETE: "FINISHED", S.PRUNED: "KILLED", S.FAIL: "FAILED"}


def start_py(cwd: Path, *overrides: str) -> subprocess.Popen:
    """``python run.py OVERRIDES`` in the background, in a process group of its own (as from a terminal)."""
    return subprocess.Popen([sys.executable, str(ROOT / "run.py"), *overrides], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=as_from_a_terminal)


def study_runs(client, experiment: str = "moons-quick"):
    """(the parent runs, {trial number: [child runs]}) of the study's MLflow experiment."""
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children: dict[int, list] = {}
    for r in runs:
        if r not in parents:
            children.setdefault(int(r.data.tags["optuna.trial_number"]), []).append(r)
    return parents, children


def check_records(cwd: Path, n_trials: int) -> optuna.Study:
    """Exactly ``n_trials`` finished trials numbered 0..n-1, none RUNNING; one parent run, not RUNNING;
    one child run per trial under it, in the state of its trial."""
    study = load(cwd)
    trials = study.trials
    assert sorted(t.number for t in trials) == list(range(n_trials))
    assert all(t.state in sweep.FINISHED for t in trials), [t.state for t in trials]
    parents, children = study_runs(mlflow_client(cwd))
    assert len(parents) == 1 and parents[0].info.status != "RUNNING", [(p.info.run_name, p.info.status)
                                                                        for p in parents]
    assert sorted(children) == list(range(n_trials))
    for t in trials:
        (run,) = children[t.number]
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        reason = t.user_attrs.get("fail_reason")
        expected = "KILLED" if reason == sweep.INTERRUPTED else STATUS[t.state]
        assert run.info.status == expected, (t.number, t.state, reason, run.info.status)
    return study


def running_trials(cwd: Path) -> int:
    if not (cwd / "optuna.journal").exists():
        return 0
    try:
        return len(load(cwd).get_trials(deepcopy=False, states=(S.RUNNING,)))
    except KeyError:  # the study is not made yet
        return 0


def training(cwd: Path) -> int:
    """RUNNING trials past the start of their MLflow run (the trial sets its ``seed`` attr right after)."""
    if not (cwd / "optuna.journal").exists():
        return 0
    try:
        running = load(cwd).get_trials(deepcopy=False, states=(S.RUNNING,))
    except KeyError:  # the study is not made yet
        return 0
    return sum(1 for t in running if "seed" in t.user_attrs)


# ---------------------------------------------------------------------------- Ctrl-C
def test_ctrl_c_stops_the_workers_says_how_to_resume_and_the_same_command_resumes(tmp_path):
    command = [*QUICK, "sweep.n_workers=2", "sweep.n_trials=6", "data.n_samples=4000", "train.batch_size=1"]
    proc = start_py(tmp_path, *command)
    out, err = interrupt_when(proc, lambda: training(tmp_path) >= 2, 90)  # both workers in a trial with its run
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted: ") and "Run the same command again to resume" in last, err
    assert "Traceback" not in err, err
    interrupted = [t for t in load(tmp_path).trials if t.user_attrs.get("fail_reason") == sweep.INTERRUPTED]
    states = [(t.number, t.state.name, t.user_attrs) for t in load(tmp_path).trials]
    assert len(interrupted) == 2 and running_trials(tmp_path) == 0, (states, err)
    parents, children = study_runs(mlflow_client(tmp_path))
    assert parents[0].info.status == "KILLED"
    assert all(run.info.status != "RUNNING" for runs in children.values() for run in runs)

    again = run_py(tmp_path, *command)
    assert again.returncode == 0, explain(again)
    study = check_records(tmp_path, 6)
    assert [t.number for t in study.trials if t.user_attrs.get("fail_reason") == sweep.INTERRUPTED] == \
        [t.number for t in interrupted]  # the interrupted trials count, untouched; the rest ran


# ---------------------------------------------------------------------------- exceptions inside a trial
def test_an_exception_inside_a_trial_is_recorded_with_its_reason_and_the_study_goes_on(tmp_path):
    # every key and value composes (run.py checks that before the study), but the trials that read
    # the column "nope" of the table raise while loading their data; the others train
    (tmp_path / "t.csv").write_text("a,b,label\n" + "".join(f"{i},{i % 7},{i % 2}\n" for i in range(40)))
    space = ["data=csv", "data.path=t.csv", "data.target=label", '+sweep.params={data.target: "choice(label, nope)"}',
             "sweep.sampler.name=random", "sweep.n_trials=6", "sweep.max_failures=6", "tracking=none"]
    proc = run_py(tmp_path, "experiment=quick", *space)
    assert proc.returncode == 0, explain(proc)
    trials = load(tmp_path).trials
    assert len(trials) == 6 and all(t.state in sweep.FINISHED for t in trials)
    failed = [t for t in trials if t.state == S.FAIL]
    assert failed and all(t.params["data.target"] == "nope" for t in failed)
    assert all("t.csv: target column 'nope' not found" in t.user_attrs["fail_reason"] for t in failed)
    assert all(t.state != S.FAIL for t in trials if t.params["data.target"] == "label")
    assert f"{len(failed)} failed" in proc.stdout


# ---------------------------------------------------------------------------- concurrent workers
N_CONCURRENT = 32


@pytest.fixture(scope="module")
def concurrent_study(tmp_path_factory):
    """4 ``run.py`` started together on one launch dir, each with 4 worker processes: (dir, processes)."""
    cwd = tmp_path_factory.mktemp("concurrent")
    command = [*QUICK, f"sweep.n_trials={N_CONCURRENT}", "sweep.n_workers=4"]
    procs = [start_py(cwd, *command) for _ in range(4)]
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=240)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return cwd, results


def test_four_processes_of_four_workers_share_one_study_and_one_parent_run(concurrent_study):
    cwd, results = concurrent_study
    for proc in results:
        assert proc.returncode == 0, explain(proc)
        assert "locked" not in proc.stderr and "warning: tracking" not in proc.stderr, explain(proc)
        assert "Traceback" not in proc.stderr, explain(proc)
    study = check_records(cwd, N_CONCURRENT)
    pids = {t.user_attrs["pid"] for t in study.trials}
    assert len(pids) >= 4  # trials ran in several of the 16 worker processes
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == N_CONCURRENT  # no two sampled alike
    assert study.user_attrs["sampler_streams"] == 16  # each worker its own sampler seed
    with sqlite3.connect(cwd / "mlflow.db") as con:
        assert con.execute("select count(*) from runs where status = 'RUNNING'").fetchone() == (0,)


def test_replay_retrains_a_trial_from_its_run_bit_for_bit(concurrent_study):
    cwd, _ = concurrent_study
    client = mlflow_client(cwd)
    study = load(cwd)
    number = max((t for t in study.trials if t.state == S.COMPLETE), key=lambda t: t.user_attrs["epochs_run"]).number
    _, children = study_runs(client)
    (original,) = children[number]
    proc = run_py(cwd, "mode=train", f"replay={original.info.run_id}", "tracking.log_plots=false",
                  "tracking.log_weights=false")
    assert proc.returncode == 0, explain(proc)
    epochs = study.trials[number].user_attrs["epochs_run"]
    assert f"replay={original.info.run_id}: train_cost and val_cost identical to the logged run over {epochs} " \
           "epochs" in proc.stdout, explain(proc)
    exp = client.get_experiment_by_name("moons-quick-train")  # a mode=train run: beside the study's experiment
    (replayed,) = client.search_runs([exp.experiment_id], f"params.replay = '{original.info.run_id}'")
    assert replayed.info.run_id != original.info.run_id and replayed.info.status == "FINISHED"
    for name in ("train_cost", "val_cost", "val_accuracy"):
        logged = [(m.step, m.value) for m in client.get_metric_history(original.info.run_id, name)]
        again = [(m.step, m.value) for m in client.get_metric_history(replayed.info.run_id, name)]
        assert sorted(again) == sorted(logged) and len(logged) == epochs, name  # equal floats: bit for bit
