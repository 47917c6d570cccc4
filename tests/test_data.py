"""load_dataset: loaders, split, scaling, cache, and csv/parquet errors."""

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from experiments.config import DataConfig
from experiments.data import DataError, Dataset, clear_cache, load_dataset

BUNDLED = {  # name: (n_samples, n_features, n_classes)
    "digits": (1797, 64, 10),
    "iris": (150, 4, 3),
    "wine": (178, 13, 3),
    "breast_cancer": (569, 30, 2),
    "diabetes": (442, 10, 0),
}


def n_rows(ds: Dataset) -> int:
    return len(ds.X_train) + len(ds.X_val) + len(ds.X_test)


def splits(ds: Dataset):
    return [(ds.X_train, ds.y_train), (ds.X_val, ds.y_val), (ds.X_test, ds.y_test)]


# ---------------------------------------------------------------------------- loaders
@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_shapes_and_types(name):
    n, d, k = BUNDLED[name]
    ds = load_dataset({"name": name}, seed=0)
    assert n_rows(ds) == n
    assert abs(len(ds.X_test) - 0.2 * n) <= 1 and abs(len(ds.X_val) - 0.2 * n) <= 1
    assert ds.n_features == d and len(ds.feature_names) == d
    assert ds.n_classes == k and ds.name == name
    for X, y in splits(ds):
        assert X.dtype == np.float64 and X.shape[1] == d and X.flags.c_contiguous
        assert len(y) == len(X)
        if k:
            assert y.dtype == np.int64 and y.ndim == 1 and set(np.unique(y)) <= set(range(k))
        else:
            assert y.dtype == np.float64 and y.shape == (len(X), 1)
    if k:
        assert ds.task == "classification" and len(ds.class_names) == k and ds.n_outputs == k
        assert ds.y_mean is None
    else:
        assert ds.task == "regression" and ds.class_names == () and ds.n_outputs == 1


@pytest.mark.parametrize(
    ("cfg", "n_features", "n_classes"),
    [
        ({"name": "moons", "n_samples": 200, "noise": 0.1}, 2, 2),
        ({"name": "circles", "n_samples": 300}, 2, 2),
        ({"name": "classification", "n_samples": 400, "n_features": 7, "n_informative": 3, "n_classes": 3}, 7, 3),
    ],
    ids=lambda v: v["name"] if isinstance(v, dict) else str(v),
)
def test_generators(cfg, n_features, n_classes):
    ds = load_dataset(cfg, seed=3)
    assert n_rows(ds) == cfg["n_samples"]
    assert ds.n_features == n_features and ds.n_classes == n_classes
    assert set(np.unique(ds.y_train)) == set(range(n_classes))
    other = load_dataset({**cfg, "n_samples": cfg["n_samples"] + 10}, seed=3)
    assert n_rows(other) == cfg["n_samples"] + 10


def test_generator_seed_changes_the_data():
    a = load_dataset({"name": "moons", "n_samples": 100}, seed=0)
    b = load_dataset({"name": "moons", "n_samples": 100}, seed=1)
    assert not np.allclose(np.sort(a.X_train, axis=0), np.sort(b.X_train[: len(a.X_train)], axis=0))


def test_generator_noise_changes_the_data():
    a = load_dataset({"name": "moons", "n_samples": 100, "noise": 0.0}, seed=0)
    b = load_dataset({"name": "moons", "n_samples": 100, "noise": 0.3}, seed=0)
    assert not np.allclose(a.X_train, b.X_train)


# ---------------------------------------------------------------------------- split
@pytest.mark.parametrize("name", ["digits", "iris", "wine", "breast_cancer"])
def test_split_is_stratified(name):
    ds = load_dataset({"name": name}, seed=0)
    overall = np.bincount(np.concatenate([ds.y_train, ds.y_val, ds.y_test])) / n_rows(ds)
    for _, y in splits(ds):
        share = np.bincount(y, minlength=ds.n_classes) / len(y)
        np.testing.assert_allclose(share, overall, atol=0.02)


