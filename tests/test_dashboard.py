"""optuna-dashboard, the interactive view of a study (README, *Dashboards*), on a journal file as run.py
writes it: the documented one-liner starts it, the study's page and API answer, and its importances are
the PED-ANOVA column of the parent run's ``plots/param_importances.csv`` (experiments.importance)."""

import json
import urllib.request

import optuna
import pytest

from experiments.importance import study_importances
from experiments.storage import open_storage
from tests.services import OptunaDashboard


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status, answer.read().decode()


@pytest.fixture()
def dashboard(tmp_path):
    """optuna-dashboard (tests.services.OptunaDashboard) in a folder holding a small study: (its base URL,
    the study). Stopped at the end."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    journal = tmp_path / "optuna.journal"
    study = optuna.create_study(study_name="moons-quick", storage=open_storage(str(journal)),
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: (t.suggest_float("optimizer.lr", 1e-3, 1, log=True) - 0.1) ** 2
                   + 0.01 * t.suggest_int("model.width", 8, 64), n_trials=20)
    server = OptunaDashboard(tmp_path)
    try:
        yield server.wait(), study
    finally:
        server.stop()


def test_optuna_dashboard_shows_the_study_and_its_importances(dashboard):
    url, study = dashboard
    status, body = _get(url + "/api/studies")
    found = {s["study_name"]: s["study_id"] for s in json.loads(body)["study_summaries"]}
    assert status == 200 and "moons-quick" in found
    study_id = found["moons-quick"]
    status, page = _get(f"{url}/dashboard/studies/{study_id}")
    assert status == 200 and "<title>Optuna Dashboard</title>" in page  # the page (the app draws it from the API)
    status, _ = _get(url + "/static/bundle.js")  # served by the command itself: no network needed
    assert status == 200
    status, body = _get(f"{url}/api/studies/{study_id}")
    trials = json.loads(body)["trials"]
    assert status == 200 and len(trials) == 20 and {t["state"] for t in trials} == {"Complete"}
    status, body = _get(f"{url}/api/studies/{study_id}/param_importances")
    shown = {p["name"]: p["importance"] for p in json.loads(body)["param_importances"][0]}
    ours = {r["param"]: r["ped_anova"] for r in study_importances(study).rows}
    assert shown == pytest.approx(ours, rel=1e-9)  # the dashboard's number is our ped_anova column
