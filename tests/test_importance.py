"""experiments/importance.py: one importance per study, the same wherever it is shown, with its spread."""

import json
import math

import optuna
import pandas as pd
import pytest
from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

from experiments.importance import COLUMNS, CSV_NAME, FANOVA_SEEDS, JSON_NAME, Importances, study_importances
from experiments.plots import draw_importances

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _study(n_trials: int = 30, direction: str = "minimize") -> optuna.Study:
    """x matters most, y a little, c not at all (its two values give the same objective)."""
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.RandomSampler(seed=1))
    sign = 1.0 if direction == "minimize" else -1.0
    study.optimize(lambda t: sign * ((t.suggest_float("x", 0, 1) - 0.3) ** 2 + 0.05 * t.suggest_float("y", 0, 1)
                                     + 0 * len(t.suggest_categorical("c", ["a", "b"]))), n_trials=n_trials)
    return study


def test_the_importances_are_the_same_every_time_and_name_their_spread():
    study = _study()
    first, again = study_importances(study), study_importances(study)
    assert first.rows == again.rows  # fixed seeds: one answer per study
    frame = first.frame()
    assert list(frame.columns) == list(COLUMNS) and set(frame["param"]) == {"x", "y", "c"}
    assert frame["param"].iloc[0] == "x" and frame["fanova"].iloc[0] > 0.5  # the parameter that matters, first
    assert frame["fanova"].is_monotonic_decreasing
    assert (frame["fanova_min"] <= frame["fanova"]).all() and (frame["fanova"] <= frame["fanova_max"]).all()
    assert (frame["rank_min"] <= frame["rank_max"]).all() and frame["rank_max"].max() <= len(frame)
    assert math.isclose(frame["fanova"].sum(), 1.0, rel_tol=1e-9)  # each forest's importances sum to 1
    assert first.n_complete == 30 and "30 complete trials" in first.uncertainty()
    assert f"the {len(FANOVA_SEEDS)} fANOVA forests differ by up to" in first.uncertainty()


def test_ped_anova_is_what_optuna_dashboard_computes():
    """optuna-dashboard calls PedAnovaImportanceEvaluator() with the objective (negated when maximised)."""
    for direction in ("minimize", "maximize"):
        study = _study(direction=direction)
        sign = -1.0 if direction == "maximize" else 1.0
        dashboard = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator(),
                                          target=lambda t, s=sign: s * t.values[0])
        ours = {r["param"]: r["ped_anova"] for r in study_importances(study).rows}
        assert ours == pytest.approx(dashboard, rel=1e-12), direction


def test_too_few_trials_say_so():
    found = study_importances(_study(n_trials=1))
    assert found.rows == [] and "1 complete trial" in found.problem and found.uncertainty() == found.problem


def test_the_artifact_files_hold_the_numbers_of_the_plot(tmp_path):
    study = _study()
    figure = draw_importances(study, str(tmp_path))
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert labels == ["c", "y", "x"]  # most important at the top
    table = pd.read_csv(tmp_path / CSV_NAME)
    expected = study_importances(study).frame()
    pd.testing.assert_frame_equal(table, expected, check_dtype=False, rtol=1e-12)
    stored = Importances.from_json((tmp_path / JSON_NAME).read_text())
    assert stored.rows == study_importances(study).rows and stored.n_complete == 30
    assert json.loads((tmp_path / JSON_NAME).read_text())["method"]["fanova"].startswith("optuna FanovaImportance")
