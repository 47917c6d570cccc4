"""Bad input to ``python run.py``: every case exits non-zero within 10 s with one line naming the key or
file and the value, and leaves nothing half-made: no Optuna study, no MLflow run left RUNNING.

The cases run two at a time (one per core, so the 10 s bound measures the command, not the queue)
in one module fixture, each from its own launch dir holding TABLES, with tracking on (SQLite, the
default) so that a run left open would show in ``mlflow.db``. A study that exists with another
search space or direction: tests/test_sweep.py (it needs a study first).
"""

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import explain, run_py, running_runs
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
    "tabs.csv": "a\tb\tlabel\n1\t2\t0\n3\t4\t1\n5\t6\t0\n7\t8\t1\n",
    "twice.csv": "a,a,label\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n",
    "words.csv": "a,b,label\n" + "".join(f"{i},{2 * i},c{i % 2}\n" for i in range(20)),
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
    ("objective window 0", ["sweep.objective.window=0"], ["sweep.objective.window must be >= 1, got 0"]),
    ("objective window with restore_best", ["sweep.objective.window=5"],
     ["sweep.objective.window must be 1 with train.restore_best=true", "got 5"]),
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
    ("capitalised option", ["optimizer=Adam"], ["optimizer/Adam", "available options: adadelta"]),
    ("a schema as an option", ["optimizer=base_sgd"],
     ["optimizer=base_sgd is a schema", "available options: adadelta"]),
    ("search key with a typo in its group", ['sweep.params={modl.width: "choice(16, 32)"}'], ["modl.width"]),
    ("search key the schema lacks", ['+sweep.params={model.foo: "choice(1, 2)"}'],
     ["sweep.params.model.foo", "Key 'foo' not in 'ModelConfig'"]),
    ("choice over values of the wrong type", ['sweep.params={model.width: "choice(a, b)"}'],
     ["sweep.params.model.width", "model.width=a", "could not be converted to Integer"]),
    ("interval over a categorical key", ['+sweep.params={model.activation: "interval(0, 1)"}'],
     ["sweep.params.model.activation", "must be one of", "'0.0'"]),
    ("a search key one searched option lacks", ['sweep.params={optimizer: "choice(adam, sgd)"}',
                                                 '+sweep.params={optimizer.momentum: "interval(0.1, 0.9)"}'],
     ["sweep.params.optimizer.momentum", "optimizer=adam", "Key 'momentum' not in 'AdamConfig'"]),
    ("a group searched over a schema", ['+sweep.params={optimizer: "choice(adam, base_sgd)"}'],
     ["sweep.params.optimizer", "'base_sgd' is not an option of group optimizer"]),
    ("interval over a config group", ['+sweep.params={optimizer: "interval(0, 1)"}'],
     ["sweep.params.optimizer", "takes choice(...)"]),
    ("a value out of range in the space", ['+sweep.params={model.dropout: "interval(0.5, 1.5)"}'],
     ["sweep.params.model.dropout", "model.dropout must be in [0, 1), got 1.5"]),
    ("storage URL with an unknown scheme", ["sweep.storage=sqlit:///study.db"],
     ["sweep.storage=sqlit:///study.db", "unknown scheme 'sqlit'"]),
    ("storage in a folder that does not exist", ["sweep.storage=nodir/optuna.journal"],
     ["sweep.storage=nodir/optuna.journal", "nodir does not exist"]),
    ("csv with a tab separator", [*CSV, "data.path=tabs.csv"], ["tabs.csv", "tab-separated"]),
    ("csv with a column name twice", [*CSV, "data.path=twice.csv"], ["twice.csv", "'a' appears twice"]),
    ("regression on a target of strings", [*CSV, "data.path=words.csv", "data.task=regression"],
     ["words.csv", "'label' is not numeric"]),
]


def timed_run_py(cwd: Path, *overrides: str) -> tuple[subprocess.CompletedProcess, float]:
    """``python run.py OVERRIDES`` from ``cwd``, and its wall time in seconds."""
    start = time.monotonic()
    proc = run_py(cwd, *overrides, timeout=60)
    return proc, time.monotonic() - start


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    """{case id: (launch dir, process, seconds)} for every case of BAD, two at a time."""
    def launch(case, cwd: Path):
        name, overrides, _ = case
        for file, text in TABLES.items():
            (cwd / file).write_text(text)
        return name, (cwd, *timed_run_py(cwd, *QUICK, *overrides))

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
    assert not (cwd / "nodir").exists()  # a mistyped storage folder is never made
    assert running_runs(cwd / "mlflow.db") == []
