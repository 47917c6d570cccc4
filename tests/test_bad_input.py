"""Bad input to ``python run.py``: every case exits non-zero within 10 s with one line naming the key or
file and the value, and leaves nothing half-made: no Optuna study, no MLflow run left RUNNING.

The cases run two at a time (one per core, so the 10 s bound measures the command, not the queue)
in one module fixture, each from its own launch dir holding TABLES, with tracking on (SQLite, the
default) so that a run left open would show in ``mlflow.db``. A study that exists with another
search space or direction: tests/test_sweep.py (it needs a study first).
"""

import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.services import free_port

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["experiment=quick"]  # study "moons-quick" on two moons; tracking on: sqlite:///mlflow.db
CSV = ["data=csv", "data.target=label", "mode=train"]
CLOSED = free_port()  # nothing listens here
PASSWORD = "s3cr3t-Pw9"
TABLES = {
    "nan.csv": "a,b,label\n1,2,0\n3,,1\n5,6,0\n7,8,1\n",
    "one.csv": "a,b,label\n1,2,0\n3,4,0\n5,6,0\n7,8,0\n",
    "nolabel.csv": "a,b,y\n1,2,0\n3,4,1\n",
    "empty.csv": "",
    "text.csv": "a,b,label\n1,x,0\n2,y,1\n3,z,0\n4,w,1\n",
}
# (id, overrides, substrings that one line of stderr must hold: the key or file, and the value)
BAD = [
    ("unknown group option", ["optimizer=adamw"], ["optimizer/adamw", "available options: adadelta"]),
    ("misspelt key", ["optimizer.lrr=0.1"], ["optimizer.lrr", "0.1"]),
    ("wrong type", ["train.epochs=many"], ["many", "train.epochs"]),
    ("lr zero", ["optimizer.lr=0"], ["optimizer.lr", "0"]),
    ("lr negative", ["optimizer.lr=-0.1"], ["optimizer.lr", "-0.1"]),
    ("batch size 0", ["train.batch_size=0"], ["train.batch_size must be >= 1, got 0"]),
    ("dropout 1.0", ["model.dropout=1.0"], ["model.dropout must be in [0, 1), got 1.0"]),
    ("empty hidden", ["model.hidden=[]"], ["model.hidden must not be empty"]),
    ("unknown activation", ["model.activation=swish"], ["model.activation must be one of", "'swish'"]),
    ("malformed search expression", ['sweep.params={optimizer.lr: "interval(1,)"}'],
     ["sweep.params.optimizer.lr", "interval(1,)"]),
    ("empty search space", ["sweep.params={}"], ["sweep.params={}", "empty search space"]),
    ("grid over an interval", ["sweep.sampler.name=grid"], ["sweep.params.optimizer.lr", "grid sampler"]),
    ("n_trials 0", ["sweep.n_trials=0"], ["sweep.n_trials must be >= 1, got 0"]),
    ("unreachable storage", [f"sweep.storage=postgresql://nnsweep:{PASSWORD}@127.0.0.1:{CLOSED}/x"],
     [f"cannot open sweep.storage=postgresql://nnsweep:***@127.0.0.1:{CLOSED}/x"]),
    ("bad storage option", [f"sweep.storage='postgresql://nnsweep@127.0.0.1:{CLOSED}/x?heartbeat_interval=soon'"],
     ["sweep.storage", "heartbeat_interval='soon'"]),
    ("unreachable tracking", [f"tracking.uri=http://127.0.0.1:{CLOSED}"],
     [f"cannot reach tracking.uri=http://127.0.0.1:{CLOSED}"]),
    ("csv missing", [*CSV, "data.path=missing.csv"], ["missing.csv", "not found"]),
    ("csv missing in a sweep", [*CSV[:2], "data.path=missing.csv"], ["missing.csv", "not found"]),
    ("csv empty", [*CSV, "data.path=empty.csv"], ["empty.csv", "empty"]),
    ("csv NaN", [*CSV, "data.path=nan.csv"], ["nan.csv", "'b'", "NaN"]),
    ("csv non-numeric feature", [*CSV, "data.path=text.csv"], ["text.csv", "'b'", "not numeric", "'x'"]),
    ("csv without the target column", [*CSV, "data.path=nolabel.csv"], ["nolabel.csv", "'label' not found"]),
    ("csv with a single class", [*CSV, "data.path=one.csv"], ["one.csv", "'label'", "single class"]),
    ("replay of an unknown run", ["mode=train", "replay=0123456789abcdef"], ["replay=0123456789abcdef", "no such run"]),
    ("unknown folklore experiment", ["findings.experiment=sharpness"],
     ["findings.experiment must be one of", "'sharpness'"]),
    ("findings without tracking", ["+experiment=dropout", "tracking=none"],
     ["findings.experiment=dropout", "tracking.enabled=false"]),
    ("findings seeds 0", ["experiment=dropout", "findings.seeds=0"], ["findings.seeds must be >= 1, got 0"]),
    ("clip negative", ["data.clip=-1"], ["data.clip must be > 0, got -1"]),
    ("order seed negative", ["train.order_seed=-2"], ["train.order_seed must be >= 0, got -2"]),
]


def run_py(cwd: Path, *overrides: str) -> tuple[subprocess.CompletedProcess, float]:
    """``python run.py OVERRIDES`` from ``cwd``, and its wall time in seconds."""
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), *overrides], cwd=cwd, capture_output=True,
                          text=True, timeout=60)
    return proc, time.monotonic() - start


def explain(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"


def running_runs(db: Path) -> list[str]:
    """Names of the MLflow runs left RUNNING in the SQLite store ``db`` (none when it does not exist)."""
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        tables = {row[0] for row in con.execute("select name from sqlite_master where type = 'table'")}
        if "runs" not in tables:
            return []
        return [row[0] for row in con.execute("select name from runs where status = 'RUNNING'")]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    """{case id: (launch dir, process, seconds)} for every case of BAD, two at a time."""
    def launch(case, cwd: Path):
        name, overrides, _ = case
        for file, text in TABLES.items():
            (cwd / file).write_text(text)
        return name, (cwd, *run_py(cwd, *QUICK, *overrides))

    folders = [tmp_path_factory.mktemp("bad") for _ in BAD]  # here: mktemp is not thread-safe
    with ThreadPoolExecutor(2) as pool:
        return dict(pool.map(launch, BAD, folders))


@pytest.mark.parametrize(("name", "overrides", "needles"), BAD, ids=[case[0] for case in BAD])
def test_bad_input_fails_fast_with_one_line_and_leaves_nothing_half_made(results, name, overrides, needles):
    cwd, proc, seconds = results[name]
    assert proc.returncode != 0, explain(proc)
    assert seconds < 10, f"took {seconds:.1f} s\n{explain(proc)}"
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, explain(proc)
    assert all(n in errors[0] for n in needles), f"{needles} not all in {errors[0]!r}"
    assert "Traceback" not in proc.stderr, explain(proc)
    assert PASSWORD not in proc.stdout + proc.stderr
    assert not (cwd / "optuna.journal").exists()  # refused before any study was made
    assert running_runs(cwd / "mlflow.db") == []
