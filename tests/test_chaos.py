"""A short soak of benchmarks/chaos.py: a minute of killed workers, Ctrl-C, a restarted ``mlflow server`` and
dropped database connections, then every check of the script must pass (it starts its own PostgreSQL and
server on 127.0.0.1; without PostgreSQL installed the test is skipped, except in CI)."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import explain
from tests.services import in_ci, pg_program

ROOT = Path(__file__).resolve().parents[1]


def check_rows(stdout: str) -> dict[str, tuple[bool, str]]:
    """The script's table of checks: {check: (passed, what it found)}."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1] in ("yes", "NO"):
            rows[cells[0]] = (cells[1] == "yes", cells[2])
    return rows


@pytest.mark.slow
def test_a_minute_of_chaos_loses_no_trial_and_no_record():
    if pg_program("initdb") is None and not in_ci():
        pytest.skip("PostgreSQL server programs (initdb, pg_ctl) not found")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "chaos.py"), "--minutes", "1", "--trials", "48",
                           "--seed", "1"], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    rows = check_rows(proc.stdout)
    assert proc.returncode == 0, explain(proc)
    assert rows["trials lost"] == (True, "0"), explain(proc)
    assert rows["counted trials == n_trials"] == (True, "48 of 48"), explain(proc)
    for check in ("parameter sets unique except declared retries", "trials run twice (retries only)",
                  "one parent run", "one child run per trial", "every run's status mirrors its trial",
                  "no trial RUNNING or WAITING", "each FINISHED run: one val_cost point per epoch run",
                  "each FINISHED run: weights reproduce val_cost (the trial's, the run's)",
                  "no worker ended with an unexpected error", "no record left in a spool"):
        assert rows[check][0], f"{check}: {rows[check][1]}\n{explain(proc)}"
    faults = next(line for line in proc.stdout.splitlines() if line.startswith("faults injected: "))
    assert int(faults.split()[2]) >= 5, faults  # the chaos happened
    assert "calm study checks: all pass" in proc.stdout
