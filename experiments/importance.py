"""A study's hyperparameter importances, computed one way everywhere: the parent run's artifact
(``plots/param_importances.png``, ``.csv``, ``.json``: experiments.plots) and the report
(analysis.report) call :func:`study_importances`, which is deterministic for a given set of trials.

fANOVA (Optuna's default evaluator) fits a random forest: on a small study one forest's answer
depends on its seed (the same study gave ``model.width`` < 0.01 with one seed and 0.10 with
another). So it is fitted ``len(FANOVA_SEEDS)`` times, seeds 0, 1, 2, ..., and the importance
reported is the mean over those forests, with their standard deviation, range, and the range of
ranks each parameter took: that is how uncertain the number is. PED-ANOVA (Optuna's
``PedAnovaImportanceEvaluator``, no randomness; what optuna-dashboard shows) is given beside it: a
different question (which parameters matter to reach the best 10% of trials), and a second opinion.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass, field

FANOVA_SEEDS = (0, 1, 2, 3, 4)  # one forest per seed
FANOVA_TREES = 8  # trees per forest (Optuna's default 64): the 5 forests cost about 2/3 of one default fANOVA
PED_ANOVA_QUANTILE = 0.1  # Optuna's and optuna-dashboard's default target_quantile
COLUMNS = ("param", "fanova", "fanova_sd", "fanova_min", "fanova_max", "rank_min", "rank_max", "ped_anova")
CSV_NAME, JSON_NAME = "param_importances.csv", "param_importances.json"  # beside param_importances.png


@dataclass
class Importances:
    """One study's importances: ``rows`` (dicts with the ``COLUMNS``, most important first by the
    fANOVA mean), ``n_complete`` trials they were computed from, and how (``method``)."""

    rows: list[dict] = field(default_factory=list)
    n_complete: int = 0
    target: str = ""
    method: dict = field(default_factory=lambda: {
        "fanova": f"optuna FanovaImportanceEvaluator(n_trees={FANOVA_TREES}, seed=s) for s in {list(FANOVA_SEEDS)}; "
                  "mean, sd, min, max over the forests; rank_min/rank_max: the ranks across them",
        "ped_anova": f"optuna PedAnovaImportanceEvaluator(target_quantile={PED_ANOVA_QUANTILE}), as optuna-dashboard",
    })
    problem: str = ""  # why ``rows`` is empty

    def frame(self):
        """The rows as a pandas frame with the ``COLUMNS``."""
        import pandas as pd
        return pd.DataFrame(self.rows, columns=list(COLUMNS))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, allow_nan=True)

    @classmethod
    def from_json(cls, text: str) -> Importances:
        return cls(**json.loads(text))

    def uncertainty(self) -> str:
        """One sentence: how far the forests agree, and whether PED-ANOVA ranks the same first parameter."""
        if not self.rows:
            return self.problem
        spread = max(r["fanova_max"] - r["fanova_min"] for r in self.rows)
        moved = [r["param"] for r in self.rows if r["rank_min"] != r["rank_max"]]
        ped = [r for r in self.rows if r["ped_anova"] is not None and not math.isnan(r["ped_anova"])]
        ped_first = max(ped, key=lambda r: r["ped_anova"])["param"] if ped else None
        words = (f"From {self.n_complete} complete trials; the {len(FANOVA_SEEDS)} fANOVA forests differ by up to "
                 f"{spread:.2f} on one parameter")
        words += (f", and the rank of {', '.join(moved)} changes between them" if moved
                  else ", and agree on the ranking")
        if ped_first is not None:
            same = ped_first == self.rows[0]["param"]
            words += f"; PED-ANOVA ranks {ped_first} first ({'as' if same else 'unlike'} fANOVA)"
        return words + (". Few trials: read the ranking as a hint, not a measurement." if self.n_complete < 30 else ".")


def importance_target(study):
    """(target for the evaluators, its name): the first objective, lower is better (PED-ANOVA assumes
    minimisation: a maximised objective is negated, as optuna-dashboard does); fANOVA is unaffected."""
    from optuna.study import StudyDirection

    sign = -1.0 if study.directions[0] == StudyDirection.MAXIMIZE else 1.0
    if len(study.directions) == 1 and sign > 0:
        return None, "the objective"
    return (lambda t: sign * t.values[0]), "the first objective" + (" (negated)" if sign < 0 else "")


def study_importances(study) -> Importances:
    """The importances of ``study``'s searched parameters over its COMPLETE trials (see the module's
    docstring); empty, with ``problem`` saying why, when too few trials completed to tell."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    target, target_name = importance_target(study)
    result = Importances(n_complete=len(complete), target=target_name)
    if len(complete) < 2:
        result.problem = f"{len(complete)} complete trial{'s' if len(complete) != 1 else ''}: too few to tell"
        return result
    forests = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature and "PED-ANOVA minimises the target" warnings
        try:
            for seed in FANOVA_SEEDS:
                forests.append(optuna.importance.get_param_importances(
                    study, evaluator=FanovaImportanceEvaluator(n_trees=FANOVA_TREES, seed=seed), target=target))
        except (ValueError, RuntimeError) as err:  # e.g. no parameter shared by all complete trials
            result.problem = f"fANOVA cannot be computed: {err}"
            return result
        try:
            ped = optuna.importance.get_param_importances(
                study, evaluator=PedAnovaImportanceEvaluator(target_quantile=PED_ANOVA_QUANTILE), target=target)
        except (ValueError, RuntimeError):
            ped = {}
    params = sorted(forests[0])
    ranks = [{p: i + 1 for i, p in enumerate(sorted(params, key=lambda p: (-f.get(p, 0.0), p)))} for f in forests]
    rows = []
    for param in params:
        values = [float(f.get(param, 0.0)) for f in forests]
        mean = sum(values) / len(values)
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
        rows.append({"param": param, "fanova": mean, "fanova_sd": sd, "fanova_min": min(values),
                     "fanova_max": max(values), "rank_min": min(r[param] for r in ranks),
                     "rank_max": max(r[param] for r in ranks),
                     "ped_anova": float(ped[param]) if param in ped else math.nan})
    result.rows = sorted(rows, key=lambda r: (-r["fanova"], r["param"]))
    return result