def test_splits_are_disjoint_and_cover_the_data():
    raw = load_dataset({"name": "iris", "scale": False}, seed=0)
    rows = np.concatenate([raw.X_train, raw.X_val, raw.X_test])
    assert rows.shape == (150, 4)
    from sklearn.datasets import load_iris

    expected = load_iris().data
    key = np.lexsort(rows.T)
    np.testing.assert_array_equal(rows[key], expected[np.lexsort(expected.T)])


def test_fractions_set_the_split_sizes():
    ds = load_dataset({"name": "digits", "val_fraction": 0.1, "test_fraction": 0.3}, seed=0)
    assert abs(len(ds.X_val) - 0.1 * 1797) <= 1 and abs(len(ds.X_test) - 0.3 * 1797) <= 1


def test_deterministic_by_seed():
    a = load_dataset({"name": "wine"}, seed=5)
    clear_cache()
    b = load_dataset({"name": "wine"}, seed=5)
    assert a is not b
    for (Xa, ya), (Xb, yb) in zip(splits(a), splits(b), strict=True):
        np.testing.assert_array_equal(Xa, Xb)
        np.testing.assert_array_equal(ya, yb)
    c = load_dataset({"name": "wine"}, seed=6)
    assert not np.array_equal(a.y_train, c.y_train) or not np.array_equal(a.X_train, c.X_train)


