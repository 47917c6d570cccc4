"""analysis: convergence and minima statistics of a sweep, as tidy pandas frames and figures.

- :mod:`analysis.convergence`: from a long curves frame ``trial, epoch, metric, value`` and a
  trials frame ``trial, <hyperparameters>, state``: epochs (and seconds) to a threshold with
  censored runs kept, Kaplan–Meier medians, spread of final costs, decay rates, areas, and
  median/IQR curves per group.
- :mod:`analysis.minima`: from a :class:`nncore.Network` and flat parameter vectors: linear
  interpolation and barriers, basins, filter-normalised 1-D/2-D landscapes, sharpness (top
  Hessian eigenvalue by power iteration) and the exact Hessian of tiny nets.

Plot functions return a :class:`matplotlib.figure.Figure` (no pyplot state).
"""

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
    barrier,
    basins,
    exact_hessian,
    filter_normalized_direction,
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

__all__ = [
    "area_under_curve", "barrier", "basins", "convergence_rate", "epochs_to_threshold", "exact_hessian",
    "filter_normalized_direction", "final_spread", "final_values", "grouped_curves", "hessian_vector_product",
    "interpolate", "kaplan_meier", "km_median", "landscape_1d", "landscape_2d", "pairwise_barriers",
    "plot_barrier_heatmap", "plot_grouped_curves", "plot_interpolation", "plot_landscape_1d",
    "plot_landscape_2d", "sharpness", "threshold_summary",
]
