"""analysis/loading.py: a study's trials, curves and weights read back exactly as the sweep recorded them.

Runs on the small study of ``analysis_study`` (made once per session by ``python run.py``) and
compares with what MLflow's client and Optuna's study say directly.
"""

import math

import numpy as np
import optuna
import pandas as pd
import pytest
from analysis_study import EMPTY, STUDY, run_ok, small_study
from mlflow.tracking import MlflowClient

from analysis import loading
from analysis.loading import (
    CURVE_METRICS,
    EmptyStudyError,
    StudyNotFoundError,
    StudyStorageError,
    find_study,
    list_studies,
    load_config,
    load_curves,
    load_trial,
    load_trials,
    top_trials,
)
from experiments.storage import open_storage
from experiments.tracking import STORAGE_TAG, result_records


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return small_study(tmp_path_factory)


@pytest.fixture(scope="module")
def record(study):
    return find_study(STUDY, study.tracking_uri)


@pytest.fixture(scope="module")
def optuna_study(study):
    return optuna.load_study(study_name=STUDY, storage=open_storage(study.storage))


@pytest.fixture(scope="module")
def runs(study, record):
    """{trial number: its MLflow run}, straight from the client."""
    client = MlflowClient(study.tracking_uri)
    found = client.search_runs([record.experiment_id], f"tags.`mlflow.parentRunId` = '{record.parent_run_id}'")
    return {int(r.data.tags["optuna.trial_number"]): r for r in found if r.data.tags.get("kind") is None}


def test_the_study_is_found_by_name_and_by_default(study, record, monkeypatch):
    assert record.name == STUDY and record.storage == study.storage
    assert record.searched == ("optimizer", "optimizer.lr", "model.width", "train.epochs")
    assert (record.objective, record.directions) == (("val_cost",), ("minimize",))
    monkeypatch.chdir(study.folder)  # the defaults: sqlite:///mlflow.db here, the most recently active study
    picked = find_study()
    assert picked.parent_run_id == record.parent_run_id
    assert picked.picked.startswith("the most recently active of 2 studies") and "--study" in picked.picked
    assert list(list_studies()["study"]) == [EMPTY, STUDY]


def test_trials_hold_what_optuna_and_mlflow_recorded(study, record, optuna_study, runs):
    trials = load_trials(record)
    assert list(trials["trial"]) == [t.number for t in optuna_study.trials] == sorted(runs)
    for t in optuna_study.trials:
        row = trials.loc[trials["trial"] == t.number].iloc[0]
        assert row["state"] == t.state.name
        assert row["value"] == t.value or (t.value is None and math.isnan(row["value"]))
        assert {k: row[k] for k in t.params} == t.params
        assert row["val_cost"] == t.user_attrs["val_cost"] and row["epochs_run"] == t.user_attrs["epochs_run"]
        run = runs[t.number]
        assert row["run_id"] == run.info.run_id
        assert row["test_cost"] == float(run.data.tags["test_cost"])  # a tag: the curves lead the run's charts
        assert row["n_params"] == int(run.data.params["n_params"])
        assert row["state"] != "PRUNED" or row["reason"].startswith("pruned at epoch")
    assert set(trials["state"]) == {"COMPLETE", "PRUNED"}, "the quick study is expected to prune some trials"


def test_trials_from_mlflow_alone_match(study, record):
    """Without the Optuna storage the frame comes from the runs' tags, params and metrics."""
    full = load_trials(record)
    alone = load_trials(STUDY, study.tracking_uri, storage="none")
    columns = ["trial", "state", "optimizer", "optimizer.lr", "model.width", "train.epochs", "val_cost",
               "test_cost", "epochs_run", "seed", "run_id"]
    pd.testing.assert_frame_equal(alone[columns], full[columns], check_dtype=False)
    complete = full["state"] == "COMPLETE"
    assert np.array_equal(alone.loc[complete, "value"], full.loc[complete, "value"])


