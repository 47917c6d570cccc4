"""``python run.py`` end to end: a sweep, one training run, Hydra's own flags and multirun.

Every test launches run.py in a subprocess from a temp dir, as a user would; the commands run a
few at a time in one module fixture. Bad input (each a short process that must fail) is
tests/test_bad_input.py's; composition of every group option and preset is tests/test_config.py's.
"""

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.helpers import explain, load, run_py

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["experiment=quick", "tracking=none"]  # study "moons-quick": a few short trials on two moons


def run_here(cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    """``python run.py OVERRIDES`` launched from ``cwd``, with its temporary files in ``cwd/tmp``."""
    (cwd / "tmp").mkdir(exist_ok=True)
    return run_py(cwd, *overrides, env={"TMPDIR": str(cwd / "tmp")})


# ---------------------------------------------------------------------------- runs that succeed
GOOD = {
    "sweep": [*QUICK, "sweep.n_trials=4"],
    "help": ["--help"],
    "cfg job": ["--cfg", "job", "+experiment=quick", "optimizer=sgd", "optimizer.lr=0.3"],
    "train": [*QUICK, "mode=train", "optimizer=sgd", "optimizer.lr=0.1", "model.hidden=[16,8]"],
    "train diverging": [*QUICK, "mode=train", "optimizer=sgd", "optimizer.lr=1e6"],
    "multirun": ["-m", *QUICK, "mode=train", "optimizer=sgd,adam"],
    "train csv": [*QUICK, "data=csv", "data.target=label", "mode=train", "data.path=good.csv"],
    "multirun tracked": ["-m", "experiment=quick", "mode=train", "optimizer=sgd,adam", "train.epochs=2"],
    "tied": [*QUICK, "sweep.n_trials=3", "sweep.pruner.name=none",
             'sweep.params={optimizer: "choice(sgd)", optimizer.lr: "choice(0.1)", model.width: "choice(8)", '
             'train.epochs: "choice(3)"}'],
}


USES = {  # test -> the GOOD command whose result it reads
    "test_a_short_sweep_end_to_end": "sweep",
    "test_help_lists_the_config_groups": "help",
    "test_cfg_job_prints_the_composed_config_and_runs_nothing": "cfg job",
    "test_mode_train_trains_one_network_and_prints_its_metrics": "train",
    "test_mode_train_reads_a_csv_from_the_launch_dir": "train csv",
    "test_mode_train_reports_divergence": "train diverging",
    "test_hydra_multirun_over_plain_choices": "multirun",
    "test_train_runs_have_their_own_experiment_and_names_and_say_where_they_went": "multirun tracked",
    "test_a_best_value_tied_among_trials_is_said": "tied",
}


def test_a_short_sweep_end_to_end(runs):
    cwd, proc = runs["sweep"]
    assert proc.returncode == 0, explain(proc)
    assert (cwd / "optuna.journal").is_file()  # in the launch dir ...
    assert not list((cwd / "outputs").rglob("optuna.journal*"))  # ... not in Hydra's run dir
    study = load(cwd, "moons-quick")
    assert len(study.trials) == 4
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in study.trials)
    best = study.best_trial
    assert f"best trial #{best.number}: val_cost={best.value:.4g}" in proc.stdout, explain(proc)
    assert f"optuna study: {cwd / 'optuna.journal'} (study_name=moons-quick)" in proc.stdout
    assert "study moons-quick: " in proc.stdout
    assert not (cwd / "mlflow.db").exists()  # tracking=none
    assert "mlflow: off (tracking=none)" in proc.stdout and "mlflow ui" not in proc.stdout, explain(proc)
    assert not list((cwd / "tmp").iterdir())  # no temporary file outlives the run


def test_help_lists_the_config_groups(runs):
    cwd, proc = runs["help"]
    assert proc.returncode == 0, explain(proc)
    groups = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line and line[:1].isalpha())
    for group in ("data", "model", "optimizer", "sweep", "tracking", "train", "experiment"):
        assert group in groups, proc.stdout
    assert "moons" in groups["data"] and "nadam" in groups["optimizer"] and "quick" in groups["experiment"]
    options = [o.strip() for listed in groups.values() for o in listed.split(",")]
    assert not [o for o in options if o.startswith("base_")], "the schemas are no options"
    assert not (cwd / "optuna.journal").exists()


def test_cfg_job_prints_the_composed_config_and_runs_nothing(runs):
    cwd, proc = runs["cfg job"]
    assert proc.returncode == 0, explain(proc)
    cfg = yaml.safe_load(proc.stdout)
    assert (cfg["mode"], cfg["study_name"], cfg["data"]["name"]) == ("sweep", "moons-quick", "moons")
    assert (cfg["optimizer"]["name"], cfg["optimizer"]["lr"], cfg["optimizer"]["momentum"]) == ("sgd", 0.3, 0.0)
    assert "betas" not in cfg["optimizer"]  # the sgd group option, not adam's with a new name
    assert not (cwd / "optuna.journal").exists()


def metrics_of(stdout: str, name: str) -> dict[str, str]:
    (line,) = [line for line in stdout.splitlines() if line.startswith(f"trained {name}: ")]
    return dict(item.split("=") for item in line.removeprefix(f"trained {name}: ").split(", "))