# ---------------------------------------------------------------------------- scaling
def test_features_scaled_with_training_stats_only():
    raw = load_dataset({"name": "breast_cancer", "scale": False}, seed=0)
    ds = load_dataset({"name": "breast_cancer"}, seed=0)
    mean, std = raw.X_train.mean(axis=0), raw.X_train.std(axis=0)
    np.testing.assert_allclose(ds.X_train.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(ds.X_train.std(axis=0), 1.0, atol=1e-10)
    np.testing.assert_allclose(ds.X_val, (raw.X_val - mean) / std)
    np.testing.assert_allclose(ds.X_test, (raw.X_test - mean) / std)
    assert np.abs(ds.X_val.mean(axis=0)).max() > 1e-3  # val is not re-centred


def test_constant_feature_gets_unit_std():
    raw = load_dataset({"name": "digits", "scale": False}, seed=0)
    ds = load_dataset({"name": "digits"}, seed=0)
    constant = raw.X_train.std(axis=0) == 0
    assert constant.any()
    np.testing.assert_allclose(ds.X_train[:, constant], raw.X_train[:, constant] - raw.X_train[0, constant])
    assert np.isfinite(ds.X_val).all() and np.isfinite(ds.X_test).all()


def test_unscaled_keeps_raw_values():
    ds = load_dataset({"name": "digits", "scale": False}, seed=0)
    assert ds.X_train.min() == 0 and ds.X_train.max() == 16


def test_regression_target_scaled_with_training_stats():
    raw = load_dataset({"name": "diabetes", "scale": False}, seed=0)
    ds = load_dataset({"name": "diabetes"}, seed=0)
    assert raw.y_mean is None
    np.testing.assert_allclose(ds.y_train.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(ds.y_train.std(axis=0), 1.0, atol=1e-10)
    assert ds.y_mean.shape == (1,) and ds.y_std.shape == (1,)
    np.testing.assert_allclose(ds.y_mean, raw.y_train.mean(axis=0))
    np.testing.assert_allclose(ds.y_val * ds.y_std + ds.y_mean, raw.y_val)
    assert raw.y_train.max() > 100  # raw disease progression, not standardised


# ---------------------------------------------------------------------------- cache
def test_cache_returns_the_same_object():
    a = load_dataset({"name": "iris"}, seed=0)
    assert load_dataset({"name": "iris"}, seed=0) is a
    assert load_dataset(OmegaConf.structured(DataConfig(name="iris")), seed=0) is a
    assert load_dataset(DataConfig(name="iris"), seed=0) is a
    # fields the loader does not use do not make a new entry
    assert load_dataset({"name": "iris", "n_samples": 7, "noise": 0.9}, seed=0) is a
    assert load_dataset({"name": "iris"}, seed=1) is not a
    assert load_dataset({"name": "iris", "scale": False}, seed=0) is not a


def test_cached_arrays_are_read_only():
    ds = load_dataset({"name": "iris"}, seed=0)
    with pytest.raises(ValueError):
        ds.X_train[0, 0] = 1.0
    with pytest.raises(ValueError):
        ds.y_train[0] = 1


def test_unknown_config_key_is_an_error():
    with pytest.raises(DataError, match="unknown keys: nme"):
        load_dataset({"name": "iris", "nme": "x"}, seed=0)


# ---------------------------------------------------------------------------- csv / parquet
def table(n_per_class: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    labels = ["dog", "cat", "bird"] * n_per_class
    return pd.DataFrame({
        "size": rng.normal(size=len(labels)),
        "weight": rng.normal(loc=10.0, size=len(labels)),
        "legs": [4, 4, 2] * n_per_class,
        "label": labels,
    })


def csv_cfg(path, **extra):
    return {"name": "csv", "path": str(path), "target": "label", **extra}


def test_csv_string_labels(tmp_path):
    path = tmp_path / "animals.csv"
    frame = table()
    frame.to_csv(path, index=False)
    ds = load_dataset(csv_cfg(path), seed=0)
    assert ds.task == "classification" and ds.n_classes == 3
    assert ds.class_names == ("bird", "cat", "dog")
    assert ds.feature_names == ("size", "weight", "legs")
    assert ds.name == "animals.csv" and n_rows(ds) == len(frame)
    raw = load_dataset(csv_cfg(path, scale=False), seed=0)
    legs = dict(zip(ds.class_names, (2, 4, 4), strict=True))
    for X, y in [(raw.X_train, raw.y_train), (raw.X_test, raw.y_test)]:
        assert y.dtype == np.int64
        for row, label in zip(X, y, strict=True):
            assert row[2] == legs[ds.class_names[label]]


def test_csv_feature_subset_and_integer_labels(tmp_path):
    path = tmp_path / "t.csv"
    frame = table().assign(label=lambda f: f["label"].map({"dog": 10, "cat": 2, "bird": 7}))
    frame.to_csv(path, index=False)
    ds = load_dataset(csv_cfg(path, features=["weight", "size"]), seed=0)
    assert ds.feature_names == ("weight", "size") and ds.n_features == 2
    assert ds.class_names == ("2", "7", "10")  # sorted numerically


def test_csv_regression(tmp_path):
    path = tmp_path / "r.csv"
    table().drop(columns="label").to_csv(path, index=False)
    ds = load_dataset({"name": "csv", "path": str(path), "target": "weight", "task": "regression"}, seed=0)
    assert ds.task == "regression" and ds.n_classes == 0
    assert ds.y_train.shape == (len(ds.X_train), 1) and ds.feature_names == ("size", "legs")
    np.testing.assert_allclose(ds.y_train.mean(), 0.0, atol=1e-10)


def test_parquet(tmp_path):
    path = tmp_path / "animals.parquet"
    table().to_parquet(path)
    ds = load_dataset(csv_cfg(path), seed=0)
    assert ds.class_names == ("bird", "cat", "dog") and n_rows(ds) == 18


def test_csv_path_is_relative_to_the_launch_dir(tmp_path, monkeypatch):
    table().to_csv(tmp_path / "rel.csv", index=False)
    monkeypatch.chdir(tmp_path)
    assert load_dataset(csv_cfg("rel.csv"), seed=0).n_classes == 3


def test_csv_cache_sees_file_changes(tmp_path):
    path = tmp_path / "t.csv"
    table().to_csv(path, index=False)
    a = load_dataset(csv_cfg(path), seed=0)
    assert load_dataset(csv_cfg(path), seed=0) is a
    table(n_per_class=9).to_csv(path, index=False)
    assert n_rows(load_dataset(csv_cfg(path), seed=0)) == 27


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("name", "text", "extra", "needles"),
    [
        ("missing.csv", None, {}, ["missing.csv", "not found"]),
        ("empty.csv", "", {}, ["empty.csv", "empty"]),
        ("header.csv", "a,b,label\n", {}, ["header.csv", "no data rows"]),
        ("t.csv", "a,b,y\n1,2,x\n", {}, ["t.csv", "'label' not found", "columns: a, b, y"]),
        ("t.csv", "a,b,label\n1,2,x\n", {"features": ["a", "c"]}, ["t.csv", "'c' not found", "columns: a, b, label"]),
        ("t.csv", "a,b,label\n1,2,x\n", {"features": ["a", "label"]}, ["t.csv", "'label' is both"]),
        ("t.csv", "a,b,label\n1,2,x\n", {"features": []}, ["t.csv", "no feature columns"]),
        ("t.csv", "a,b,label\n1,red,x\n2,blue,y\n", {}, ["t.csv", "feature column 'b' is not numeric"]),
        ("t.csv", "a,b,label\n1,,x\n2,,y\n3,4,x\n", {}, ["t.csv", "column 'b' has 2 NaN"]),
        ("t.csv", "a,b,label\n1,2,x\n2,3,\n3,4,x\n", {}, ["t.csv", "column 'label' has 1 NaN"]),
        ("t.csv", "a,b,label\n1,inf,x\n2,3,y\n", {}, ["t.csv", "column 'b' has 1 infinite"]),
        ("t.csv", "a,b,label\n1,2,x\n2,3,x\n3,4,x\n", {}, ["t.csv", "column 'label' has a single class 'x'"]),
        (
            "t.csv", "a,label\n" + "".join(f"{i},{'ab'[i % 2] if i < 10 else 'c'}\n" for i in range(12)), {},
            ["t.csv", "class 'c' of target column 'label' has 2 sample(s)"],
        ),
        ("t.csv", "a,label\n" + "".join(f"{i},{i % 2}\n" for i in range(6)), {}, ["t.csv", "cannot split 6 samples"]),
        ("t.txt", "a,label\n1,x\n", {}, ["t.txt", "unsupported file type '.txt'"]),
        ("t.csv", "a,label\n1,x\n2,y\n", {"task": "regression"}, ["t.csv", "regression target column 'label'"]),
    ],
    ids=lambda v: v if isinstance(v, str) and "\n" not in v else None,
)
def test_csv_errors_name_the_file_and_column(tmp_path, name, text, extra, needles):
    path = tmp_path / name if text is None else write(tmp_path, name, text)
    with pytest.raises(DataError) as info:
        load_dataset(csv_cfg(path, **extra), seed=0)
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, ValueError)
    for needle in needles:
        assert needle in message


def test_csv_needs_path_and_target():
    with pytest.raises(DataError, match="data.path is required"):
        load_dataset({"name": "csv"}, seed=0)
    with pytest.raises(DataError, match="data.target"):
        load_dataset({"name": "csv", "path": "x.csv"}, seed=0)


def test_clip_bounds_the_standardised_features_of_every_split():
    plain = load_dataset({"name": "digits"}, 0)
    clipped = load_dataset({"name": "digits", "clip": 5.0}, 0)
    assert np.abs(plain.X_val).max() > 50  # a pixel almost always 0 in training: a huge z-score elsewhere
    for split in ("X_train", "X_val", "X_test"):
        a, b = getattr(plain, split), getattr(clipped, split)
        assert np.abs(b).max() <= 5.0
        np.testing.assert_array_equal(b, np.clip(a, -5, 5))