def _log_by_hand(uri: str, study: str, layout: str) -> None:
    """A study of two trials (0 complete, 1 pruned) whose val_cost curve is 0.5, 0.3, 0.4 (+ the trial's
    number) and whose kept epoch is the 2nd, logged with its final numbers in ``layout``: ``"tags"``
    (experiments.tracking.result_records, as the recorder does) or ``"metrics"`` (one-step metrics, as
    runs were logged before)."""
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(uri)
    experiment = client.create_experiment(study)
    parent = client.create_run(experiment, tags={"optuna.study": study}, run_name=study).info.run_id
    client.log_batch(parent, params=[Param("sweep.params.model.width", "int(8, 64)"),
                                     Param("sweep.objective.metrics", "[val_cost]")])
    for number, state in enumerate(("COMPLETE", "PRUNED")):
        tags = {"mlflow.parentRunId": parent, "optuna.trial_number": str(number), "optuna.trial_state": state}
        run = client.create_run(experiment, tags=tags, run_name=f"trial-{number:04d}").info.run_id
        metrics = [Metric("val_cost", v + number, 0, step) for step, v in enumerate((0.5, 0.3, 0.4), 1)]
        final = {"epochs_run": 3.0, "n_params": 97.0 + number, "restored_epoch": 2.0,
                 "restored_val_cost": 0.3 + number, "test_cost": 0.35 + number}
        params, tags = [Param("model.width", str(8 + number))], []
        if layout == "metrics":
            metrics += [Metric(k, v, 0, 3) for k, v in final.items()]
        else:
            values, results, result_tags = result_records(final, {"val_cost": 0.4 + number},
                                                          ["val_cost"] if state == "COMPLETE" else [])
            metrics += [Metric(k, v, 0, 3) for k, v in values.items()]
            params += [Param(k, v) for k, v in results.items()]
            tags = [RunTag(k, v) for k, v in result_tags.items()]
        client.log_batch(run, metrics=metrics, params=params, tags=tags)
        client.set_terminated(run, "FINISHED" if state == "COMPLETE" else "KILLED")


@pytest.mark.parametrize("layout", ["tags", "metrics"])
def test_trials_read_the_final_numbers_as_tags_or_as_the_one_step_metrics_of_older_runs(tmp_path, layout):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _log_by_hand(uri, "by-hand", layout)
    trials = load_trials("by-hand", uri, storage="none")
    assert list(trials["trial"]) == [0, 1] and list(trials["state"]) == ["COMPLETE", "PRUNED"]
    assert list(trials["model.width"]) == [8, 9]
    assert list(trials["val_cost"]) == [0.3, 1.3]  # the kept epoch's, not the curve's last (0.4, 1.4)
    assert trials["value"].iloc[0] == 0.3 and math.isnan(trials["value"].iloc[1])  # a pruned trial has none
    assert list(trials["test_cost"]) == [0.35, 1.35] and list(trials["n_params"]) == [97, 98]
    assert list(trials["epochs_run"]) == [3, 3] and list(trials["restored_epoch"]) == [2, 2]


def test_a_storage_that_is_missing_or_holds_another_study_of_the_name_is_an_error(study, tmp_path, monkeypatch):
    """A study's records lead to its own Optuna storage: one made elsewhere under the same name is refused,
    naming both places, wherever the analysis runs from; a missing one is named, never silently skipped."""
    other = tmp_path / "other"
    other.mkdir()
    run_ok(other, "experiment=quick", "sweep.n_trials=1", "tracking=none")  # a study of the same name, no records
    monkeypatch.chdir(other)  # its optuna.journal is here: the records must not lead to it
    record = find_study(STUDY, study.tracking_uri)
    assert record.storage == study.storage
    with pytest.raises(StudyStorageError) as err:
        find_study(STUDY, study.tracking_uri, storage="optuna.journal")
    message = str(err.value)
    assert str(other / "optuna.journal") in message and study.tracking_uri in message
    assert record.parent_run_id in message
    with pytest.raises(StudyStorageError, match=f"{tmp_path / 'missing.journal'} does not exist.*--storage none"):
        load_trials(STUDY, study.tracking_uri, storage=str(tmp_path / "missing.journal"))


def test_with_no_study_named_the_most_recently_active_one_is_read(tmp_path, monkeypatch):
    """Resuming an older study makes it the one read by default, not the one created last."""
    for name, trials in (("first", 1), ("second", 1), ("first", 2)):
        run_ok(tmp_path, "experiment=quick", f"study_name={name}", f"sweep.n_trials={trials}")
    monkeypatch.chdir(tmp_path)
    assert list(list_studies()["study"]) == ["first", "second"]  # oldest first, by start
    record = find_study()
    assert record.name == "first" and "most recently active of 2 studies" in record.picked


def test_the_parent_run_records_where_its_storage_is_absolutely(study, record):
    parent = MlflowClient(study.tracking_uri).get_run(record.parent_run_id)
    assert parent.data.tags[STORAGE_TAG] == study.storage
    assert parent.data.params["sweep.storage"] == "optuna.journal"  # as given: relative to the launch dir


