"""Mini-batch gradient noise: how far a mini-batch's gradient strays from the full gradient.

With per-sample gradients ``gᵢ`` (of one sample's cost, ``(n_params,)``) over a training set of ``n``
samples, the full gradient is their mean ``g = (1/n) Σᵢ gᵢ`` (the gradient of the mean cost) and a
batch of ``B`` samples drawn without replacement has ``g_B = (1/B) Σ_{i∈batch} gᵢ``. Its expected
squared distance is the finite-population variance of a sample mean::

    E‖g_B − g‖² = (n − B) / (B (n − 1)) · (1/n) Σᵢ ‖gᵢ − g‖²

:func:`minibatch_gradient_variance` measures the left side directly over independent batches, each
distributed as any one batch :func:`nncore.fit` draws; :func:`sampling_variance` computes the right
side. Gradients are taken in float64 with dropout off, on a copy of the network: the measurement
neither rounds like float32 nor touches the network it is given. ``X`` is ``(n, n_in)`` and ``Y``
``(n, n_out)`` (e.g. from :func:`nncore.check_inputs`); ``cost`` a name of :data:`nncore.COSTS`.
"""

import numpy as np

from nncore import Network
from nncore.training import check_positive_int


def minibatch_gradient_variance(net: Network, X: np.ndarray, Y: np.ndarray, cost: str, batch_size: int,
                                n_batches: int, rng: np.random.Generator) -> tuple[float, float]:
    """``E‖g_B − g‖²`` measured over ``n_batches`` mini-batches, and its standard error.

    Each batch is an independent draw of ``min(batch_size, n)`` of the ``n`` rows without
    replacement (``rng.choice``): distributed as each batch of :func:`nncore.fit`'s epochs (a
    block of a fresh permutation), but independent of the others, so the standard error is that
    of a mean of i.i.d. values, ``sd(ddof=1)/√n_batches`` (NaN for one batch). Disjoint batches
    of one epoch would not be: their squared deviations correlate.
    """
    n_batches = check_positive_int("n_batches", n_batches)
    twin, X, Y = _float64(net, X, Y)
    n, size = X.shape[0], min(check_positive_int("batch_size", batch_size), X.shape[0])
    g = _gradient(twin, X, Y, cost)
    squares = np.empty(n_batches)
    for k in range(n_batches):
        idx = rng.choice(n, size, replace=False)
        squares[k] = _squared_norm(_gradient(twin, X[idx], Y[idx], cost) - g)
    stderr = squares.std(ddof=1) / np.sqrt(n_batches) if n_batches > 1 else np.nan
    return float(squares.mean()), float(stderr)


def sampling_variance(net: Network, X: np.ndarray, Y: np.ndarray, cost: str, batch_size: int) -> float:
    """The exact ``E‖g_B − g‖²`` for batches of ``batch_size`` drawn without replacement from the
    ``n`` rows: :func:`sampling_factor` × :func:`per_sample_variance`."""
    return sampling_factor(np.shape(X)[0], batch_size) * per_sample_variance(net, X, Y, cost)


def per_sample_variance(net: Network, X: np.ndarray, Y: np.ndarray, cost: str) -> float:
    """``(1/n) Σᵢ ‖gᵢ − g‖²`` over the ``n`` rows: the variance of one sample's gradient (the
    mini-batch variance at ``B = 1``). One backward pass per row; no ``(n, n_params)`` array."""
    twin, X, Y = _float64(net, X, Y)
    g = _gradient(twin, X, Y, cost)
    total = sum(_squared_norm(_gradient(twin, X[i:i + 1], Y[i:i + 1], cost) - g) for i in range(X.shape[0]))
    return total / X.shape[0]


def sampling_factor(n: int, batch_size: int) -> float:
    """``(n − B) / (B (n − 1))`` with ``B = min(batch_size, n)``: the mini-batch gradient variance
    relative to one sample's; 1 at ``B = 1``, 0 for the full batch."""
    size = min(check_positive_int("batch_size", batch_size), check_positive_int("n", n))
    return 0.0 if size == n else (n - size) / (size * (n - 1))


def _float64(net: Network, X: np.ndarray, Y: np.ndarray):
    """A float64 copy of ``net`` with dropout off, and ``X``, ``Y`` as float64."""
    twin = Network(net.sizes, net.activation, net.output, 0.0, net.init, "float64")
    twin.params[...] = net.params
    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0] or X.shape[0] == 0 \
            or X.shape[1] != net.sizes[0] or Y.shape[1] != net.sizes[-1]:
        raise ValueError(f"X and Y must be (n, {net.sizes[0]}) and (n, {net.sizes[-1]}) with n >= 1, "
                         f"got {X.shape} and {Y.shape}")
    return twin, X, Y


def _gradient(twin: Network, X: np.ndarray, Y: np.ndarray, cost: str) -> np.ndarray:
    """The gradient ``(n_params,)`` of the mean cost over the rows of ``X``, ``Y`` (a new array)."""
    twin.loss_and_grad(X, Y, cost)
    return twin.grads.copy()


def _squared_norm(v: np.ndarray) -> float:
    return float(v @ v)
