"""``python run.py`` end to end: a sweep, one training run, Hydra's own flags and multirun.

Every test launches run.py in a subprocess from a temp dir, as a user would; the commands run a
few at a time in one module fixture. Bad input (each a short process that must fail) is
tests/test_bad_input.py's; composition of every group option and preset is tests/test_config.py's.
"""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["experiment=quick", "tracking=none"]  # study "moons-quick": a few short trials on two moons


def run_py(cwd: Path, *overrides: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python run.py OVERRIDES`` launched from ``cwd``, with its temporary files in ``cwd/tmp``."""
    (cwd / "tmp").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *overrides], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "TMPDIR": str(cwd / "tmp")})


def explain(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"


def load(cwd: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(cwd / "optuna.journal"))))


# ---------------------------------------------------------------------------- runs that succeed
GOOD = {
    "sweep": [*QUICK, "sweep.n_trials=4"],
    "help": ["--help"],
    "cfg job": ["--cfg", "job", "+experiment=quick", "optimizer=sgd", "optimizer.lr=0.3"],
    "train": [*QUICK, "mode=train", "optimizer=sgd", "optimizer.lr=0.1", "model.hidden=[16,8]"],
    "train diverging": [*QUICK, "mode=train", "optimizer=sgd", "optimizer.lr=1e6"],
    "multirun": ["-m", *QUICK, "mode=train", "optimizer=sgd,adam"],
    "train csv": [*QUICK, "data=csv", "data.target=label", "mode=train", "data.path=good.csv"],
}


USES = {  # test -> the GOOD command whose result it reads
    "test_a_short_sweep_end_to_end": "sweep",
    "test_help_lists_the_config_groups": "help",
    "test_cfg_job_prints_the_composed_config_and_runs_nothing": "cfg job",
    "test_mode_train_trains_one_network_and_prints_its_metrics": "train",
    "test_mode_train_reads_a_csv_from_the_launch_dir": "train csv",
    "test_mode_train_reports_divergence": "train diverging",
    "test_hydra_multirun_over_plain_choices": "multirun",
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
        return cwd, run_py(cwd, *commands[name])

    wanted = []
    for item in request.session.items:
        if item.module is request.module and "runs" in item.fixturenames:
            params = getattr(item, "callspec", None)
            wanted.append(params.params["name"] if params and "name" in params.params else USES[item.originalname])
    results = Runs(launch)
    with ThreadPoolExecutor(3) as pool:
        results.update(zip(wanted, pool.map(launch, wanted)))
    return results