def test_config_keys_come_from_the_runs_configs(record):
    trials = load_trials(record, config_keys=("model.activation", "train.batch_size", "optimizer"))
    assert set(trials["model.activation"]) == {"relu"} and set(trials["train.batch_size"]) == {32}
    assert list(trials.columns[:4]) == ["trial", "state", "value", "optimizer"]  # searched keys keep their place


def test_curves_are_the_logged_values(study, record, optuna_study, runs):
    curves = load_curves(record)
    assert list(curves.columns) == ["trial", "epoch", "metric", "value"]
    assert not curves.duplicated(["trial", "epoch", "metric"]).any()
    client = MlflowClient(study.tracking_uri)
    for number, run in runs.items():
        for metric in CURVE_METRICS:
            logged = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, metric))
            rows = curves.loc[(curves["trial"] == number) & (curves["metric"] == metric), ["epoch", "value"]]
            assert [tuple(r) for r in rows.itertuples(index=False)] == logged
        optuna_values = optuna_study.trials[number].intermediate_values  # train.restore_best: the lowest so far
        rows = curves.loc[(curves["trial"] == number) & (curves["metric"] == "val_cost")].sort_values("epoch")
        assert dict(zip(rows["epoch"], np.minimum.accumulate(rows["value"].to_numpy()))) == optuna_values


def test_curves_by_the_client_equal_curves_by_sql(study, runs):
    """The path for an ``mlflow server`` (per-run get_metric_history) gives the SQL path's frame."""
    run_ids = [r.info.run_id for r in runs.values()]
    by_sql = loading.read_metrics(study.tracking_uri, run_ids)
    by_client = loading.metric_histories(study.tracking_uri, run_ids, list(CURVE_METRICS))
    key = ["run_id", "metric", "epoch"]
    by_client = by_client.astype({"epoch": np.int64})[[*key, "value"]].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(by_sql.sort_values(key).reset_index(drop=True)[[*key, "value"]], by_client,
                                  check_dtype=False)


def test_weights_reproduce_the_logged_val_cost(record, runs):
    trials = load_trials(record)
    for number, run in runs.items():
        art = load_trial(record, number)
        assert art.final.sizes == art.initial.sizes and not np.array_equal(art.final.params, art.initial.params)
        metrics = art.evaluate("val")
        assert metrics["val_cost"] == pytest.approx(float(run.data.tags["restored_val_cost"]), rel=1e-12, abs=0)
        assert metrics["val_accuracy"] == pytest.approx(float(run.data.tags["restored_val_accuracy"]))
        assert art.evaluate("test")["test_cost"] == pytest.approx(float(run.data.tags["test_cost"]), rel=1e-12)
        assert art.cfg.optimizer.name == trials.loc[trials["trial"] == number, "optimizer"].iloc[0]
    assert load_config(run.info.run_id, record.tracking_uri).model.hidden == [16]


def test_top_trials_are_the_best_complete_ones(record):
    trials = load_trials(record)
    top = top_trials(trials, 10)
    complete = trials.loc[trials["state"] == "COMPLETE"]
    assert list(top["trial"]) == list(complete.sort_values("value")["trial"])
    assert list(top_trials(trials, 1)["value"]) == [complete["value"].min()]


def test_an_unknown_study_or_experiment_lists_the_ones_there_are(study):
    with pytest.raises(StudyNotFoundError) as err:
        find_study("no-such-study", study.tracking_uri)
    message = str(err.value)
    assert "no study 'no-such-study'" in message and STUDY in message and EMPTY in message
    with pytest.raises(StudyNotFoundError, match=f"no MLflow experiment 'nope'.*experiments there: .*{STUDY}"):
        find_study(None, study.tracking_uri, experiment="nope")
    with pytest.raises(StudyNotFoundError, match="no MLflow store at"):
        load_trials(STUDY, f"sqlite:///{study.folder / 'elsewhere.db'}")
    with pytest.raises(KeyError, match="trials with a run: 0, 1, 2, 3"):
        load_trial(STUDY, 99, study.tracking_uri)


def test_an_empty_study_says_it_is_empty(study):
    record = find_study(EMPTY, study.tracking_uri)
    with pytest.raises(EmptyStudyError, match=f"study '{EMPTY}' is empty"):
        load_trials(record)
    with pytest.raises(EmptyStudyError, match="is empty"):
        load_curves(record)
