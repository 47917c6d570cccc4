"""analysis: convergence and minima statistics of a sweep, as tidy pandas frames and figures.

- :mod:`analysis.convergence`: from a long curves frame ``trial, epoch, metric, value`` and a
  trials frame ``trial, <hyperparameters>, state``: epochs (and seconds) to a threshold with
  censored runs kept, Kaplan–Meier medians, spread of final costs, decay rates, areas, and
  median/IQR curves per group.
- :mod:`analysis.minima`: from a :class:`nncore.Network` and flat parameter vectors: linear
  interpolation and barriers (three variants), basins, filter-normalised 1-D/2-D landscapes,
  sharpness (λ_max, λ_min and trace of the Hessian by Lanczos and Hutchinson; raw and
  filter-normalised) and the exact Hessian of tiny nets.
- :mod:`analysis.alignment`: permutation symmetry: :func:`align` permutes one net's hidden units to
  match another's by weight matching (Git Re-Basin), and barriers between minima modulo permutation.
- :mod:`analysis.stats`: verdicts from seeds: paired comparisons, Holm's correction, trend tests.

- :mod:`analysis.loading`: a study's trials, curves, configs and weights from the MLflow store
  and the Optuna storage, as pandas frames and nncore networks.
- :mod:`analysis.seeds`: the best configurations retrained with other seeds; spread, barriers
  and basins of their minima.
- :mod:`analysis.report`: ``python -m analysis.report``, the HTML report of all of it.

Plot functions return a :class:`matplotlib.figure.Figure` (no pyplot state). The names of
``loading`` and ``seeds`` are imported on first use (they import the experiments package).
"""

import importlib

from .alignment import Alignment, align, aligned_pairwise_barriers, permute
from .convergence import (
    area_under_curve,
    convergence_rate,
    epochs_to_threshold,
    final_spread,
    final_values,
    grouped_curves,
    kaplan_meier,
    km_median,
    plot_grouped_curves,
    threshold_summary,
)
from .minima import (
    Sharpness,
    barrier,
    basins,
    exact_hessian,
    filter_normalized_direction,
    filter_normalized_sharpness,
    filter_scales,
    hessian_vector_product,
    interpolate,
    landscape_1d,
    landscape_2d,
    pairwise_barriers,
    plot_barrier_heatmap,
    plot_interpolation,
    plot_landscape_1d,
    plot_landscape_2d,
    sharpness,
)

_LAZY = {
    **dict.fromkeys(["ArtifactsNotFoundError", "EmptyStudyError", "StudyNotFoundError", "StudyRecord",
                     "StudyStorageError", "TrialArtifacts", "find_study", "list_studies", "load_config", "load_curves",
                     "load_optuna_study", "load_run", "load_trial", "load_trials", "load_weights", "read_metrics",
                     "top_trials", "trial_runs"], "loading"),
    **dict.fromkeys(["SeedComparison", "SeedRuns", "compare_seeds", "retrain_seeds", "seed_robustness"], "seeds"),
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    *_LAZY,
    "Alignment", "Sharpness", "align", "aligned_pairwise_barriers", "area_under_curve", "barrier", "basins",
    "convergence_rate", "epochs_to_threshold", "exact_hessian",
    "filter_normalized_direction", "filter_normalized_sharpness", "filter_scales", "final_spread", "final_values",
    "grouped_curves", "hessian_vector_product",
    "interpolate", "kaplan_meier", "km_median", "landscape_1d", "landscape_2d", "pairwise_barriers",
    "plot_barrier_heatmap", "plot_grouped_curves", "plot_interpolation", "plot_landscape_1d",
    "permute", "plot_landscape_2d", "sharpness", "threshold_summary",
]
