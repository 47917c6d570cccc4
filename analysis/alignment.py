"""Permutation symmetry: align one network's hidden units to another's by weight matching.

Permuting the units of a hidden layer ℓ — the rows of ``W_ℓ`` ``(n_ℓ, n_{ℓ-1})`` and of ``b_ℓ``
``(n_ℓ,)``, the columns of ``W_{ℓ+1}`` ``(n_{ℓ+1}, n_ℓ)`` — leaves the function a network computes
unchanged. A permutation ``π`` of a layer is an int array ``(n_ℓ,)``: unit ``i`` of the permuted
net is unit ``π[i]`` of the original (``P W = W[π]`` with ``P[i, π[i]] = 1``).

:func:`align` finds the permutations of ``net_b`` that bring its weights closest to ``net_a``'s
(weight matching, Ainsworth, Hayase & Srinivasa 2023, "Git Re-Basin"): it maximises
``⟨θ_a, π(θ_b)⟩`` (equivalently minimises ``‖θ_a − π(θ_b)‖²``) one hidden layer at a time, each a
linear assignment, until no layer improves. :func:`aligned_pairwise_barriers` gives the barrier
matrix between minima modulo permutation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from threadpoolctl import ThreadpoolController

from nncore import Network

from .minima import barrier, interpolate

MAX_SWEEPS = 100
IMPROVE_RTOL = 1e-12  # a layer's new assignment must beat the old by this × (1 + |objective|)


@dataclass
class Alignment:
    """What :func:`align` found.

    ``net``: a copy of ``net_b`` with its hidden units permuted to match ``net_a``. ``perms``: one
    int array ``(n_ℓ,)`` per hidden layer (see :func:`permute`). ``sweeps``: passes over the hidden
    layers. ``objective``: ``⟨θ_a, π(θ_b)⟩`` at the end; ``objectives``: its value before the first
    sweep and after each, ``(sweeps + 1,)``, never decreasing.
    """

    net: Network
    perms: list
    sweeps: int
    objective: float
    objectives: np.ndarray = field(repr=False)


def check_perms(net: Network, perms) -> list[np.ndarray]:
    """``perms`` as int64 arrays, one per hidden layer of ``net``, each a permutation of
    ``range(n_ℓ)``; ``ValueError`` otherwise."""
    hidden = net.sizes[1:-1]
    perms = list(perms)
    if len(perms) != len(hidden):
        raise ValueError(f"need one permutation per hidden layer ({len(hidden)}), got {len(perms)}")
    out = []
    for layer, (perm, width) in enumerate(zip(perms, hidden)):
        perm = np.asarray(perm)
        if perm.shape != (width,) or not np.issubdtype(perm.dtype, np.integer) \
                or not np.array_equal(np.sort(perm), np.arange(width)):
            raise ValueError(f"perms[{layer}] must be a permutation of range({width}), got {perm!r}")
        out.append(perm.astype(np.int64))
    return out


def permute(net: Network, perms) -> Network:
    """A copy of ``net`` with hidden layer ℓ's units reordered by ``perms[ℓ]`` ``(n_ℓ,)``: rows of
    ``W_ℓ`` and ``b_ℓ``, columns of ``W_{ℓ+1}``. It computes the same function as ``net``."""
    perms = check_perms(net, perms)
    out = net.copy()
    for layer, perm in enumerate(perms):
        out.weights[layer][...] = out.weights[layer][perm]
        out.biases[layer][...] = out.biases[layer][perm]
        out.weights[layer + 1][...] = out.weights[layer + 1][:, perm]
    return out


def _check_pair(net_a: Network, net_b: Network) -> None:
    for name in ("sizes", "activation", "output"):
        if getattr(net_a, name) != getattr(net_b, name):
            raise ValueError(f"cannot align networks of different architectures: net_a.{name} = "
                             f"{getattr(net_a, name)!r}, net_b.{name} = {getattr(net_b, name)!r}")


def _permuted(weights, biases, perms):
    """The weight and bias arrays of a net with hidden units reordered by ``perms`` (new arrays)."""
    weights, biases = list(weights), list(biases)
    for layer, perm in enumerate(perms):
        weights[layer], biases[layer] = weights[layer][perm], biases[layer][perm]
        weights[layer + 1] = weights[layer + 1][:, perm]
    return weights, biases


def _objective(wa, ba, wb, bb) -> float:
    return float(sum(np.vdot(x, y) for x, y in zip([*wa, *ba], [*wb, *bb])))


def align(net_a: Network, net_b: Network, rng=0, max_sweeps: int = MAX_SWEEPS) -> Alignment:
    """Permute ``net_b``'s hidden units to match ``net_a`` by weight matching.

    For hidden layer ℓ, with the other layers' permutations fixed, the similarity of unit ``i`` of
    a and unit ``j`` of b is ``A_ℓ = W_ℓᵃ (W_ℓᵇ P_{ℓ-1}ᵀ)ᵀ + b_ℓᵃ b_ℓᵇᵀ + W_{ℓ+1}ᵃᵀ (W_{ℓ+1}ᵇ P_{ℓ+1}ᵀ)``
    ``(n_ℓ, n_ℓ)`` (``P`` the identity at the input and output), and
    ``scipy.optimize.linear_sum_assignment(A_ℓ, maximize=True)`` gives ``π_ℓ``. The hidden layers are
    visited in an order drawn from ``rng`` (a seed or a ``numpy.random.Generator``) each sweep, a new
    assignment kept only if it raises the objective, until a sweep improves no layer (one sweep for
    one hidden layer, whose assignment is then exact) or ``max_sweeps``. In float64, on one BLAS thread.
    ``ValueError`` when the networks differ in architecture.
    """
    if not isinstance(net_a, Network) or not isinstance(net_b, Network):
        raise ValueError(f"align takes two nncore.Network, got {type(net_a).__name__} and {type(net_b).__name__}")
    _check_pair(net_a, net_b)
    if isinstance(max_sweeps, bool) or not isinstance(max_sweeps, (int, np.integer)) or max_sweeps < 1:
        raise ValueError(f"max_sweeps must be an integer >= 1, got {max_sweeps!r}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    with _one_blas_thread():  # 2×512: 0.2 s on one BLAS thread, 1–2 s on two on busy shared cores
        return _weight_matching(net_a, net_b, rng, max_sweeps)


_CONTROLLER: list = []  # a ThreadpoolController, made once: making one reads the process's libraries (~8 ms)


def _one_blas_thread():
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1)


def _weight_matching(net_a: Network, net_b: Network, rng: np.random.Generator, max_sweeps: int) -> Alignment:
    wa = [w.astype(np.float64) for w in net_a.weights]
    ba = [b.astype(np.float64) for b in net_a.biases]
    wb = [w.astype(np.float64) for w in net_b.weights]
    bb = [b.astype(np.float64) for b in net_b.biases]
    n_hidden = len(net_a.sizes) - 2
    perms = [np.arange(width) for width in net_a.sizes[1:-1]]
    objectives = [_objective(wa, ba, wb, bb)]
    sweeps = 0
    while n_hidden and sweeps < max_sweeps:
        sweeps += 1
        improved = False
        for layer in rng.permutation(n_hidden):
            # b's layer with its input columns already in a's order (π_{ℓ-1}) and its next layer's
            # rows too (π_{ℓ+1}); only π_ℓ, on b's rows here and the next layer's columns, is free
            w_in = wb[layer] if layer == 0 else wb[layer][:, perms[layer - 1]]
            w_out = wb[layer + 1] if layer + 1 == n_hidden else wb[layer + 1][perms[layer + 1]]
            A = wa[layer] @ w_in.T + np.outer(ba[layer], bb[layer]) + wa[layer + 1].T @ w_out
            _, new = linear_sum_assignment(A, maximize=True)
            rows = np.arange(len(new))
            old_value, new_value = A[rows, perms[layer]].sum(), A[rows, new].sum()
            if new_value > old_value + IMPROVE_RTOL * (1.0 + abs(objectives[-1])):
                perms[layer] = new
                improved = True
        objectives.append(_objective(wa, ba, *_permuted(wb, bb, perms)))
        if not improved or n_hidden == 1:
            break
    aligned = permute(net_b, perms)
    return Alignment(aligned, [p.astype(np.int64) for p in perms], sweeps, objectives[-1],
                     np.asarray(objectives, np.float64))


def aligned_pairwise_barriers(net: Network, thetas, X, Y, cost: str, n_alphas: int = 21, variant: str = "max_end",
                              labels=None, rng=0) -> tuple[pd.DataFrame, dict]:
    """Barriers between every pair of minima in ``thetas`` (a list of ``(n_params,)`` in ``net``'s
    layout) modulo permutation: for i < j, θ_j aligned to θ_i by :func:`align`, then
    :func:`analysis.minima.barrier` on ``n_alphas`` evenly spaced α in [0, 1] (``X`` ``(N, n_in)``,
    ``Y`` ``(N, n_out)``, the mean ``cost``). The ends are the losses at θ_i and θ_j (the aligned
    θ_j computes the same function). Returns the symmetric ``(k, k)`` frame indexed by ``labels``
    (default 0..k-1), zeros on the diagonal, and ``{(label_i, label_j): perms}`` for i < j."""
    thetas = [np.asarray(t) for t in thetas]
    for i, theta in enumerate(thetas):
        if theta.shape != (net.n_params,):
            raise ValueError(f"thetas[{i}] must have shape ({net.n_params},), got {theta.shape}")
    labels = list(range(len(thetas))) if labels is None else list(labels)
    if len(labels) != len(thetas):
        raise ValueError(f"{len(labels)} labels for {len(thetas)} minima")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    alphas = np.linspace(0.0, 1.0, n_alphas)
    nets = []
    for theta in thetas:
        twin = net.copy()
        twin.params[...] = theta
        nets.append(twin)
    ends = [float(twin.loss(X, Y, cost)) for twin in nets]
    k = len(thetas)
    matrix, perms = np.zeros((k, k)), {}
    for i in range(k):
        for j in range(i + 1, k):
            found = align(nets[i], nets[j], rng=rng)
            inner = interpolate(net, nets[i].params, found.net.params, X, Y, cost, alphas=alphas[1:-1])
            matrix[i, j] = matrix[j, i] = barrier([ends[i], *inner["loss"], ends[j]], variant=variant)
            perms[(labels[i], labels[j])] = found.perms
    return pd.DataFrame(matrix, index=labels, columns=labels), perms
