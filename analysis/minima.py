"""Comparing minima: linear interpolation, barriers, filter-normalised landscapes, sharpness.

A ``θ`` is a flat parameter vector ``(n_params,)`` in the layout of ``Network.params``. ``X``
is ``(N, n_in)``, ``Y`` the targets ``(N, n_out)`` from :func:`nncore.encode_targets`, ``cost``
a name from :data:`nncore.COSTS`. Every loss is the mean cost over the whole of ``X`` with
dropout off. No function changes the network it is given: they evaluate a scratch copy.
"""

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from nncore import Network


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


# k/20 exactly: the same points as np.linspace(-0.5, 1.5, 41) and np.linspace(-1, 1, 41), with
# α = 0 and α = 1 on the grid (51 points on [-0.5, 1.5] would step 0.04 and miss both).
INTERPOLATION_ALPHAS = _readonly(np.arange(-10, 31) / 20)
LANDSCAPE_ALPHAS = _readonly(np.arange(-20, 21) / 20)
# Steps of the central differences of gradients, in float64. For a smooth loss the error is
# truncation ~ r²·|∇³L|/6 plus rounding ~ 1e-16·|∇L|/r: both ≤ 1e-9 relative anywhere in 1e-7..1e-4
# on the nets tried (1e-5 best). A ReLU kink within r of θ along v adds a spurious jump/2r to Hv:
# r = 1e-6 makes that ten times rarer than 1e-5 at no cost in accuracy, and sharpness checks its
# eigenvectors at r/10.
HVP_STEP = 1e-6
HESSIAN_STEP = 1e-5  # exact_hessian: unit steps along single parameters, for tiny smooth nets
KINK_CHECK_RTOL = 1e-3  # sharpness warns if vᵀHv at r/10 differs from that at r by more than this × max|λ|
# Lanczos basis sizes (eigsh's ncv). λ_max is well separated at the minima tried (converged within the first
# 20 products); λ_min sits in a cluster near 0 there, and 20 did not converge in 100 restarts on a 64-64-10 ReLU
# net where 40 took ~1000 products.
LANCZOS_VECTORS_MAX, LANCZOS_VECTORS_MIN = 20, 40
# The barrier's reference level for the ends L_a, L_b (losses at α = 0, 1); see barrier().
BARRIER_VARIANTS = ("max_end", "frankle2020", "entezari2022")


def _scratch(net: Network, dtype=None) -> Network:
    """A new network like ``net`` (same architecture and parameters), in ``dtype`` if given."""
    twin = Network(net.sizes, net.activation, net.output, dropout=net.dropout, init=net.init,
                   dtype=dtype or net.dtype, rng=0)
    twin.params[...] = net.params
    return twin


def _flat(net: Network, theta, name: str) -> np.ndarray:
    """``theta`` as a float64 ``(n_params,)`` array; ``ValueError`` for another shape."""
    theta = np.asarray(theta, np.float64)
    if theta.shape != (net.n_params,):
        raise ValueError(f"{name} must have shape ({net.n_params},), got {theta.shape}")
    return theta


def _loss_at(twin: Network, theta: np.ndarray, X, Y, cost: str) -> float:
    twin.params[...] = theta
    return float(twin.loss(X, Y, cost))


def _gradient_at(twin: Network, theta: np.ndarray, X, Y, cost: str) -> np.ndarray:
    """∇L(θ) ``(n_params,)`` over the whole batch, dropout off."""
    twin.params[...] = theta
    twin.loss_and_grad(X, Y, cost)
    return twin.grads.astype(np.float64)


def _cast(twin: Network, X, Y):
    return np.ascontiguousarray(X, twin.dtype), np.ascontiguousarray(Y, twin.dtype)


# ---------------------------------------------------------------- interpolation and barriers


def path_point(theta_a: np.ndarray, theta_b: np.ndarray, alpha: float) -> np.ndarray:
    """``(1-α)θa + αθb`` ``(n_params,)``, computed from the nearer end so that α = 0 gives θa,
    α = 1 gives θb and θa = θb gives θa, all exactly."""
    if alpha <= 0.5:
        return theta_a + alpha * (theta_b - theta_a)
    return theta_b + (1.0 - alpha) * (theta_a - theta_b)


