"""Interpolation, barriers, directions, landscapes and sharpness on tiny networks."""

import warnings

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from analysis.minima import (
    BARRIER_VARIANTS,
    Sharpness,
    barrier,
    basins,
    exact_hessian,
    filter_normalized_direction,
    filter_normalized_sharpness,
    filter_scales,
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
from nncore import Network, encode_targets, fit, make_optimizer


@pytest.fixture(scope="module")
def trained():
    """A 2-3-2 tanh/softmax net trained near a minimum on 8 points, its data and its start."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(8, 2)), rng.integers(0, 2, 8)
    net = Network([2, 3, 2], "tanh", "softmax", dtype="float64", rng=1)
    start = net.params.copy()
    fit(net, X, y, optimizer=make_optimizer("adam", lr=0.05), epochs=300, batch_size=8, rng=rng)
    return net, X, encode_targets(net, y), start


def test_interpolation_ends_are_the_end_losses_and_the_net_is_untouched(trained):
    net, X, Y, start = trained
    before = net.params.copy()
    frame = interpolate(net, start, net.params, X, Y, "cross_entropy")
    assert len(frame) == 41 and frame["alpha"].min() == -0.5 and frame["alpha"].max() == 1.5
    loss = frame.set_index("alpha")["loss"]
    assert loss[1.0] == pytest.approx(net.loss(X, Y, "cross_entropy"), rel=1e-12)
    net.params[...] = start
    assert loss[0.0] == pytest.approx(net.loss(X, Y, "cross_entropy"), rel=1e-12)
    net.params[...] = before
    interpolate(net, start, before, X, Y, "cross_entropy", alphas=[0.3])
    np.testing.assert_array_equal(net.params, before)
    assert isinstance(plot_interpolation(frame), Figure)


def test_barrier_between_a_minimum_and_itself_is_zero(trained):
    net, X, Y, _ = trained
    frame = interpolate(net, net.params, net.params, X, Y, "cross_entropy")
    assert all(barrier(frame, variant=variant) == 0.0 for variant in BARRIER_VARIANTS)
    matrix = pairwise_barriers(net, [net.params, net.params.copy()], X, Y, "cross_entropy")
    assert np.all(matrix.to_numpy() == 0.0)


def test_barrier_of_a_constructed_bump():
    frame = pd.DataFrame({"alpha": [-0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5],
                          "loss": [9.0, 0.2, 1.0, 3.4, 1.2, 0.6, 7.0]})  # outside [0, 1] is ignored
    assert barrier(frame) == pytest.approx(3.4 - 0.6) == barrier(frame, variant="max_end")  # the default
    assert barrier(frame, variant="frankle2020") == pytest.approx(3.4 - 0.4)
    # L − (0.2 + 0.4α) at α = 0, ¼, ½, ¾, 1: 0, 0.7, 3.0, 0.7, 0
    assert barrier(frame, variant="entezari2022") == pytest.approx(3.0)
    inside = [0.2, 1.0, 3.4, 1.2, 0.6]
    assert barrier(inside) == pytest.approx(2.8) and barrier(inside, variant="frankle2020") == pytest.approx(3.0)
    assert barrier(inside, variant="entezari2022") == pytest.approx(3.0)
    assert barrier(inside[1:-1], ends=(0.2, 0.6)) == pytest.approx(2.8)
    with pytest.raises(ValueError, match="alpha=0"):
        barrier(frame[frame["alpha"] != 0.0])
    with pytest.raises(ValueError, match="variant"):
        barrier(inside, variant="max")


def test_barrier_variants_differ_by_half_the_end_gap():
    """Between unequal minima on a straight rise the max and Entezari barriers are 0, Frankle's |L_a − L_b|/2;
    with a peak near the higher end Entezari's lies between the other two."""
    straight = [1.0, 1.5, 2.0, 2.5, 3.0]  # α = 0, ¼, ½, ¾, 1
    assert barrier(straight) == 0.0 and barrier(straight, variant="entezari2022") == 0.0
    assert barrier(straight, variant="frankle2020") == pytest.approx(1.0)
    late_peak = [1.0, 1.2, 1.5, 3.25, 3.0]  # above the chord by 0, −0.3, −0.5, 0.75, 0
    assert barrier(late_peak) == pytest.approx(0.25)
    assert barrier(late_peak, variant="entezari2022") == pytest.approx(0.75)
    assert barrier(late_peak, variant="frankle2020") == pytest.approx(1.25)
    assert barrier(late_peak[::-1], variant="entezari2022") == pytest.approx(0.75)  # symmetric in the ends


def test_pairwise_barriers_match_the_single_barrier(trained):
    net, X, Y, start = trained
    matrix = pairwise_barriers(net, [start, net.params, -net.params], X, Y, "cross_entropy", n_alphas=11)
    assert matrix.shape == (3, 3) and np.allclose(matrix, matrix.T) and np.all(np.diag(matrix) == 0)
    path = interpolate(net, start, -net.params, X, Y, "cross_entropy", alphas=np.linspace(0, 1, 11))
    assert matrix.loc[0, 2] == pytest.approx(barrier(path), rel=1e-12)
    chord = pairwise_barriers(net, [start, -net.params], X, Y, "cross_entropy", n_alphas=11, variant="entezari2022")
    assert chord.loc[0, 1] == pytest.approx(barrier(path, variant="entezari2022"), rel=1e-12)
    assert isinstance(plot_barrier_heatmap(matrix), Figure)


def test_basins_are_connected_components():
    B = np.array([[0, .01, 5, 5], [.01, 0, 5, 5], [5, 5, 0, .02], [5, 5, .02, 0]])
    np.testing.assert_array_equal(basins(B, tol=0.05), [0, 0, 1, 1])
    np.testing.assert_array_equal(basins(pd.DataFrame(B), tol=10), [0, 0, 0, 0])  # one basin
    chain = np.array([[0, .01, 5], [.01, 0, .01], [5, .01, 0]])  # 0–1–2 joined through 1
    np.testing.assert_array_equal(basins(chain, tol=0.05), [0, 0, 0])
    np.testing.assert_array_equal(basins(np.array([[0, np.nan], [np.nan, 0]]), tol=1), [0, 1])


def test_filter_normalized_direction():
    net = Network([3, 5, 4, 2], "relu", dtype="float32", rng=2)
    d = filter_normalized_direction(net, np.random.default_rng(7))
    assert d.shape == (net.n_params,) and d.dtype == np.float64
    view = Network([3, 5, 4, 2], "relu", dtype="float64", rng=0)
    view.params[...] = d  # the network's own views cut d into layers
    for w_d, w, b_d in zip(view.weights, net.weights, view.biases):
        np.testing.assert_allclose(np.linalg.norm(w_d, axis=1), np.linalg.norm(w.astype(float), axis=1), rtol=1e-6)
        assert np.all(b_d == 0)
    np.testing.assert_array_equal(d, filter_normalized_direction(net, 7))
    assert not np.array_equal(d, filter_normalized_direction(net, 8))


def test_landscapes_at_zero_are_the_loss_at_the_minimum(trained):
    net, X, Y, _ = trained
    at_min = net.loss(X, Y, "cross_entropy")
    d1, d2 = filter_normalized_direction(net, 0), filter_normalized_direction(net, 1)
    one = landscape_1d(net, X, Y, "cross_entropy", d1)
    assert len(one) == 41 and one.set_index("alpha").loc[0.0, "loss"] == pytest.approx(at_min, rel=1e-12)
    two = landscape_2d(net, X, Y, "cross_entropy", d1, d2, n=7)
    assert len(two) == 49
    assert two.set_index(["alpha", "beta"]).loc[(0.0, 0.0), "loss"] == pytest.approx(at_min, rel=1e-12)
    assert isinstance(plot_landscape_1d(one), Figure) and isinstance(plot_landscape_2d(two), Figure)


def test_exact_hessian_and_sharpness_of_a_linear_model():
    """Squared error of ``Wx + b``: H = 2/N Σ x̃x̃ᵀ per output row (x̃ = [x, 1]), whatever θ."""
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    net = Network([3, 2], output="identity", dtype="float32", rng=0)
    Xt = np.hstack([X, np.ones((6, 1))])
    block = 2 / 6 * Xt.T @ Xt  # (4, 4) over (w_j1, w_j2, w_j3, b_j)
    H = np.zeros((8, 8))
    for j in range(2):  # layout: W row-major (2, 3), then b (2,)
        idx = [3 * j, 3 * j + 1, 3 * j + 2, 6 + j]
        H[np.ix_(idx, idx)] = block
    np.testing.assert_allclose(exact_hessian(net, X, Y, "squared_error"), H, atol=1e-8)
    result = sharpness(net, X, Y, "squared_error")  # a float32 net, measured in float64
    assert result.lambda_max == pytest.approx(np.linalg.eigvalsh(block)[-1], rel=1e-6)
    assert result.lambda_min == pytest.approx(np.linalg.eigvalsh(block)[0], rel=1e-6)


def loss_hessian(net: Network, X, Y, cost: str, h: float = 1e-4) -> np.ndarray:
    """An independent Hessian ``(n, n)`` from second differences of the loss alone (no backprop)."""
    theta, n = net.params.copy(), net.n_params
    twin = net.copy()

    def loss(*steps):
        twin.params[...] = theta
        for j, sign in steps:
            twin.params[j] += sign * h
        return twin.loss(X, Y, cost)

    H = np.empty((n, n))
    for i in range(n):
        for j in range(i, n):
            H[i, j] = H[j, i] = (loss((i, 1), (j, 1)) - loss((i, 1), (j, -1)) - loss((i, -1), (j, 1))
                                 + loss((i, -1), (j, -1))) / (4 * h * h)
    return H


@pytest.fixture(scope="module")
def points():
    """A 4-5-3 tanh/softmax net on 30 points: trained to a minimum, and at an indefinite point where
    |λ_min| > λ_max (power iteration converged to λ_min there); each with its exact Hessian."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)
    trained = Network([4, 5, 3], "tanh", "softmax", dtype="float64", rng=1)
    fit(trained, X, y, optimizer=make_optimizer("adam", lr=0.05), epochs=500, batch_size=30, rng=rng)
    indefinite = Network([4, 5, 3], "tanh", "softmax", dtype="float64", rng=6)
    indefinite.params[...] = np.random.default_rng(106).normal(0.0, 1.5, indefinite.n_params)
    Y = encode_targets(trained, y)
    return {name: (net, X, Y, exact_hessian(net, X, Y, "cross_entropy"))
            for name, net in (("minimum", trained), ("indefinite", indefinite))}


@pytest.mark.parametrize("point", ["minimum", "indefinite"])
def test_exact_hessian_agrees_with_second_differences_of_the_loss(points, point):
    net, X, Y, H = points[point]
    independent = loss_hessian(net, X, Y, "cross_entropy")
    assert np.max(np.abs(H - independent)) < 1e-6 * np.max(np.abs(H))


@pytest.mark.parametrize("point", ["minimum", "indefinite"])
def test_sharpness_matches_the_exact_spectrum(points, point):
    net, X, Y, H = points[point]
    eigenvalues = np.linalg.eigvalsh(H)
    before = net.params.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no kink or convergence warning on a smooth net
        result = sharpness(net, X, Y, "cross_entropy", n_trace=200)
    assert isinstance(result, Sharpness) and result.normalization == "none"
    assert result.lambda_max == pytest.approx(eigenvalues[-1], rel=1e-6)
    if point == "indefinite":
        assert -eigenvalues[0] > 1.2 * eigenvalues[-1] > 0  # the largest |λ| is the negative one
        assert result.lambda_min == pytest.approx(eigenvalues[0], rel=1e-6)
    else:  # λ_min ≈ 0 at a minimum: accurate to tol·(λ_max − λ_min)
        assert abs(eigenvalues[0]) < 1e-2 * eigenvalues[-1]
        assert result.lambda_min == pytest.approx(eigenvalues[0], abs=1e-6 * eigenvalues[-1])
    # Hutchinson over Rademacher v: Var(vᵀHv) = 2 Σ_{i≠j} H_ij², so the SE is known exactly
    exact_se = np.sqrt(2 * (np.sum(H ** 2) - np.sum(np.diag(H) ** 2)) / 200)
    assert result.trace_se == pytest.approx(exact_se, rel=0.2) and result.n_trace == 200
    assert abs(result.trace - np.trace(H)) < 4 * result.trace_se
    assert 0 < result.n_hvp_max < 200 and 0 < result.n_hvp_min < 400
    np.testing.assert_array_equal(net.params, before)


def test_sharpness_ignores_dropout_and_is_reproducible(points):
    net, X, Y, _ = points["minimum"]
    with_dropout = Network([4, 5, 3], "tanh", "softmax", dropout=0.5, dtype="float64")
    with_dropout.params[...] = net.params  # dropout is off when measuring: the same Hessian
    assert sharpness(with_dropout, X, Y, "cross_entropy", rng=3) == sharpness(net, X, Y, "cross_entropy", rng=3)
    only_top = sharpness(net, X, Y, "cross_entropy", n_trace=0, lambda_min=False)
    assert np.isnan(only_top.trace) and np.isnan(only_top.trace_se) and np.isnan(only_top.lambda_min)
    assert only_top.lambda_max == pytest.approx(sharpness(net, X, Y, "cross_entropy").lambda_max, rel=1e-8)
    assert only_top.n_hvp_min == 0
    wider = Network([10, 20, 10], "tanh", "softmax", dtype="float64", rng=0)  # 430 parameters, 20 Lanczos vectors
    rng = np.random.default_rng(0)
    X10, y10 = rng.normal(size=(40, 10)), rng.integers(0, 10, 40)
    with pytest.warns(RuntimeWarning, match="Lanczos did not reach"):
        failed = sharpness(wider, X10, encode_targets(wider, y10), "cross_entropy", tol=1e-15, max_iter=1, n_trace=0)
    assert np.isnan(failed.lambda_max) and np.isnan(failed.lambda_min) and failed.n_hvp_max > 0


def test_sharpness_warns_about_a_relu_kink_at_theta():
    """A hidden pre-activation exactly 0 on a sample: the gradient jumps across it, Hv does not exist."""
    net = Network([1, 1, 1], "relu", "identity", dtype="float64", rng=0)
    net.params[...] = [1.0, -1.0, 2.0, 0.0]  # w1, b1, w2, b2: z = x - 1 = 0 at x = 1
    X, Y = np.array([[1.0], [2.0]]), np.array([[1.0], [0.5]])
    with pytest.warns(RuntimeWarning, match="kink"):
        sharpness(net, X, Y, "squared_error")


def test_filter_normalized_sharpness_survives_a_relu_rescaling():
    """Scaling layer 1 (W, b) of a ReLU net by c and W of layer 2 by 1/c keeps the function (Dinh et al.
    2017): the raw λ_max moves, the filter-normalised one does not, and it is the top eigenvalue of DHD."""
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(25, 4)), rng.integers(0, 3, 25)
    net = Network([4, 6, 5, 3], "relu", "softmax", dtype="float64", rng=2)
    fit(net, X, y, optimizer=make_optimizer("adam", lr=0.02), epochs=200, batch_size=25, rng=rng)
    Y = encode_targets(net, y)
    scaled = net.copy()
    scaled.weights[0][...] *= 4.0
    scaled.biases[0][...] *= 4.0
    scaled.weights[1][...] /= 4.0
    assert scaled.loss(X, Y, "cross_entropy") == pytest.approx(net.loss(X, Y, "cross_entropy"), rel=1e-12)
    raw, raw_scaled = sharpness(net, X, Y, "cross_entropy"), sharpness(scaled, X, Y, "cross_entropy")
    assert abs(raw_scaled.lambda_max / raw.lambda_max - 1) > 0.5
    normalized = filter_normalized_sharpness(net, X, Y, "cross_entropy")
    assert normalized.normalization == "filter"
    assert filter_normalized_sharpness(scaled, X, Y, "cross_entropy").lambda_max == pytest.approx(
        normalized.lambda_max, rel=1e-6)
    D = filter_scales(net)
    assert np.all(D[-3:] == 0) and np.all(D[:4] == np.linalg.norm(net.weights[0][0]))  # biases 0; row 0 of W1
    exact = np.linalg.eigvalsh(D[:, None] * exact_hessian(net, X, Y, "cross_entropy") * D[None, :])
    assert normalized.lambda_max == pytest.approx(exact[-1], rel=1e-6)
