"""analysis.gradient_noise against known answers: every batch enumerated, per-sample gradients in
closed form, the direct measurement against the sampling formula, and its standard error's coverage."""

from itertools import combinations

import numpy as np
import pytest

import nncore
from analysis.gradient_noise import (
    minibatch_gradient_variance,
    per_sample_variance,
    sampling_factor,
    sampling_variance,
)

COST = "cross_entropy"


def tiny(n: int, seed: int = 0):
    """A float64 tanh net 3-5-3 (softmax) away from its initial point, and ``n`` samples for it."""
    rng = np.random.default_rng(seed)
    net = nncore.Network([3, 5, 3], activation="tanh", dtype="float64", rng=rng)
    net.params += rng.normal(0.0, 0.3, net.n_params)
    X, Y = nncore.check_inputs(net, rng.normal(size=(n, 3)), rng.integers(0, 3, n))
    return net, X, Y


def full_gradient(net, X, Y, cost=COST):
    net.loss_and_grad(X, Y, cost)
    return net.grads.copy()


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5, 7])
def test_sampling_variance_is_the_mean_over_every_batch(batch_size):
    net, X, Y = tiny(7)
    g = full_gradient(net, X, Y)
    exact = np.mean([np.sum((full_gradient(net, X[list(c)], Y[list(c)]) - g) ** 2)
                     for c in combinations(range(7), batch_size)])
    assert sampling_variance(net, X, Y, COST, batch_size) == pytest.approx(exact, rel=1e-10, abs=1e-30)


def test_per_sample_gradients_in_closed_form():
    """One linear layer, squared error: C_i = (w·x_i + b − y_i)², so g_i = 2 r_i (x_i, 1)."""
    rng = np.random.default_rng(1)
    net = nncore.Network([4, 1], output="identity", dtype="float64", rng=rng)
    net.params[:] = rng.normal(size=5)
    X, Y = rng.normal(size=(30, 4)), rng.normal(size=(30, 1))
    residual = X @ net.weights[0][0] + net.biases[0][0] - Y[:, 0]
    grads = 2 * residual[:, None] * np.hstack([X, np.ones((30, 1))])  # (30, 5): dw then db, as net.params
    variance = np.mean(np.sum((grads - grads.mean(axis=0)) ** 2, axis=1))
    assert per_sample_variance(net, X, Y, "squared_error") == pytest.approx(variance, rel=1e-12)
    for b in (1, 4, 29, 30):
        expected = variance * (30 - b) / (b * 29)
        assert sampling_variance(net, X, Y, "squared_error", b) == pytest.approx(expected, rel=1e-12, abs=1e-30)


@pytest.mark.parametrize("batch_size", [1, 4, 7, 15])
def test_direct_measurement_agrees_with_the_formula(batch_size):
    net, X, Y = tiny(60)
    mean, stderr = minibatch_gradient_variance(net, X, Y, COST, batch_size, 3000, np.random.default_rng(2))
    theory = sampling_variance(net, X, Y, COST, batch_size)
    assert 0 < stderr < 0.05 * theory
    assert abs(mean - theory) < 4 * stderr


def test_two_standard_errors_cover_the_true_value_about_95_percent_of_the_time():
    """200 independent estimates of 40 batches each: ±2 SE covers the exact E‖g_B − g‖² ~95 % of the time
    (the former epoch-correlation formula covered nearly always: its SE was 1.3–2.7 times the real sd)."""
    net, X, Y = tiny(20)
    truth = sampling_variance(net, X, Y, COST, 4)
    rng = np.random.default_rng(7)
    means, stderrs = np.array([minibatch_gradient_variance(net, X, Y, COST, 4, 40, rng) for _ in range(200)]).T
    coverage = np.mean(np.abs(means - truth) <= 2 * stderrs)
    assert 0.88 <= coverage <= 0.99
    assert 0.85 < stderrs.mean() / means.std(ddof=1) < 1.15  # the SE is the estimate's actual spread


def test_full_batch_has_no_noise_and_one_sample_has_the_per_sample_variance():
    net, X, Y = tiny(20)
    mean, _ = minibatch_gradient_variance(net, X, Y, COST, 20, 5, np.random.default_rng(0))
    assert mean < 1e-28 * np.sum(full_gradient(net, X, Y) ** 2)
    assert sampling_variance(net, X, Y, COST, 20) == 0.0 == sampling_variance(net, X, Y, COST, 50)
    oversized, _ = minibatch_gradient_variance(net, X, Y, COST, 50, 3, np.random.default_rng(0))
    assert oversized < 1e-28 * np.sum(full_gradient(net, X, Y) ** 2)  # a batch beyond n is all of it, as in fit
    g = full_gradient(net, X, Y)
    by_hand = np.mean([np.sum((full_gradient(net, X[i:i + 1], Y[i:i + 1]) - g) ** 2) for i in range(20)])
    assert sampling_variance(net, X, Y, COST, 1) == pytest.approx(by_hand, rel=1e-12)
    assert np.isnan(minibatch_gradient_variance(net, X, Y, COST, 1, 1, np.random.default_rng(0))[1])  # one batch


def test_float32_net_is_measured_in_float64_and_left_alone():
    net, X, Y = tiny(12)
    net.params[:] = net.params.astype(np.float32)  # representable in both
    net32 = nncore.Network(net.sizes, net.activation, dtype="float32")
    net32.params[:] = net.params
    before, grads = net32.params.copy(), net32.grads.copy()
    X32, Y32 = nncore.check_inputs(net32, X, Y.argmax(axis=1))
    measured = minibatch_gradient_variance(net32, X32, Y32, COST, 4, 10, np.random.default_rng(5))
    assert measured == minibatch_gradient_variance(net, X32, Y32, COST, 4, 10, np.random.default_rng(5))
    assert sampling_variance(net32, X32, Y32, COST, 4) == sampling_variance(net, X32, Y32, COST, 4)
    assert np.array_equal(net32.params, before) and np.array_equal(net32.grads, grads)


def test_sampling_factor_and_bad_arguments():
    assert sampling_factor(10, 1) == 1.0 and sampling_factor(10, 10) == 0.0 == sampling_factor(10, 64)
    assert sampling_factor(1077, 32) == pytest.approx(1045 / (32 * 1076))
    net, X, Y = tiny(5)
    with pytest.raises(ValueError, match="batch_size"):
        minibatch_gradient_variance(net, X, Y, COST, 0, 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_batches"):
        minibatch_gradient_variance(net, X, Y, COST, 2, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="X and Y must be"):
        sampling_variance(net, X[:, :2], Y, COST, 2)