def test_mode_train_trains_one_network_and_prints_its_metrics(runs):
    cwd, proc = runs["train"]
    assert proc.returncode == 0, explain(proc)
    metrics = metrics_of(proc.stdout, "moons")
    assert {"train_cost", "val_cost", "val_accuracy", "test_cost", "test_accuracy", "epochs_run", "n_params"} <= set(
        metrics)
    assert int(metrics["epochs_run"]) == 5
    assert int(metrics["n_params"]) == 2 * 16 + 16 + 16 * 8 + 8 + 8 * 2 + 2
    assert 0.5 < float(metrics["test_accuracy"]) <= 1.0
    assert not (cwd / "optuna.journal").exists()


def test_mode_train_reads_a_csv_from_the_launch_dir(runs):
    cwd, proc = runs["train csv"]
    assert proc.returncode == 0, explain(proc)
    assert int(metrics_of(proc.stdout, "good.csv")["n_params"]) == 2 * 16 + 16 + 16 * 2 + 2


def test_mode_train_reports_divergence(runs):
    cwd, proc = runs["train diverging"]
    assert proc.returncode != 0
    assert "error: training diverged at epoch" in proc.stderr, explain(proc)


def test_hydra_multirun_over_plain_choices(runs):
    cwd, proc = runs["multirun"]
    assert proc.returncode == 0, explain(proc)
    assert proc.stdout.count("trained moons: ") == 2, explain(proc)
    assert "optimizer=sgd" in proc.stdout and "optimizer=adam" in proc.stdout
    jobs = sorted(p.name for p in (cwd / "outputs" / "multirun").glob("*/*") if p.is_dir())
    assert jobs == ["0", "1"]


def test_train_runs_have_their_own_experiment_and_names_and_say_where_they_went(runs):
    cwd, proc = runs["multirun tracked"]
    assert proc.returncode == 0, explain(proc)
    said = re.findall(r"^mlflow: run (train-\S+) \(run id (\w+)\) in experiment moons-quick-train of (\S+)$",
                      proc.stdout, re.M)
    assert len(said) == 2 and said[0][0] != said[1][0], explain(proc)
    assert all(uri == f"sqlite:///{cwd / 'mlflow.db'}" for _, _, uri in said)
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    assert client.get_experiment_by_name("moons-quick") is None  # not beside a study's parent run
    experiment = client.get_experiment_by_name("moons-quick-train")
    found = {r.info.run_id: r.info.run_name for r in client.search_runs([experiment.experiment_id])}
    assert found == {run_id: name for name, run_id, _ in said}


def test_a_best_value_tied_among_trials_is_said(runs):
    cwd, proc = runs["tied"]
    assert proc.returncode == 0, explain(proc)
    values = {t.value for t in load(cwd, "moons-quick").trials}
    assert len(values) == 1  # three trials of one configuration and seed
    assert "the best value is tied among 3 trials (#0, #1, #2); #0 is the first of them, not a better one" in \
        proc.stdout, explain(proc)


def test_a_resumed_study_says_what_is_left_and_records_its_own_time(tmp_path):
    first = run_py(tmp_path, "experiment=quick", "sweep.n_trials=2")
    assert first.returncode == 0 and "already recorded" not in first.stdout, explain(first)
    again = run_py(tmp_path, "experiment=quick", "sweep.n_trials=2")
    assert "study moons-quick: 2 of 2 trials already recorded; nothing to run" in again.stdout, explain(again)
    more = run_py(tmp_path, "experiment=quick", "sweep.n_trials=3")
    assert "study moons-quick: 2 of 3 trials already recorded; running 1 more" in more.stdout, explain(more)
    seconds = load(tmp_path, "moons-quick").user_attrs["study_seconds"]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (parent,) = [r for r in client.search_runs([client.get_experiment_by_name("moons-quick").experiment_id])
                 if "mlflow.parentRunId" not in r.data.tags]
    assert parent.data.metrics["study.seconds"] == pytest.approx(seconds) and 0 < seconds < 60
    history = client.get_metric_history(parent.info.run_id, "study.seconds")
    assert len(history) == 3 and history[0].value < history[-1].value  # one point a session, summed
    assert "Study time:" in parent.data.tags["mlflow.note.content"]


TABLES = {"good.csv": "a,b,label\n" + "".join(f"{i},{i % 7},{i % 2}\n" for i in range(60))}


class Runs(dict):
    """Results by command name; a command not run yet runs when asked for."""

    def __init__(self, launch):
        super().__init__()
        self.launch = launch

    def __missing__(self, name):
        self[name] = self.launch(name)
        return self[name]


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory) -> Runs:
    """The GOOD commands the selected tests of this module use, run three at a time up front,
    each from its own launch dir holding TABLES."""
    commands = dict(GOOD)

    def launch(name):
        cwd = tmp_path_factory.mktemp("run")
        for file, text in TABLES.items():
            (cwd / file).write_text(text)
        return cwd, run_here(cwd, *commands[name])

    wanted = []
    for item in request.session.items:
        if item.module is request.module and "runs" in item.fixturenames:
            params = getattr(item, "callspec", None)
            wanted.append(params.params["name"] if params and "name" in params.params else USES[item.originalname])
    results = Runs(launch)
    with ThreadPoolExecutor(3) as pool:
        results.update(zip(wanted, pool.map(launch, wanted)))
    return results
