"""Mini-batch training: shuffle every epoch, step through batches, evaluate, call back.

``X`` is ``(N, n_in)``. ``y`` is ``(N,)`` integer labels for classification, or ``(N,)`` /
``(N, n_targets)`` real targets for regression.
"""

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from .costs import check_cost
from .network import Network


class DivergenceError(FloatingPointError):
    """Training produced a non-finite cost; ``epoch`` says when (1-based)."""

    def __init__(self, epoch: int, metrics: dict):
        self.epoch, self.metrics = epoch, metrics
        bad = ", ".join(f"{k}={v}" for k, v in metrics.items() if k.endswith("cost") and not np.isfinite(v))
        super().__init__(f"training diverged at epoch {epoch}: {bad}")


@dataclass
class EpochMetrics:
    """What one epoch produced: costs on the whole sets (dropout off) and the wall time."""

    epoch: int
    train_cost: float
    val_cost: float | None = None
    train_accuracy: float | None = None
    val_accuracy: float | None = None
    time: float = 0.0

    def as_dict(self) -> dict:
        """The metrics that are set, as ``{name: value}``."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class History:
    """The per-epoch metrics of a fit and why it ended."""

    epochs: list = field(default_factory=list)
    stopped_early: bool = False

    def curve(self, name: str) -> np.ndarray:
        """One metric over the epochs, ``(n_epochs,)``."""
        return np.array([getattr(m, name) for m in self.epochs], dtype=np.float64)


def check_positive_int(name: str, value) -> int:
    """``value`` as int if it is an integer ≥ 1; ``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_finite(name: str, A: np.ndarray) -> None:
    """``ValueError`` naming ``name`` and the first row if ``A`` holds NaN or inf."""
    bad = ~np.isfinite(A)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(f"{name} contains NaN or inf (first at row {row}: {A[row]!r})")


def is_classification(y: np.ndarray) -> bool:
    """Integer labels ``(N,)`` mean classification; real targets mean regression."""
    return y.ndim == 1 and np.issubdtype(y.dtype, np.integer)


def encode_targets(net: Network, y, name: str = "y") -> np.ndarray:
    """Targets ``(N, n_out)`` in the network's dtype: one-hot for labels (a 0/1 column for one
    sigmoid output), reshaped real values for regression. ``ValueError`` for labels out of range."""
    y = np.asarray(y)
    n_out = net.sizes[-1]
    if is_classification(y):
        n_classes = max(n_out, 2)
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            bad = y[(y < 0) | (y >= n_classes)][0]
            raise ValueError(f"{name} has label {bad} outside the classes 0..{n_classes - 1}")
        if n_out == 1:
            return y.astype(net.dtype).reshape(-1, 1)
        Y = np.zeros((y.shape[0], n_out), net.dtype)
        Y[np.arange(y.shape[0]), y] = 1.0
        return Y
    if not np.issubdtype(y.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {y.dtype}")
    check_finite(name, y)
    Y = y.reshape(y.shape[0], -1).astype(net.dtype)
    if Y.shape[1] != n_out:
        raise ValueError(f"{name} has {Y.shape[1]} target columns but the network has {n_out} outputs")
    return Y


def check_inputs(net: Network, X, y, name_x: str = "X", name_y: str = "y"):
    """Validated ``X`` ``(N, n_in)`` and targets ``(N, n_out)`` in the network's dtype."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != net.sizes[0]:
        raise ValueError(f"{name_x} must have shape (N, {net.sizes[0]}), got {X.shape}")
    if not np.issubdtype(X.dtype, np.number):
        raise ValueError(f"{name_x} must be numeric, got dtype {X.dtype}")
    check_finite(name_x, X)
    y = np.asarray(y)
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"{name_x} and {name_y} have different lengths: {X.shape[0]} and {y.shape[0]}")
    return np.ascontiguousarray(X, dtype=net.dtype), encode_targets(net, y, name_y)


def accuracy(outputs: np.ndarray, y: np.ndarray) -> float:
    """Share of labels ``(N,)`` matched by the argmax of ``outputs`` ``(N, n_out)``."""
    pred = (outputs[:, 0] > 0.5) if outputs.shape[1] == 1 else outputs.argmax(axis=1)
    return float(np.mean(pred == y))


def train_epoch(net: Network, X: np.ndarray, Y: np.ndarray, optimizer, cost: str,
                batch_size: int, rng: np.random.Generator) -> None:
    """One pass over a fresh permutation of ``X`` ``(N, n_in)`` / ``Y`` ``(N, n_out)``, already
    in the network's dtype, in mini-batches (the last, smaller one included)."""
    n = X.shape[0]
    order = rng.permutation(n)
    xb = np.empty((min(batch_size, n), X.shape[1]), X.dtype)
    yb = np.empty((min(batch_size, n), Y.shape[1]), Y.dtype)
    for lo in range(0, n, batch_size):
        idx = order[lo:lo + batch_size]
        m = idx.shape[0]
        np.take(X, idx, axis=0, out=xb[:m], mode="clip")  # "clip": no bounds-checking copy;
        np.take(Y, idx, axis=0, out=yb[:m], mode="clip")  # idx is a permutation, always in range
        net.backprop(xb[:m], yb[:m], cost, net.draw_masks(m, rng))
        optimizer.step(net.params, net.grads)


def default_cost(net: Network) -> str:
    """Cross-entropy for probability outputs, squared error otherwise."""
    return "squared_error" if net.output == "identity" else "cross_entropy"


def fit(net: Network, X, y, *, optimizer, epochs: int, batch_size: int,
        rng: np.random.Generator, cost: str | None = None, X_val=None, y_val=None,
        callback: Callable[[EpochMetrics], bool] | None = None) -> History:
    """Train ``net`` in place and return its :class:`History`.

    After every epoch the costs on the whole training and validation sets (dropout off),
    the accuracies for classification and the epoch's wall time go to ``callback``; a truthy
    return stops training. A non-finite cost raises :class:`DivergenceError`.
    """
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    cost = cost or default_cost(net)
    check_cost(cost, net.output)
    X, Y = check_inputs(net, X, y)
    labels = np.asarray(y) if is_classification(np.asarray(y)) else None
    has_val = X_val is not None
    if has_val:
        X_val, Y_val = check_inputs(net, X_val, y_val, "X_val", "y_val")
        val_labels = np.asarray(y_val) if labels is not None else None
    history = History()
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        train_epoch(net, X, Y, optimizer, cost, batch_size, rng)
        train_cost, train_acc = _cost_and_accuracy(net, X, Y, labels, cost)
        metrics = EpochMetrics(epoch, train_cost, train_accuracy=train_acc)
        if has_val:
            metrics.val_cost, metrics.val_accuracy = _cost_and_accuracy(net, X_val, Y_val, val_labels, cost)
        metrics.time = time.perf_counter() - start
        history.epochs.append(metrics)
        if not all(np.isfinite(v) for v in (metrics.train_cost, metrics.val_cost) if v is not None):
            raise DivergenceError(epoch, metrics.as_dict())
        if callback is not None and callback(metrics):
            history.stopped_early = epoch < epochs
            break
    return history


def _cost_and_accuracy(net: Network, X, Y, labels, cost: str):
    value, outputs = net.evaluate(X, Y, cost)
    return value, (accuracy(outputs, labels) if labels is not None else None)