def interpolate(net: Network, theta_a, theta_b, X, Y, cost: str, alphas=INTERPOLATION_ALPHAS) -> pd.DataFrame:
    """``L((1-α)θa + αθb)`` for each α in ``alphas`` ``(n_alphas,)`` (Goodfellow et al. 2015).

    Evaluated in the network's dtype; ``net`` is left as it was. Returns columns ``alpha``, ``loss``.
    """
    twin = _scratch(net)
    a, b = _flat(net, theta_a, "theta_a"), _flat(net, theta_b, "theta_b")
    X, Y = _cast(twin, X, Y)
    alphas = np.asarray(alphas, np.float64)
    losses = [_loss_at(twin, path_point(a, b, al), X, Y, cost) for al in alphas]
    return pd.DataFrame({"alpha": alphas, "loss": losses})


def barrier(losses, ends=None, variant: str = "max_end") -> float:
    """The loss barrier along the path ``L(α)``, α ∈ [0, 1], between two minima with end losses
    ``L_a = L(0)``, ``L_b = L(1)``. Three definitions are in use; they differ by up to |L_a − L_b|/2:

    - ``"max_end"`` (the default, the most conservative): ``max_α L(α) − max(L_a, L_b)``;
    - ``"frankle2020"`` (Frankle et al. 2020, "Linear mode connectivity and the lottery ticket
      hypothesis", there in error): ``max_α L(α) − (L_a + L_b)/2``;
    - ``"entezari2022"`` (Entezari et al. 2022, "The role of permutation invariance in linear mode
      connectivity"): ``max_α [L(α) − ((1−α) L_a + α L_b)]``.

    ``losses``: a frame from :func:`interpolate` (rows with α outside [0, 1] are ignored; the
    ends default to its rows at α = 0 and α = 1) or an array ``(n,)`` of losses at α evenly spaced
    on [0, 1], first at 0 and last at 1 (the ends default to its first and last). ``ends``:
    ``(L_a, L_b)``. With the ends on the path every variant is ≥ 0, and 0 between a minimum and
    itself. NaN if the path holds NaN.
    """
    if variant not in BARRIER_VARIANTS:
        raise ValueError(f"unknown barrier variant {variant!r}; choose one of: {', '.join(BARRIER_VARIANTS)}")
    if isinstance(losses, pd.DataFrame):
        alpha = losses["alpha"].to_numpy(np.float64)
        loss = losses["loss"].to_numpy(np.float64)
        inside = (alpha >= -1e-12) & (alpha <= 1 + 1e-12)
        path, alpha = loss[inside], alpha[inside]
        if ends is None:
            ends = tuple(_loss_at_alpha(alpha, path, target) for target in (0.0, 1.0))
    else:
        path = np.asarray(losses, np.float64).ravel()
        alpha = np.linspace(0.0, 1.0, path.size)
        if ends is None:
            ends = (path[0], path[-1]) if path.size else (np.nan, np.nan)
    if path.size == 0:
        raise ValueError("no losses with alpha in [0, 1]")
    l_a, l_b = float(ends[0]), float(ends[1])
    if variant == "entezari2022":
        return float(np.max(path - ((1.0 - alpha) * l_a + alpha * l_b)))
    reference = max(l_a, l_b) if variant == "max_end" else (l_a + l_b) / 2
    return float(np.max(path) - reference)


def _loss_at_alpha(alpha: np.ndarray, loss: np.ndarray, target: float) -> float:
    hit = np.flatnonzero(np.isclose(alpha, target, rtol=0.0, atol=1e-9))
    if hit.size == 0:
        raise ValueError(f"the losses have no row at alpha={target:g}; put it on the grid or pass ends=")
    return float(loss[hit[0]])


def pairwise_barriers(net: Network, thetas, X, Y, cost: str, n_alphas: int = 21, variant: str = "max_end",
                      labels=None) -> pd.DataFrame:
    """Barriers (see :func:`barrier`) between every pair of minima in ``thetas`` (a list of
    ``(n_params,)``), on ``n_alphas`` evenly spaced α in [0, 1]. Returns a symmetric
    ``(k, k)`` frame indexed by ``labels`` (default 0..k-1) with zeros on the diagonal."""
    twin = _scratch(net)
    thetas = [_flat(net, t, f"thetas[{i}]") for i, t in enumerate(thetas)]
    X, Y = _cast(twin, X, Y)
    alphas = np.linspace(0.0, 1.0, n_alphas)
    ends = [_loss_at(twin, t, X, Y, cost) for t in thetas]
    k = len(thetas)
    matrix = np.zeros((k, k))
    for i in range(k):
        for j in range(i + 1, k):
            inner = [_loss_at(twin, path_point(thetas[i], thetas[j], al), X, Y, cost) for al in alphas[1:-1]]
            matrix[i, j] = matrix[j, i] = barrier([ends[i], *inner, ends[j]], variant=variant)
    labels = list(range(k)) if labels is None else list(labels)
    return pd.DataFrame(matrix, index=labels, columns=labels)


