"""Backpropagation against central differences, initialisers, dropout, save and load."""

import itertools

import numpy as np
import pytest

from nncore import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS, Network, encode_targets

OUTPUT_COSTS = [(o, c) for o in OUTPUT_ACTIVATIONS for c in ("squared_error", "cross_entropy")
                if not (o == "identity" and c == "cross_entropy")]


def relative_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-12)


def central_differences(net, X, Y, cost, masks, h):
    """(C(θ+h) - C(θ-h)) / 2h for each parameter in turn."""
    grad = np.empty_like(net.params)
    for i in range(net.params.size):
        keep = net.params[i]
        net.params[i] = keep + h
        plus = net.loss(X, Y, cost, masks)
        net.params[i] = keep - h
        minus = net.loss(X, Y, cost, masks)
        net.params[i] = keep
        grad[i] = (plus - minus) / (2 * h)
    return grad


def numeric_gradient(net, X, Y, cost, masks, h=1e-3):
    """Central differences, Richardson-extrapolated: the h² error term cancels, so a larger h
    keeps float64 rounding (~1e-16·C/h) far below 1e-6 of the gradient."""
    fine = central_differences(net, X, Y, cost, masks, h / 2)
    return (4 * fine - central_differences(net, X, Y, cost, masks, h)) / 3


def problem(output: str, rng):
    """A small batch and targets suited to the output: one-hot, probabilities, or reals."""
    X = rng.normal(size=(7, 4))
    if output == "softmax":
        y = rng.integers(0, 3, size=7)
    elif output == "sigmoid":
        y = rng.uniform(0.05, 0.95, size=(7, 3))  # soft targets exercise every term
    else:
        y = rng.normal(size=(7, 3))
    return X, y


@pytest.mark.parametrize("activation", sorted(HIDDEN_ACTIVATIONS))
@pytest.mark.parametrize("output,cost", OUTPUT_COSTS)
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_backprop_matches_central_differences(activation, output, cost, dropout):
    rng = np.random.default_rng(1)
    net = Network([4, 5, 6, 3], activation, output, dropout=dropout, dtype="float64", rng=rng)
    net.params += rng.normal(scale=0.1, size=net.params.size)  # biases away from 0, ReLU kinks off the data
    X, y = problem(output, rng)
    Y = encode_targets(net, y) if output == "softmax" else y
    masks = net.draw_masks(len(X), rng)  # fixed mask for both passes; None without dropout
    net.loss_and_grad(X, Y, cost, masks)
    analytic = net.grads.copy()
    numeric = numeric_gradient(net, X, Y, cost, masks)
    scale = np.abs(analytic).max()
    assert scale > 1e-3
    # REFERENCE.md's relative test on every component above 1e-4 of the largest; the few smaller
    # ones (leaky ReLU's 0.01 slope makes some) are below what float64 differences resolve
    # relatively, and must agree to 1e-9 of the largest instead.
    tried = np.abs(analytic) > 1e-4 * scale
    assert tried.mean() > 0.6  # dropped and dead ReLU units have exact zeros
    assert relative_error(analytic[tried], numeric[tried]).max() < 1e-6
    assert np.abs(analytic - numeric)[~tried].max(initial=0.0) < 1e-9 * scale


def test_loss_and_grad_returns_the_cost_the_loss_gives():
    rng = np.random.default_rng(0)
    net = Network([4, 6, 3], "tanh", "softmax", dtype="float64", rng=rng)
    X, y = problem("softmax", rng)
    Y = encode_targets(net, y)
    assert net.loss_and_grad(X, Y, "cross_entropy") == pytest.approx(net.loss(X, Y, "cross_entropy"), rel=1e-14)


def test_squared_error_is_the_slides_cost():
    """C = mean over samples of Σ_j (a_j - y_j)² with a = the network's output."""
    rng = np.random.default_rng(0)
    net = Network([2, 3, 2], "sigmoid", "sigmoid", dtype="float64", rng=rng)
    X, Y = rng.normal(size=(5, 2)), rng.uniform(size=(5, 2))
    a = X
    for w, b in zip(net.weights, net.biases):
        a = 1.0 / (1.0 + np.exp(-(a @ w.T + b)))  # σ(W a + b), row by row
    assert net.loss(X, Y, "squared_error") == pytest.approx(np.mean(np.sum((a - Y) ** 2, axis=1)), rel=1e-13)


def test_cross_entropy_is_finite_for_saturated_outputs():
    net = Network([1, 2], output="softmax", dtype="float64")
    net.weights[0][...] = [[1e4], [-1e4]]
    Y = np.array([[0.0, 1.0]])
    assert net.loss(np.array([[1.0]]), Y, "cross_entropy") == pytest.approx(2e4)
    sig = Network([1, 1], output="sigmoid", dtype="float64")
    sig.weights[0][...] = 1e4
    assert sig.loss(np.array([[1.0]]), np.array([[0.0]]), "cross_entropy") == pytest.approx(1e4)


