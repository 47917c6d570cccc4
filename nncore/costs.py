"""Costs and the output layer's error ``δ = dC/dz`` for every output × cost pair.

``z`` and ``a`` are the output layer's pre-activations and activations, ``y`` the targets,
all ``(batch, n_out)``; costs are summed over output nodes and averaged over the batch.

- ``squared_error``: ``C = mean_batch Σ_j (a_j - y_j)²``, as in the slides.
- ``cross_entropy``: with ``softmax``, ``-Σ_j y_j log a_j``; with ``sigmoid``,
  ``-Σ_j [y_j log a_j + (1-y_j) log(1-a_j)]``; both computed from ``z`` by log-sum-exp, so
  no ``log(0)``. It needs a softmax or sigmoid output.
"""

import numpy as np

COSTS = ("squared_error", "cross_entropy")


def check_cost(cost: str, output: str) -> None:
    """``ValueError`` for an unknown cost, or cross-entropy on an output that is no probability."""
    if cost not in COSTS:
        raise ValueError(f"unknown cost {cost!r}; choose one of: {', '.join(COSTS)}")
    if cost == "cross_entropy" and output not in ("softmax", "sigmoid"):
        raise ValueError(f"cost 'cross_entropy' needs a softmax or sigmoid output, got output {output!r}")


def cost_sum(cost: str, output: str, z: np.ndarray, a: np.ndarray, y: np.ndarray) -> float:
    """The cost summed (not averaged) over the batch, in float64."""
    if cost == "squared_error":
        diff = a - y
        return float(np.einsum("ij,ij->", diff, diff, dtype=np.float64))
    z = z.astype(np.float64, copy=False)
    if output == "softmax":
        shifted = z - z.max(axis=1, keepdims=True)
        log_a = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return float(-np.einsum("ij,ij->", y, log_a, dtype=np.float64))
    # sigmoid: -[y log σ(z) + (1-y) log(1-σ(z))] = softplus(z) - y z
    softplus = np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))
    return float(softplus.sum() - np.einsum("ij,ij->", y, z, dtype=np.float64))


def output_delta(cost: str, output: str, a: np.ndarray, y: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Write ``dC/dz`` of the batch-mean cost into ``out`` and return it."""
    scale = 1.0 / a.shape[0]
    np.subtract(a, y, out=out)
    if cost == "cross_entropy":  # softmax or sigmoid: δ = (a - y)/n
        out *= scale
        return out
    out *= 2.0 * scale  # dC/da
    if output == "sigmoid":
        out *= a * (1.0 - a)
    elif output == "softmax":  # Jacobian of softmax: a ⊙ (g - <g, a>)
        out -= np.einsum("ij,ij->i", out, a)[:, None]
        out *= a
    return out
