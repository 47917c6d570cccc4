"""Interpolation, barriers, directions, landscapes and sharpness on tiny networks."""

import warnings

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from analysis.minima import (
    barrier,
    basins,
    exact_hessian,
    filter_normalized_direction,
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
    assert barrier(frame) == 0.0 and barrier(frame, variant="mean") == 0.0
    matrix = pairwise_barriers(net, [net.params, net.params.copy()], X, Y, "cross_entropy")
    assert np.all(matrix.to_numpy() == 0.0)


def test_barrier_of_a_constructed_bump():
    frame = pd.DataFrame({"alpha": [-0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5],
                          "loss": [9.0, 0.2, 1.0, 3.4, 1.2, 0.6, 7.0]})  # outside [0, 1] is ignored
    assert barrier(frame) == pytest.approx(3.4 - 0.6)
    assert barrier(frame, variant="mean") == pytest.approx(3.4 - 0.4)
    inside = [0.2, 1.0, 3.4, 1.2, 0.6]
    assert barrier(inside) == pytest.approx(2.8) and barrier(inside, variant="mean") == pytest.approx(3.0)
    assert barrier(inside[1:-1], ends=(0.2, 0.6)) == pytest.approx(2.8)
    with pytest.raises(ValueError, match="alpha=0"):
        barrier(frame[frame["alpha"] != 0.0])
    with pytest.raises(ValueError, match="variant"):
        barrier(inside, variant="min")


def test_pairwise_barriers_match_the_single_barrier(trained):
    net, X, Y, start = trained
    matrix = pairwise_barriers(net, [start, net.params, -net.params], X, Y, "cross_entropy", n_alphas=11)
    assert matrix.shape == (3, 3) and np.allclose(matrix, matrix.T) and np.all(np.diag(matrix) == 0)
    path = interpolate(net, start, -net.params, X, Y, "cross_entropy", alphas=np.linspace(0, 1, 11))
    assert matrix.loc[0, 2] == pytest.approx(barrier(path), rel=1e-12)
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
    top, _ = sharpness(net, X, Y, "squared_error", tol=1e-10, max_iter=1000)
    assert top == pytest.approx(np.linalg.eigvalsh(block)[-1], rel=1e-6)


def test_sharpness_matches_the_exact_hessian_of_a_tiny_net(trained):
    net, X, Y, _ = trained
    before = net.params.copy()
    eigenvalues = np.linalg.eigvalsh(exact_hessian(net, X, Y, "cross_entropy"))
    expected = eigenvalues[np.argmax(np.abs(eigenvalues))]
    assert expected > 0  # near a minimum the largest |λ| is the top positive one
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no kink warning on a smooth net
        top, iterations = sharpness(net, X, Y, "cross_entropy", tol=1e-8, max_iter=1000, rng=0)
    assert top == pytest.approx(expected, rel=1e-4) and iterations < 1000
    assert sharpness(net, X, Y, "cross_entropy", rng=5)[0] == pytest.approx(expected, rel=1e-2)  # default tol
    with_dropout = Network([2, 3, 2], "tanh", "softmax", dropout=0.5, dtype="float64")
    with_dropout.params[...] = net.params  # dropout is off when measuring: the same Hessian
    assert sharpness(with_dropout, X, Y, "cross_entropy", tol=1e-8, max_iter=1000)[0] == top
    np.testing.assert_array_equal(net.params, before)
    with pytest.warns(RuntimeWarning, match="power iteration"):
        sharpness(net, X, Y, "cross_entropy", tol=0.0, max_iter=3)


def test_sharpness_warns_about_a_relu_kink_at_theta():
    """A hidden pre-activation exactly 0 on a sample: the gradient jumps across it, Hv does not exist."""
    net = Network([1, 1, 1], "relu", "identity", dtype="float64", rng=0)
    net.params[...] = [1.0, -1.0, 2.0, 0.0]  # w1, b1, w2, b2: z = x - 1 = 0 at x = 1
    X, Y = np.array([[1.0], [2.0]]), np.array([[1.0], [0.5]])
    with pytest.warns(RuntimeWarning, match="kink"):
        sharpness(net, X, Y, "squared_error")
