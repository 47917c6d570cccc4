"""experiments.tracking.store: a new SQLite store is a copy of the cached empty schema, and MLflow
opens it as a store of its own (its Default experiment and artifact root are the new store's)."""

import os
import stat

import pytest
from mlflow.tracking import MlflowClient

from experiments.tracking.store import save_template, seed_store, template_path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def test_the_first_new_store_saves_the_template_and_later_ones_start_from_it(cache, monkeypatch):
    first = f"sqlite:///{cache / 'a' / 'mlflow.db'}"
    assert seed_store(first) is True and not template_path().exists()  # nothing cached yet: MLflow makes it
    os.makedirs(cache / "a")
    client = MlflowClient(first)
    save_template(first)
    assert template_path().is_file()
    client.create_experiment("kept out of the template")

    second_file = cache / "b" / "mlflow.db"
    second = f"sqlite:///{second_file}"
    assert seed_store(second) is False and second_file.is_file()
    monkeypatch.chdir(cache / "b")  # MLflow puts the Default experiment's artifacts under the launch dir
    assert stat.S_IMODE(second_file.stat().st_mode) & 0o044  # readable by others, as MLflow's own file
    experiments = {e.name: e for e in MlflowClient(second).search_experiments()}
    assert set(experiments) == {"Default"}
    assert experiments["Default"].artifact_location.startswith(str(cache / "b"))
    run = MlflowClient(second).create_run(experiments["Default"].experiment_id)
    assert MlflowClient(second).get_run(run.info.run_id).info.run_id == run.info.run_id


def test_an_existing_store_is_never_touched_and_a_store_with_runs_is_no_template(cache):
    path = cache / "mlflow.db"
    uri = f"sqlite:///{path}"
    client = MlflowClient(uri)
    client.create_run("0")
    before = path.read_bytes()
    save_template(uri)
    assert not template_path().exists()
    assert seed_store(uri) is False and path.read_bytes() == before
    assert seed_store("http://127.0.0.1:5000") is False
