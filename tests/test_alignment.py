"""analysis/alignment.py: permutations leave the function alone; weight matching finds them."""

import time

import numpy as np
import pytest

from analysis import align
from analysis.alignment import aligned_pairwise_barriers, check_perms, permute
from analysis.minima import pairwise_barriers
from nncore import Network, encode_targets


def net_of(sizes, seed, activation="tanh", dtype="float64"):
    net = Network(sizes, activation=activation, dtype=dtype, rng=seed)
    rng = np.random.default_rng(seed + 1000)
    for b in net.biases:
        b[...] = rng.normal(0, 0.3, b.shape)  # biases matter to the function and to the matching
    return net


def shuffled(net, seed, noise=1e-3):
    """``net`` with every hidden layer's units shuffled, then every parameter moved by N(0, noise²);
    and the shuffles ``σ`` (unit i of the copy is unit σ[i] of ``net``)."""
    rng = np.random.default_rng(seed)
    sigmas = [rng.permutation(width) for width in net.sizes[1:-1]]
    out = permute(net, sigmas)
    out.params += rng.normal(0, noise, out.n_params)
    return out, sigmas


@pytest.mark.parametrize("sizes", [(5, 16, 3), (5, 12, 9, 3), (4, 7, 6, 5, 2)])
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "leaky_relu"])
def test_the_aligned_net_computes_the_same_function(sizes, activation):
    a, b = net_of(sizes, 0, activation), net_of(sizes, 1, activation)
    found = align(a, b)
    X = np.random.default_rng(2).normal(size=(200, sizes[0]))
    before, after = b.layer_activations(X), found.net.layer_activations(X)
    for layer, (x, y, perm) in enumerate(zip(before[:-1], after[:-1], found.perms)):
        assert np.max(np.abs(x[:, perm] - y)) <= 1e-12, layer  # every hidden unit, moved to its new place
    assert np.max(np.abs(before[-1] - after[-1])) <= 1e-12  # and the output, unmoved
    assert not np.array_equal(found.net.params, b.params)  # it did move units
    assert np.array_equal(b.params, net_of(sizes, 1, activation).params)  # and left net_b alone


@pytest.mark.parametrize("sizes", [(6, 32, 4), (6, 24, 20, 4), (6, 64, 48, 4)])
def test_a_shuffled_perturbed_copy_is_put_back(sizes):
    a = net_of(sizes, 3, "relu")
    b, sigmas = shuffled(a, 4)
    found = align(a, b)
    for perm, sigma in zip(found.perms, sigmas):
        assert np.array_equal(perm, np.argsort(sigma))  # the inverse shuffle, exactly
        assert perm.dtype == np.int64
    assert np.max(np.abs(found.net.params - a.params)) < 1e-2  # back to a, up to the noise
    if len(sizes) == 3:
        assert found.sweeps == 1  # one hidden layer: one exact assignment


def test_the_objective_never_decreases():
    a, b = net_of((8, 40, 30, 20, 3), 5), net_of((8, 40, 30, 20, 3), 6)
    found = align(a, b, rng=1)
    assert len(found.objectives) == found.sweeps + 1 and found.sweeps >= 2
    assert np.all(np.diff(found.objectives) >= 0) and found.objectives[-1] > found.objectives[0]
    assert found.objective == pytest.approx(float(a.params @ found.net.params), rel=1e-12)
    # it is the distance that falls: ‖θa − π(θb)‖² = ‖θa‖² + ‖θb‖² − 2⟨θa, π(θb)⟩
    assert np.linalg.norm(a.params - found.net.params) < np.linalg.norm(a.params - b.params)
    # a cap of one sweep stops there, no worse than where it started
    once = align(a, b, rng=1, max_sweeps=1)
    assert once.sweeps == 1 and once.objective >= once.objectives[0]


def test_aligning_a_net_to_itself_changes_nothing():
    a = net_of((5, 10, 10, 3), 7)
    found = align(a, a.copy())
    assert all(np.array_equal(p, np.arange(10)) for p in found.perms)
    assert np.array_equal(found.net.params, a.params)


def test_float32_nets_align_and_stay_float32():
    a = net_of((5, 16, 12, 3), 8, dtype="float32")
    b, sigmas = shuffled(a, 9)
    found = align(a, b)
    assert found.net.dtype == np.float32
    assert all(np.array_equal(p, np.argsort(s)) for p, s in zip(found.perms, sigmas))


@pytest.mark.slow
def test_a_2x512_alignment_takes_well_under_a_second():
    a, b = net_of((40, 512, 512, 10), 10, "relu"), net_of((40, 512, 512, 10), 11, "relu")
    times, found = [], None
    for _ in range(3):  # the best of 3: a busy shared machine slows one run, not all
        start = time.perf_counter()
        found = align(a, b)
        times.append(time.perf_counter() - start)
    print(f"2x512 weight matching: {min(times):.3f} s best of 3, {found.sweeps} sweeps")
    assert min(times) < 2.0


def test_different_architectures_are_refused():
    a = net_of((5, 10, 3), 0)
    for other, what in [(net_of((5, 11, 3), 0), "sizes"), (net_of((5, 10, 10, 3), 0), "sizes"),
                        (net_of((5, 10, 3), 0, "relu"), "activation")]:
        with pytest.raises(ValueError, match=f"different architectures: net_a.{what}"):
            align(a, other)
    with pytest.raises(ValueError, match="two nncore.Network"):
        align(a, a.params)
    with pytest.raises(ValueError, match="max_sweeps"):
        align(a, a, max_sweeps=0)


def test_bad_permutations_are_refused():
    net = net_of((5, 4, 3, 2), 0)
    for perms, match in [([np.arange(4)], "one permutation per hidden layer"),
                         ([np.arange(4), np.array([0, 0, 1])], r"perms\[1\] must be a permutation of range\(3\)"),
                         ([np.arange(4.0), np.arange(3)], r"perms\[0\]"),
                         ([np.arange(5), np.arange(3)], r"perms\[0\]")]:
        with pytest.raises(ValueError, match=match):
            permute(net, perms)
    assert [p.tolist() for p in check_perms(net, [[3, 2, 1, 0], (2, 0, 1)])] == [[3, 2, 1, 0], [2, 0, 1]]


def test_aligned_barriers_of_a_shuffled_copy_vanish():
    """A minimum and its shuffled copy: a barrier on the straight line, none modulo permutation."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    a = net_of((4, 16, 12, 2), 12, "relu")
    Y = encode_targets(a, (X[:, 0] * X[:, 1] > 0).astype(int))
    b, _ = shuffled(a, 13, noise=0.0)
    thetas, labels = [a.params, b.params, net_of((4, 16, 12, 2), 14, "relu").params], ["a", "b", "c"]
    plain = pairwise_barriers(a, thetas, X, Y, "cross_entropy", labels=labels)
    aligned, perms = aligned_pairwise_barriers(a, thetas, X, Y, "cross_entropy", labels=labels)
    assert plain.loc["a", "b"] > 1e-3 and abs(aligned.loc["a", "b"]) < 1e-12
    values = aligned.to_numpy()
    assert np.array_equal(values, values.T) and np.all(np.diag(values) == 0)
    assert set(perms) == {("a", "b"), ("a", "c"), ("b", "c")} and len(perms[("a", "c")]) == 2
    with pytest.raises(ValueError, match="2 labels for 3 minima"):
        aligned_pairwise_barriers(a, thetas, X, Y, "cross_entropy", labels=["a", "b"])
