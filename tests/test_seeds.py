"""analysis/seeds.py: the best configurations retrained with other seeds, logged, compared.

On the small study of ``analysis_study``: its 2 best configurations × 2 other seeds.
"""

import copy

import numpy as np
import pandas as pd
import pytest
from analysis_study import STUDY, small_study
from mlflow.tracking import MlflowClient

from analysis import seeds
from analysis.loading import SEED_KIND, find_study, load_curves, load_run, load_trials
from analysis.seeds import compare_seeds, retrain_seeds


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    return find_study(STUDY, small_study(tmp_path_factory).tracking_uri)


@pytest.fixture(scope="module")
def retrained(record):
    return retrain_seeds(record, top_k=2, n_seeds=2, reuse=False)


def seed_runs(record) -> list:
    client = MlflowClient(record.tracking_uri)
    return client.search_runs([record.experiment_id], f"tags.kind = '{SEED_KIND}'")


def test_two_configurations_times_two_seeds(record, retrained):
    runs = retrained.runs
    best = load_trials(record).query("state == 'COMPLETE'").nsmallest(2, "value")
    assert list(dict.fromkeys(runs["config"])) == list(best["trial"])
    assert list(runs["label"]) == [f"t{c}{s}" for c in best["trial"] for s in ("", "/s1", "/s2")]
    assert list(runs["origin"]) == ["trial", "retrained", "retrained"] * 2
    assert set(runs["state"]) == {"COMPLETE"} and list(runs["trial"]) == list(range(6))
    own = runs.loc[runs["origin"] == "trial"]
    assert list(own["val_cost"]) == list(best["val_cost"])  # a trial's own minimum keeps its logged values
    # every minimum has its own weights and curves
    assert len({retrained.finals[label].tobytes() for label in runs["label"]}) == 6
    assert set(retrained.curves["trial"]) == set(range(6))


def test_the_new_runs_are_logged_under_the_parent(record, retrained):
    logged = {r.info.run_id: r for r in seed_runs(record)}
    for row in retrained.runs.loc[retrained.runs["origin"] == "retrained"].itertuples():
        run = logged[row.run_id]
        tags = run.data.tags
        assert tags["mlflow.parentRunId"] == record.parent_run_id and tags["optuna.study"] == STUDY
        assert (tags["seeds.source_trial"], tags["seed"]) == (str(row.config), str(row.seed))
        assert run.info.status == "FINISHED" and run.data.metrics["restored_val_cost"] == row.val_cost
        assert run.data.metrics["restored_epoch"] == row.epoch
        art = load_run(row.run_id, record.tracking_uri)  # its artifacts are a trial's: config and weights
        assert int(art.cfg.train.seed) == row.seed and np.array_equal(art.final.params, retrained.finals[row.label])
    # and they are no trials
    assert len(load_trials(record)) == 4 and set(load_curves(record)["trial"]) == {0, 1, 2, 3}


def test_the_trial_seed_reproduces_the_trial(record, retrained):
    """Retraining goes through the trials' own code: with the trial's seed it gives the trial back."""
    row = retrained.runs.iloc[0]
    art = load_run(row["run_id"], record.tracking_uri)
    result = seeds.train_as_trial(copy.deepcopy(art.cfg), art.data)
    assert result.final["val_cost"] == row["val_cost"]
    assert np.array_equal(result.net.params, art.final.params)


def test_runs_logged_before_are_reused(record, retrained):
    before = len(seed_runs(record))
    again = retrain_seeds(record, top_k=2, n_seeds=2)
    assert len(seed_runs(record)) == before
    assert list(again.runs["origin"]) == ["trial", "reused", "reused"] * 2
    for label in again.runs["label"]:
        assert np.array_equal(again.finals[label], retrained.finals[label])
    assert again.runs[["label", "val_cost", "train_cost"]].equals(retrained.runs[["label", "val_cost", "train_cost"]])


def test_spread_barriers_and_basins(retrained):
    comparison = compare_seeds(retrained)
    runs = retrained.runs
    spread = comparison.spread.loc[comparison.spread["metric"] == "val_cost"].set_index("config")
    for config, group in runs.groupby("config"):
        assert spread.loc[config, "count"] == 3
        assert spread.loc[config, "mean"] == pytest.approx(group["val_cost"].mean())
        assert spread.loc[config, "range"] == pytest.approx(group["val_cost"].max() - group["val_cost"].min())
    # one barrier matrix per architecture, over all its minima (the two configs differ in width here)
    assert sum(len(m) for m in comparison.barriers.values()) == len(runs)
    for matrix in comparison.barriers.values():
        values = matrix.to_numpy()
        assert np.array_equal(values, values.T) and np.all(np.diag(values) == 0) and np.all(values >= 0)
    basins = comparison.basins.set_index("config")
    for config, group in runs.groupby("config"):
        labels = list(group["label"])
        row = basins.loc[config]
        assert row["n_minima"] == 3 and list(row["basins"]) == labels
        matrix = comparison.barriers[group["group"].iloc[0]].loc[labels, labels].to_numpy()
        assert row["max_barrier"] == matrix.max()
        assert row["one_basin"] == (row["n_basins"] == 1)
        off = matrix[~np.eye(len(labels), dtype=bool)]
        if (off <= comparison.tol).all():
            assert row["n_basins"] == 1
        if (off > comparison.tol).all():
            assert row["n_basins"] == len(labels)
    # a tolerance above every barrier joins everything; below every positive one splits all that differ
    loose = compare_seeds(retrained, tol=np.inf)
    assert loose.basins["one_basin"].all() and (loose.group_basins["n_basins"] == 1).all()


def test_a_study_without_complete_trials_cannot_be_retrained(record):
    trials = load_trials(record).assign(state="PRUNED")
    with pytest.raises(ValueError, match="no complete trial"):
        retrain_seeds(record, trials=trials, log=False)


def test_a_minimum_is_measured_at_the_epoch_its_weights_are_from():
    """With train.restore_best a run's weights are from its epoch of lowest val_cost, not its last."""
    curves = pd.DataFrame([(trial, epoch, metric, value) for trial, costs in enumerate([[0.5, 0.3, 0.4]] * 3)
                           for epoch, cost in enumerate(costs, 1)
                           for metric, value in (("val_cost", cost), ("train_cost", cost / 2))],
                          columns=["trial", "epoch", "metric", "value"])
    rows = pd.DataFrame({"trial": [0, 1, 2], "label": ["t7", "t7/s1", "t9"], "config": [7, 7, 9], "seed": [0, 1, 0],
                         "origin": ["trial", "retrained", "trial"], "state": "COMPLETE", "group": ["a", "b", "c"],
                         "run_id": None, "reason": None})
    runs = seeds.at_kept_epochs(rows, curves, restore_best={0, 1})  # trial 9 ran without it
    assert list(runs.columns) == seeds.RUN_COLUMNS
    assert list(runs["epoch"]) == [2, 2, 3] and list(runs["val_cost"]) == [0.3, 0.3, 0.4]
    assert list(runs["train_cost"]) == [0.15, 0.15, 0.2] and runs["val_accuracy"].isna().all()
    spread = compare_seeds(seeds.SeedRuns(runs, curves)).spread.set_index(["metric", "config"])
    assert spread.loc[("val_cost", 7), "mean"] == 0.3 and spread.loc[("val_cost", 9), "mean"] == 0.4
    assert spread.loc[("train_cost", 7), "max"] == 0.15