def plot_importances(importances: Importances, title: str = "Hyperparameter importances"):
    """Horizontal bars: the fANOVA mean with its min–max over the forests as a whisker, PED-ANOVA beside it.
    Returns the matplotlib figure (names never cut: constrained layout)."""
    import numpy as np
    from matplotlib.figure import Figure

    rows = importances.rows[::-1]  # the most important at the top
    height = 0.55 * max(len(rows), 2) + 1.6
    figure = Figure(figsize=(8, height), layout="constrained")
    ax = figure.add_subplot()
    y = np.arange(len(rows))
    fanova = np.array([r["fanova"] for r in rows])
    low = fanova - np.array([r["fanova_min"] for r in rows])
    high = np.array([r["fanova_max"] for r in rows]) - fanova
    ax.barh(y + 0.2, fanova, height=0.38, color="tab:blue", xerr=[low, high], capsize=3,
            label=f"fANOVA: mean of {len(FANOVA_SEEDS)} forests (whisker: min–max)")
    ped = np.array([r["ped_anova"] for r in rows], dtype=float)
    ax.barh(y - 0.2, np.nan_to_num(ped), height=0.38, color="tab:orange", label="PED-ANOVA (as optuna-dashboard)")
    for yi, f, h, p in zip(y, fanova, high, ped):
        ax.text(f + h + 0.01, yi + 0.2, f"{f:.2f}", va="center", fontsize=9)
        if not math.isnan(p):
            ax.text(p + 0.01, yi - 0.2, f"{p:.2f}", va="center", fontsize=9)
    ax.set_yticks(y, [r["param"] for r in rows])
    ax.set_xlim(0, min(1.0, max([*fanova + high, *np.nan_to_num(ped), 0.05]) * 1.15 + 0.05))
    ax.set_xlabel(f"importance for {importances.target} (each method sums to 1)")
    ax.set_title(f"{title} ({importances.n_complete} complete trials)")
    ax.legend(loc="lower right", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return figure