def basins(barrier_matrix, tol: float) -> np.ndarray:
    """Basin labels ``(k,)``: minima i and j share a basin when a chain of barriers ≤ ``tol``
    joins them (connected components; a NaN barrier joins nothing). Labels count 0, 1, ...
    in order of first appearance; ``labels.max() + 1`` basins, one basin if all are 0."""
    B = np.asarray(barrier_matrix, np.float64)
    if B.ndim != 2 or B.shape[0] != B.shape[1]:
        raise ValueError(f"barrier_matrix must be square, got shape {B.shape}")
    linked = (B <= tol) | (B.T <= tol)
    labels = np.full(B.shape[0], -1, np.int64)
    n_basins = 0
    for start in range(B.shape[0]):
        if labels[start] >= 0:
            continue
        labels[start], stack = n_basins, [start]
        while stack:
            i = stack.pop()
            for j in np.flatnonzero(linked[i] & (labels < 0)):
                labels[j] = n_basins
                stack.append(j)
        n_basins += 1
    return labels


# ---------------------------------------------------------------- landscapes


def filter_normalized_direction(net: Network, rng) -> np.ndarray:
    """A random direction ``(n_params,)`` float64, filter-normalised (Li et al. 2018).

    Weights: ``d ~ N(0, I)``, then each neuron's incoming row ``d_i`` ``(n_in,)`` of every
    ``(n_out, n_in)`` block becomes ``d_i ‖θ_i‖ / (‖d_i‖ + 1e-10)`` with ``θ_i`` the network's
    row. Biases: 0. ``rng``: a ``numpy.random.Generator`` or a seed; the same seed gives the same d.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    holder = _scratch(net, np.float64)  # its weight views give the flat layout
    holder.params[...] = 0.0
    for w_dir, w in zip(holder.weights, net.weights):
        d = rng.standard_normal(w_dir.shape)
        scale = np.linalg.norm(w.astype(np.float64), axis=1) / (np.linalg.norm(d, axis=1) + 1e-10)
        w_dir[...] = d * scale[:, None]
    return holder.params.copy()


def landscape_1d(net: Network, X, Y, cost: str, direction, alphas=LANDSCAPE_ALPHAS) -> pd.DataFrame:
    """``L(θ* + α d)`` for α in ``alphas`` (default 41 points on [-1, 1]) with θ* = net.params
    and d = ``direction`` ``(n_params,)``. Returns columns ``alpha``, ``loss``."""
    twin = _scratch(net)
    center, d = _flat(net, net.params, "params"), _flat(net, direction, "direction")
    X, Y = _cast(twin, X, Y)
    alphas = np.asarray(alphas, np.float64)
    return pd.DataFrame({"alpha": alphas, "loss": [_loss_at(twin, center + a * d, X, Y, cost) for a in alphas]})


def symmetric_grid(n: int) -> np.ndarray:
    """``n`` evenly spaced points on [-1, 1] ``(n,)``, with an exact 0 in the middle for odd n."""
    half = (n - 1) / 2
    return (np.arange(n) - half) / half if n > 1 else np.zeros(1)


def landscape_2d(net: Network, X, Y, cost: str, d1, d2, n: int = 21) -> pd.DataFrame:
    """``L(θ* + α d1 + β d2)`` on an ``n × n`` grid over [-1, 1]² with θ* = net.params.
    Returns the long frame ``alpha, beta, loss`` (``n²`` rows, β varying fastest)."""
    twin = _scratch(net)
    center = _flat(net, net.params, "params")
    d1, d2 = _flat(net, d1, "d1"), _flat(net, d2, "d2")
    X, Y = _cast(twin, X, Y)
    grid = symmetric_grid(n)
    rows = [(a, b, _loss_at(twin, center + a * d1 + b * d2, X, Y, cost)) for a in grid for b in grid]
    return pd.DataFrame(rows, columns=["alpha", "beta", "loss"])


# ---------------------------------------------------------------- curvature


def hessian_vector_product(net: Network, X, Y, cost: str, v, r: float = HVP_STEP) -> np.ndarray:
    """``Hv ≈ (∇L(θ + r v) - ∇L(θ - r v)) / 2r`` ``(n_params,)`` at θ = net.params, full batch,
    dropout off, in float64 (``v`` ``(n_params,)``; ``r`` is the step along v as given)."""
    twin = _scratch(net, np.float64)
    theta, v = _flat(net, net.params, "params"), _flat(net, v, "v")
    X, Y = _cast(twin, X, Y)
    return _hvp(twin, theta, X, Y, cost, v, r)


def _hvp(twin, theta, X, Y, cost, v, r):
    return (_gradient_at(twin, theta + r * v, X, Y, cost) - _gradient_at(twin, theta - r * v, X, Y, cost)) / (2 * r)


@dataclass(frozen=True)
class Sharpness:
    """Curvature at θ from :func:`sharpness` or :func:`filter_normalized_sharpness`.

    ``lambda_max``, ``lambda_min``: the largest and smallest *algebraic* eigenvalues of the
    matrix named by ``normalization`` (``"none"``: the Hessian H of the loss in θ; ``"filter"``:
    D H D, see :func:`filter_normalized_sharpness`); ``trace`` its Hutchinson trace estimate over
    ``n_trace`` Rademacher vectors and ``trace_se`` that estimate's standard error (NaN for
    ``n_trace`` < 2); ``n_hvp_max``, ``n_hvp_min``: the Hessian-vector products (Lanczos steps)
    each eigenvalue took.
    """

    lambda_max: float
    lambda_min: float
    trace: float
    trace_se: float
    n_hvp_max: int
    n_hvp_min: int
    n_trace: int
    normalization: str


def sharpness(net: Network, X, Y, cost: str, tol: float = 1e-6, n_trace: int = 50, lambda_min: bool = True,
              r: float = HVP_STEP, max_iter: int = 100, rng=0) -> Sharpness:
    """λ_max, λ_min and the trace of the Hessian H of the loss at θ = net.params (raw sharpness).

    Lanczos (``scipy.sparse.linalg.eigsh``, ARPACK) on finite-difference products ``Hv`` (see
    :func:`hessian_vector_product`, step ``r``), full batch, dropout off, float64 on a copy (a
    float32 net is promoted). ``lambda_max`` is the largest *algebraic* eigenvalue (``which="LA"``),
    stopped on the residual ``‖Hv − λv‖ ≤ tol·|λ_max|``: tol is its relative accuracy. ``lambda_min``
    is ``λ_max − μ`` with μ the largest eigenvalue of the positive semi-definite ``λ_max·I − H`` (the
    "SA" end of H, shifted so that ARPACK's stop ``≤ tol·|λ|`` does not demand the impossible when
    λ_min ≈ 0 at a minimum): accurate to ``tol·(λ_max − λ_min)``, and the costlier of the two there
    (~1000 products on a 64-64-10 ReLU net against ~20); ``lambda_min=False`` skips it (NaN).
    ``trace``: Hutchinson, the mean of ``vᵀHv`` over ``n_trace`` Rademacher vectors v, with its
    standard error (``n_trace=0`` skips it). ``max_iter``: ARPACK restarts per eigenvalue; ``rng``:
    a Generator or a seed for the start vectors and the Rademacher vectors.

    Raw sharpness is not invariant to reparametrisation (Dinh et al. 2017): to compare nets, use
    :func:`filter_normalized_sharpness`. Warns (``RuntimeWarning``) and gives NaN for an eigenvalue
    whose Lanczos run does not converge in ``max_iter`` restarts, and warns if ``vᵀHv`` along either
    eigenvector changes by more than 0.1 % of max|λ| with step r/10: a ReLU-type kink within r of
    θ, whose jump swamps the products (try a smaller r).
    """
    twin = _scratch(net, np.float64)
    theta = twin.params.copy()
    X, Y = _cast(twin, X, Y)
    return _spectrum(lambda v, step: _hvp(twin, theta, X, Y, cost, v, step), theta.size, "none",
                     tol, n_trace, lambda_min, r, max_iter, rng)


def filter_scales(net: Network) -> np.ndarray:
    """D ``(n_params,)``: each weight of a neuron's incoming row ``θ_i`` of every ``(n_out, n_in)``
    block gets ``‖θ_i‖``, each bias 0 (the scales of :func:`filter_normalized_direction`)."""
    holder = _scratch(net, np.float64)
    holder.params[...] = 0.0
    for w_scale, w in zip(holder.weights, net.weights):
        w_scale[...] = np.linalg.norm(w.astype(np.float64), axis=1)[:, None]
    return holder.params.copy()


def filter_normalized_sharpness(net: Network, X, Y, cost: str, tol: float = 1e-6, n_trace: int = 50,
                                lambda_min: bool = True, r: float = HVP_STEP, max_iter: int = 100,
                                rng=0) -> Sharpness:
    """Scale-aware sharpness: the spectrum of ``D H D``, D = :func:`filter_scales` (diagonal).

    ``uᵀ D H D u`` is the curvature along the filter-normalised direction ``d = D u`` (Li et al.
    2018: every neuron's incoming weights moved in proportion to their norm, biases fixed), so
    ``lambda_max`` here is the largest curvature per unit of *relative* change of the filters.
    Unlike :func:`sharpness` (the raw λ_max of H, changed at will by rescaling one ReLU layer by c
    and the next by 1/c, Dinh et al. 2017), it is unchanged by such a layer-wise rescaling (D
    scales as θ, H as 1/θ²), so it compares across networks. Not invariant to rescaling single
    neurons. Same method, arguments and warnings as :func:`sharpness`; ``normalization="filter"``.
    """
    twin = _scratch(net, np.float64)
    theta = twin.params.copy()
    scales = filter_scales(net)
    X, Y = _cast(twin, X, Y)
    return _spectrum(lambda v, step: scales * _hvp(twin, theta, X, Y, cost, scales * v, step), theta.size,
                     "filter", tol, n_trace, lambda_min, r, max_iter, rng)


def _spectrum(product, n: int, normalization: str, tol: float, n_trace: int, lambda_min: bool, r: float,
              max_iter: int, rng) -> Sharpness:
    """λ_max, λ_min (Lanczos) and the Hutchinson trace of the symmetric ``(n, n)`` operator
    ``product(v, r)``; see :func:`sharpness`."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    units = rng.choice([-1.0, 1.0], size=(n_trace, n)) / np.sqrt(n)  # Rademacher / √n: steps of r, as Lanczos's
    quadratic = [n * float(u @ product(u, r)) for u in units]
    trace = float(np.mean(quadratic)) if n_trace else float("nan")
    trace_se = float(np.std(quadratic, ddof=1) / np.sqrt(n_trace)) if n_trace > 1 else float("nan")
    top, v_top, n_top = _largest(lambda v: product(v, r), n, LANCZOS_VECTORS_MAX, tol, max_iter, rng)
    bottom, v_bottom, n_bottom = float("nan"), np.full(n, np.nan), 0
    if lambda_min and np.isfinite(top):
        shifted, v_bottom, n_bottom = _largest(lambda v: top * v - product(v, r), n, LANCZOS_VECTORS_MIN, tol,
                                               max_iter, rng)
        bottom = top - shifted
    scale = max(abs(top), abs(bottom)) if np.isfinite(bottom) else abs(top)
    for v, value in ((v_top, top), (v_bottom, bottom)):
        if not np.isfinite(value):
            continue
        finer = float(v @ product(v, r / 10))  # vᵀHv = λ at step r, to within the residual tol·|λ|
        if abs(finer - value) > KINK_CHECK_RTOL * scale:
            warnings.warn(f"vᵀHv along the eigenvector of {value:.6g} changes to {finer:.6g} with step r/10 "
                          f"(r={r:g}): a kink of the activation lies within r of θ; pass a smaller r",
                          RuntimeWarning, stacklevel=3)
    return Sharpness(top, bottom, trace, trace_se, n_top, n_bottom, n_trace, normalization)


def _largest(matvec, n: int, ncv: int, tol: float, max_iter: int, rng) -> tuple[float, np.ndarray, int]:
    """The largest algebraic eigenvalue of the symmetric ``(n, n)`` operator ``matvec`` (Lanczos
    basis of ``ncv`` vectors), its unit eigenvector ``(n,)`` and the products used; NaN (and a
    warning) when ARPACK does not converge in ``max_iter`` restarts."""
    calls = [0]

    def counted(v):
        calls[0] += 1
        return matvec(np.ravel(v))

    operator = LinearOperator((n, n), matvec=counted, dtype=np.float64)
    try:
        values, vectors = eigsh(operator, k=1, which="LA", ncv=min(n, ncv), tol=tol, maxiter=max_iter,
                                v0=rng.standard_normal(n))
    except ArpackNoConvergence:
        warnings.warn(f"Lanczos did not reach tol={tol} in {max_iter} restarts ({calls[0]} Hessian-vector "
                      "products): that eigenvalue is NaN", RuntimeWarning, stacklevel=4)
        return float("nan"), np.full(n, np.nan), calls[0]
    return float(values[0]), vectors[:, 0], calls[0]


def exact_hessian(net: Network, X, Y, cost: str, h: float = HESSIAN_STEP, max_params: int = 2000) -> np.ndarray:
    """The Hessian ``(n_params, n_params)`` at net.params, column j from central differences of
    the backprop gradient along the j-th unit vector (step ``h``), symmetrised ``(H + Hᵀ)/2``;
    float64, full batch, dropout off. For tiny networks (``ValueError`` above ``max_params``)."""
    if net.n_params > max_params:
        raise ValueError(f"exact_hessian is for tiny nets: {net.n_params} parameters > max_params={max_params}")
    twin = _scratch(net, np.float64)
    theta = twin.params.copy()
    X, Y = _cast(twin, X, Y)
    H = np.empty((theta.size, theta.size))
    for j in range(theta.size):
        e = np.zeros(theta.size)
        e[j] = 1.0
        H[:, j] = _hvp(twin, theta, X, Y, cost, e, h)
    return (H + H.T) / 2


# ---------------------------------------------------------------- plots


def _axes(ax, figsize=(5, 4)):
    return Figure(figsize=figsize, layout="constrained").add_subplot() if ax is None else ax


def plot_interpolation(frame: pd.DataFrame, ax=None, label: str | None = None):
    """``loss`` against ``alpha`` from :func:`interpolate`, with the ends α = 0, 1 marked. Returns the figure."""
    ax = _axes(ax)
    ax.plot(frame["alpha"], frame["loss"], label=label)
    for end in (0.0, 1.0):
        ax.axvline(end, color="0.6", linewidth=0.8, linestyle=":")
    ax.set_xlabel("α  (θ = (1-α)θa + αθb)")
    ax.set_ylabel("loss")
    if label:
        ax.legend()
    return ax.figure


def plot_landscape_1d(frame: pd.DataFrame, ax=None, label: str | None = None):
    """``loss`` against ``alpha`` from :func:`landscape_1d`. Returns the figure."""
    ax = _axes(ax)
    ax.plot(frame["alpha"], frame["loss"], label=label)
    ax.axvline(0.0, color="0.6", linewidth=0.8, linestyle=":")
    ax.set_xlabel("α  (θ* + α d)")
    ax.set_ylabel("loss")
    if label:
        ax.legend()
    return ax.figure


def plot_landscape_2d(frame: pd.DataFrame, ax=None, levels: int = 20, log: bool = False):
    """Contour plot of :func:`landscape_2d`'s ``loss`` over (``alpha``, ``beta``), θ* marked;
    ``log``: contour log10(loss). Returns the figure."""
    ax = _axes(ax, (5, 4.5))
    grid = frame.pivot(index="beta", columns="alpha", values="loss")
    z = np.log10(grid.to_numpy()) if log else grid.to_numpy()
    filled = ax.contourf(grid.columns.to_numpy(), grid.index.to_numpy(), z, levels=levels, cmap="viridis")
    ax.contour(grid.columns.to_numpy(), grid.index.to_numpy(), z, levels=levels, colors="k", linewidths=0.3)
    ax.plot([0.0], [0.0], marker="*", color="w", markersize=10)
    ax.figure.colorbar(filled, ax=ax, label="log10 loss" if log else "loss")
    ax.set_xlabel("α (d1)")
    ax.set_ylabel("β (d2)")
    return ax.figure


def plot_barrier_heatmap(matrix, ax=None, annotate: bool = True):
    """Heatmap of a :func:`pairwise_barriers` matrix (a frame, or an array ``(k, k)``),
    values written in the cells when ``annotate`` and k ≤ 12. Returns the figure."""
    ax = _axes(ax)
    labels = list(matrix.index) if isinstance(matrix, pd.DataFrame) else list(range(len(matrix)))
    values = np.asarray(matrix, np.float64)
    image = ax.imshow(values, cmap="magma")
    ax.figure.colorbar(image, ax=ax, label="barrier")
    ax.set_xticks(range(len(labels)), [str(x) for x in labels])
    ax.set_yticks(range(len(labels)), [str(x) for x in labels])
    if annotate and len(labels) <= 12:
        top = np.nanmax(values) if np.isfinite(values).any() else 0.0
        for (i, j), value in np.ndenumerate(values):
            ax.text(j, i, f"{value:.2g}", ha="center", va="center", fontsize="small",
                    color="k" if value > top / 2 else "w")
    ax.set_xlabel("minimum")
    ax.set_ylabel("minimum")
    return ax.figure