def test_initialisers_follow_their_distributions():
    rng = np.random.default_rng(0)
    glorot = Network([300, 200, 10], "tanh", dtype="float64", rng=rng)
    limit = np.sqrt(6 / 500)
    w = glorot.weights[0]
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    assert w.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)
    he = Network([300, 200, 10], "relu", dtype="float64", rng=rng)
    assert he.init == "he_normal"
    assert he.weights[0].std() == pytest.approx(np.sqrt(2 / 300), rel=0.02)
    assert all(np.all(b == 0) for b in glorot.biases + he.biases)


def test_layer_views_share_the_flat_vector():
    net = Network([3, 4, 2], rng=0)
    assert net.n_params == 3 * 4 + 4 + 4 * 2 + 2
    net.weights[1][0, 0] = 42.0
    assert 42.0 in net.params
    assert all(np.shares_memory(g, net.grads) for g in net.weight_grads + net.bias_grads)


def test_inverted_dropout_keeps_the_expected_activation():
    net = Network([4, 1000, 2], dropout=0.4, rng=0)
    masks = net.draw_masks(200, np.random.default_rng(1))
    assert set(np.unique(masks[0])) == {0.0, np.float32(1 / 0.6)}
    assert masks[0].mean() == pytest.approx(1.0, abs=0.01)
    assert Network([4, 8, 2], dropout=0.0).draw_masks(5, np.random.default_rng(0)) is None


def test_evaluation_runs_without_dropout():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(9, 4))
    with_dropout = Network([4, 16, 3], dropout=0.5, dtype="float64", rng=3)
    without = Network([4, 16, 3], dropout=0.0, dtype="float64", rng=3)
    np.testing.assert_array_equal(with_dropout.predict_output(X), without.predict_output(X))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_and_load_round_trip(tmp_path, dtype):
    net = Network([5, 7, 3], "leaky_relu", "softmax", dropout=0.2, dtype=dtype, rng=4)
    net.save(tmp_path / "w.npz")
    back = Network.load(tmp_path / "w.npz")
    assert (back.sizes, back.activation, back.output, back.dropout, back.dtype) == \
        (net.sizes, net.activation, net.output, net.dropout, net.dtype)
    np.testing.assert_array_equal(back.params, net.params)
    with np.load(tmp_path / "w.npz", allow_pickle=False) as f:
        assert f["params"].dtype == np.dtype(dtype)


def test_eval_in_chunks_equals_one_pass():
    rng = np.random.default_rng(0)
    net = Network([3, 5, 2], dtype="float64", rng=1)
    X = rng.normal(size=(5000, 3))  # more rows than one evaluation chunk
    one_pass = X @ net.weights[0].T + net.biases[0]
    one_pass = np.maximum(one_pass, 0) @ net.weights[1].T + net.biases[1]
    one_pass = np.exp(one_pass - one_pass.max(1, keepdims=True))
    np.testing.assert_allclose(net.predict_output(X), one_pass / one_pass.sum(1, keepdims=True), rtol=1e-12)


@pytest.mark.parametrize("kwargs,message", [
    (dict(sizes=[]), "no layers"),
    (dict(sizes=[4]), "no layers"),
    (dict(sizes=[4, 0, 2]), "sizes[1]"),
    (dict(sizes=[4, 3, 2], activation="swish"), "'swish'"),
    (dict(sizes=[4, 3, 2], output="relu"), "'relu'"),
    (dict(sizes=[4, 3, 2], dropout=1.0), "dropout must be in [0, 1), got 1.0"),
    (dict(sizes=[4, 3, 2], dropout=-0.1), "got -0.1"),
    (dict(sizes=[4, 3, 2], init="zeros"), "'zeros'"),
    (dict(sizes=[4, 3, 2], dtype="float16"), "float16"),
])
def test_bad_architecture_is_refused(kwargs, message):
    with pytest.raises(ValueError) as err:
        Network(**kwargs)
    assert message in str(err.value)


def test_cross_entropy_needs_probabilities():
    net = Network([2, 3, 1], output="identity")
    with pytest.raises(ValueError, match="cross_entropy.*identity"):
        net.loss(np.zeros((2, 2)), np.zeros((2, 1)), "cross_entropy")
    with pytest.raises(ValueError, match="unknown cost 'hinge'"):
        net.loss(np.zeros((2, 2)), np.zeros((2, 1)), "hinge")


def test_every_combination_is_covered():
    combos = set(itertools.product(HIDDEN_ACTIVATIONS, OUTPUT_COSTS))
    assert len(combos) == 4 * 5


def test_layer_activations_are_each_layers_output_without_dropout():
    net = Network([4, 5, 3, 2], "tanh", "softmax", dropout=0.5, dtype="float64", rng=np.random.default_rng(0))
    X = np.random.default_rng(1).normal(size=(7, 4))
    hidden1, hidden2, out = net.layer_activations(X)
    expected1 = np.tanh(X @ net.weights[0].T + net.biases[0])
    np.testing.assert_allclose(hidden1, expected1, rtol=1e-12)
    np.testing.assert_allclose(hidden2, np.tanh(expected1 @ net.weights[1].T + net.biases[1]), rtol=1e-12)
    np.testing.assert_array_equal(out, net.predict_output(X))
    assert [a.shape for a in (hidden1, hidden2, out)] == [(7, 5), (7, 3), (7, 2)]
