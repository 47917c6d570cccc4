"""data=mnist1d: the package's arrays and their reference figures, the .npz cache, the split, the
shuffled variant, the missing-package error and a run without a validation split."""

import importlib.metadata
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from experiments import cli
from experiments import config as C
from experiments.data import DataError, cache_dir, clear_cache, load_dataset, mnist1d_arrays
from experiments.trainer import train_config

pytest.importorskip("mnist1d")
ROOT = Path(__file__).resolve().parents[1]
MISSING = "data=mnist1d needs the mnist1d package: pip install mnist1d"


def make(*overrides: str):
    C.register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """XDG_CACHE_HOME of this module, holding the plain and the shuffled set (each built once)."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(folder))
        clear_cache()
        yield {"folder": folder, "plain": mnist1d_arrays(), "shuffled": mnist1d_arrays(shuffle_seq=True)}
    clear_cache()


@pytest.fixture
def no_package(monkeypatch):
    """mnist1d cannot be imported (its modules set to None in sys.modules)."""
    for name in ("mnist1d", "mnist1d.data", "mnist1d.utils", "mnist1d.transform"):
        monkeypatch.setitem(sys.modules, name, None)


def test_the_arrays_are_the_papers(cache):
    a = cache["plain"]
    assert a["x"].shape == (4000, 40) and a["x_test"].shape == (1000, 40)
    assert a["x"].dtype == np.float64 and a["y"].dtype == np.int64
    assert np.bincount(a["y"]).tolist() == [398, 396, 411, 394, 394, 402, 401, 404, 402, 398]
    assert np.bincount(a["y_test"]).tolist() == [102, 104, 89, 106, 106, 98, 99, 96, 98, 102]
    assert a["x"].sum() == pytest.approx(-51.787468, abs=1e-6)
    assert a["x_test"].sum() == pytest.approx(51.787468, abs=1e-6)
    np.testing.assert_allclose(a["x"][0, :4], [-0.332006, -0.47191, -0.778697, -1.009741], atol=1e-6)
    assert a["y"][:10].tolist() == [2, 6, 4, 5, 6, 6, 6, 0, 3, 1]


def test_the_cache_is_one_npz_file_read_the_second_time_without_the_package(cache, no_package):
    files = sorted((cache["folder"] / "nnsweep" / "mnist1d").iterdir())
    assert [f.suffix for f in files] == [".npz", ".npz"]  # plain and shuffled; no temporary file left
    assert all(f.name.startswith(importlib.metadata.version("mnist1d") + "-") for f in files)
    assert cache_dir() == cache["folder"] / "nnsweep"
    stamps = [f.stat().st_mtime_ns for f in files]
    again = mnist1d_arrays()  # mnist1d is not importable now: only the cache can answer
    for name, array in cache["plain"].items():
        np.testing.assert_array_equal(again[name], array)
    assert [f.stat().st_mtime_ns for f in files] == stamps
    with np.load(files[0], allow_pickle=False) as npz:  # no pickled object inside
        assert {"x", "y", "x_test", "y_test"} <= set(npz.files)


def test_a_failed_write_leaves_no_file_and_the_global_generators_untouched(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    def crash(handle, **arrays):
        handle.write(b"PK\x03\x04 half a zip")
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", crash)
    np.random.seed(7)
    expected = np.random.rand()
    np.random.seed(7)
    with pytest.warns(UserWarning, match="cannot cache the data set .*No space left"):
        arrays = mnist1d_arrays()
    assert np.random.rand() == expected  # make_dataset seeds np.random with 42: the state was put back
    assert arrays["y"][:10].tolist() == [2, 6, 4, 5, 6, 6, 6, 0, 3, 1]
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_corrupt_cache_file_is_rebuilt(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = tmp_path / "nnsweep" / "mnist1d"
    folder.mkdir(parents=True)
    for source in (cache["folder"] / "nnsweep" / "mnist1d").iterdir():  # plain and shuffled, both truncated
        (folder / source.name).write_bytes(source.read_bytes()[:1000])
    arrays = mnist1d_arrays()
    np.testing.assert_array_equal(arrays["x"], cache["plain"]["x"])

    def readable(path):
        try:
            return np.load(path, allow_pickle=False)["x"].shape == (4000, 40)
        except Exception:
            return False

    assert sorted(readable(f) for f in folder.iterdir()) == [False, True]  # the plain set's file, rewritten


def test_load_dataset_keeps_the_test_rows_and_splits_validation_off_the_training_rows(cache, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache["folder"]))
    clear_cache()
    cfg = make("data=mnist1d").data
    assert cfg.scale is False  # standardised by the package: not again
    ds = load_dataset(cfg, seed=0)
    a = cache["plain"]
    assert (len(ds.X_train), len(ds.X_val), len(ds.X_test)) == (3200, 800, 1000)
    assert ds.n_classes == 10 and ds.n_features == 40 and ds.name == "mnist1d"
    np.testing.assert_array_equal(ds.X_test, a["x_test"])
    np.testing.assert_array_equal(ds.y_test, a["y_test"])
    rows = np.concatenate([ds.X_train, ds.X_val])
    np.testing.assert_array_equal(np.sort(rows, axis=0), np.sort(a["x"], axis=0))  # the 4000 training rows
    assert np.abs(np.bincount(ds.y_val) - 0.2 * np.bincount(a["y"])).max() <= 1  # stratified
    other = load_dataset(cfg, seed=1)
    assert not np.array_equal(other.X_val, ds.X_val)

    every = load_dataset({**OmegaConf.to_container(cfg), "val_fraction": 0.0}, seed=0)
    assert len(every.X_val) == 0 and every.X_val.shape == (0, 40)
    np.testing.assert_array_equal(every.X_train, a["x"])
    scaled = load_dataset({"name": "mnist1d", "scale": True}, seed=0)
    np.testing.assert_allclose(scaled.X_train.mean(axis=0), 0, atol=1e-12)
    assert not np.allclose(scaled.X_test, ds.X_test)


def test_shuffle_seq_permutes_the_columns_of_every_row_by_one_fixed_permutation(cache, monkeypatch):
    plain, shuffled = cache["plain"], cache["shuffled"]
    distance = ((shuffled["x"][:, :, None] - plain["x"][:, None, :]) ** 2).sum(axis=0)  # (40 shuffled, 40 plain)
    perm = distance.argmin(axis=1)
    assert sorted(perm) == list(range(40)) and (perm != np.arange(40)).sum() > 30
    np.testing.assert_allclose(shuffled["x"], plain["x"][:, perm], atol=1e-12)
    np.testing.assert_allclose(shuffled["x_test"], plain["x_test"][:, perm], atol=1e-12)  # the same for test rows
    np.testing.assert_array_equal(shuffled["y"], plain["y"])
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache["folder"]))
    clear_cache()
    ds = load_dataset(make("data=mnist1d", "data.mnist1d.shuffle_seq=true").data, seed=0)
    assert ds.name == "mnist1d-shuffled"
    np.testing.assert_array_equal(ds.X_test, shuffled["x_test"])


def test_without_the_package_data_mnist1d_fails_in_one_line(tmp_path, monkeypatch, no_package, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # empty: the package would be needed
    clear_cache()
    with pytest.raises(DataError, match=f"^{MISSING}$"):
        load_dataset({"name": "mnist1d"}, 0)

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    with pytest.raises(DataError, match=f"^{MISSING}$"):
        mnist1d_arrays()
    cfg = make("data=mnist1d", "mode=train", "tracking=none")
    assert cli.run(cfg, []) == 2
    assert capsys.readouterr().err == f"error: {MISSING}\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.val_fraction=0"], "sweep.objective.metrics[0] needs a validation split (data.val_fraction=0); "
                                  "use train_cost, got 'val_cost'"),
        (["data.val_fraction=0", "mode=train", "train.early_stopping.patience=3"],
         "train.early_stopping.patience needs a validation split (data.val_fraction=0), got 3"),
        (["data.val_fraction=1.0"], "data.val_fraction must be in [0, 1), got 1.0"),
        (["data.val_fraction=-0.1"], "data.val_fraction must be in [0, 1), got -0.1"),
    ],
)
def test_bad_values_name_the_field(overrides, message):
    with pytest.raises(C.ConfigError) as info:
        C.validate(make("data=mnist1d", *overrides))
    assert str(info.value) == message


def test_val_fraction_zero_is_for_mnist1d_only():
    with pytest.raises(C.ConfigError, match=r"data.val_fraction must be in \(0, 1\), got 0.0"):
        C.validate(make("data=digits", "data.val_fraction=0"))
    C.validate(make("data=mnist1d", "data.val_fraction=0", "mode=train", "data.test_fraction=0.9"))


def test_a_run_without_a_validation_split_trains_on_every_training_row(cache, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache["folder"]))
    clear_cache()
    cfg = make("data=mnist1d", "data.val_fraction=0", "mode=train", "train.epochs=2", "model.hidden=[8]")
    data = load_dataset(cfg.data, 0)
    result = train_config(cfg, data)
    assert [m.val_cost for m in result.history.epochs] == [None, None]
    assert "val_cost" not in result.final and result.final["epochs_run"] == 2
    assert 0.0 <= result.test_metrics(cfg, data)["test_accuracy"] <= 1.0


def test_the_paper_verdict_takes_the_interval_or_two_points():
    from analysis.folklore.mnist1d_paper import interval, reproduced

    values = np.array([66.0, 67.0, 68.0, 67.0, 66.0])
    low, high = interval(values)
    half = 2.7764451051977987 * values.std(ddof=1) / np.sqrt(5)  # t(0.975, 4)
    assert (low, high) == pytest.approx((values.mean() - half, values.mean() + half))
    assert reproduced(68.0, 66.8, low, high)  # inside the interval
    assert reproduced(64.5, 66.5, np.nan, np.nan)  # 2 points from the mean, no interval
    assert not reproduced(70.0, 66.8, low, high)  # 3.2 points away, outside [65.8, 67.8]
    assert np.isnan(interval(np.array([67.0]))[0])


def test_a_dense_network_is_as_accurate_on_the_shuffled_variant(cache, monkeypatch):
    """A fixed permutation of the 40 positions only relabels a dense net's inputs (the first layer's
    initial weights are drawn alike whatever the order), so an MLP's test accuracy over seeds has the same
    mean on both variants (the paper's MLP row: 68 % and 68 %): the 99 % Welch t-interval of the difference
    of the means holds 0. Small net, few epochs, every training row, 5 seeds a side."""
    from scipy import stats

    monkeypatch.setenv("XDG_CACHE_HOME", str(cache["folder"]))
    clear_cache()
    base = ["data=mnist1d", "data.val_fraction=0", "mode=train", "tracking=none", "model.hidden=[64]",
            "optimizer.lr=0.01", "train.epochs=12", "train.batch_size=100"]
    accuracy = {}
    for shuffled in (False, True):
        cfg = make(*base, f"data.mnist1d.shuffle_seq={str(shuffled).lower()}")
        data = load_dataset(cfg.data, 0)
        assert data.name == ("mnist1d-shuffled" if shuffled else "mnist1d")
        runs = []
        for seed in range(5):
            cfg.train.seed = seed
            runs.append(train_config(cfg, data).test_metrics(cfg, data)["test_accuracy"])
        accuracy[shuffled] = np.array(runs)
    plain, shuffled = accuracy[False], accuracy[True]
    assert plain.mean() > 0.45 and shuffled.mean() > 0.45  # it learned (chance: 10 %)
    assert not np.array_equal(plain, shuffled)  # different inputs, not the same runs twice
    low, high = stats.ttest_ind(shuffled, plain, equal_var=False).confidence_interval(0.99)
    assert low <= 0.0 <= high, (plain, shuffled)
