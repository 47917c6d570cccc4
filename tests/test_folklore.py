"""The folklore experiments (conf/experiment/*, analysis/folklore): every preset composes into a
grid study with findings, each runs end to end through run.py in a shrunk form (2 epochs, a corner
of its grid), and the shared helpers pick and summarise as documented."""

import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from analysis.folklore import EXPERIMENTS, NAMES
from analysis.folklore.common import summarise_runs, tuned
from analysis.folklore.pages import BEGIN, END, TABLE_BEGIN, TABLE_END
from analysis.folklore.pages import main as pages_main
from experiments import config as C
from experiments.search_space import grid_of, parse_search_space

ROOT = Path(__file__).resolve().parents[1]
TINY = ["train.epochs=2", "findings.seeds=1", "sweep.n_workers=1"]
SHRUNK = {  # experiment -> overrides that keep a corner of its grid (2-4 trials)
    "activations": ['sweep.params={model.activation: "choice(sigmoid, relu)", optimizer.lr: "choice(0.1)"}'],
    "batch_size": ['sweep.params={train.batch_size: "choice(16, 1077)", optimizer.lr: "choice(0.1)"}',
                   "findings.samples=4"],
    "minibatch_vs_fullbatch": ['sweep.params={optimizer.lr: "choice(0.1)"}'],
    "optimizers": ['sweep.params={optimizer: "choice(sgd, adam)", optimizer.lr: "choice(0.01)"}'],
    "dropout": ['sweep.params={model.dropout: "choice(0.0, 0.5)"}', "model.hidden=[32]"],
    "local_minima": ["findings.seeds=2", "findings.orders=2"],
    "hidden_layers": [],
    "mnist1d_paper": [],
    "mode_connectivity": ['sweep.params={model.width: "choice(8)"}', "model.width=8", "findings.seeds=2"],
}


def make(*overrides: str):
    C.register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_the_registry_matches_the_config_choices_and_the_presets():
    assert EXPERIMENTS == C.FOLKLORE
    assert set(EXPERIMENTS) == set(SHRUNK)
    assert {p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml")} == {*EXPERIMENTS, *C.FOLKLORE_VARIANTS,
                                                                                "quick", "mnist1d"}
    assert NAMES[NAMES.index("dropout") + 1] == "dropout_mnist1d"  # a variant follows its experiment on the page
    assert sorted(NAMES) == sorted([*EXPERIMENTS, *C.FOLKLORE_VARIANTS])


@pytest.mark.parametrize("name", C.FOLKLORE_VARIANTS)
def test_each_variant_is_its_experiment_on_mnist1d_with_findings_of_its_own(name):
    experiment = C.FOLKLORE_VARIANTS[name]
    cfg, original = make(f"experiment={name}"), make(f"experiment={experiment}")
    C.validate(cfg)
    assert (cfg.findings.experiment, cfg.findings.name, cfg.data.name) == (experiment, name, "mnist1d")
    assert original.data.name == "digits" and original.findings.get("name") is None
    assert cfg.study_name == f"folklore-{name.replace('_', '-')}"
    assert (cfg.sweep.sampler.name, cfg.sweep.pruner.name, cfg.data.seed) == ("grid", "none", 0)
    space, _ = parse_search_space(dict(cfg.sweep.params))
    assert set(space) == set(parse_search_space(dict(original.sweep.params))[0])  # the same factors, other budgets
    assert cfg.findings.seeds >= 10


def test_a_variant_names_its_own_experiment():
    cfg = make("experiment=dropout_mnist1d", "findings.experiment=optimizers")
    with pytest.raises(C.ConfigError, match="findings.name=dropout_mnist1d is a variant of findings.experiment=drop"):
        C.validate(cfg)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_each_preset_is_a_grid_study_of_its_own_with_findings(name):
    cfg = make(f"experiment={name}")
    C.validate(cfg)
    assert cfg.findings.experiment == name
    assert cfg.study_name == f"folklore-{name.replace('_', '-')}"
    assert (cfg.sweep.sampler.name, cfg.sweep.pruner.name) == ("grid", "none")
    assert cfg.tracking.enabled and cfg.data.seed == 0  # one split for every seed
    space, _ = parse_search_space(dict(cfg.sweep.params))
    assert list(grid_of(space)["train.seed"]) == list(range(cfg.findings.seeds))
    searched = name in ("activations", "mnist1d_paper", "mode_connectivity")  # mnist1d_paper: model.depth 0 or 2,
    # the paper's two rows; mode_connectivity: widths × depths
    assert "model.width" not in space and "model.depth" not in space or searched  # not the default space


def test_findings_need_tracking():
    cfg = make("experiment=dropout", "tracking=none")
    with pytest.raises(C.ConfigError, match="findings.experiment=dropout .* needs tracking"):
        C.validate(cfg)


@pytest.fixture(scope="module")
def shrunk_runs(tmp_path_factory):
    """Each experiment run shrunk, two at a time, each from its own empty directory."""
    def launch(name):
        cwd = tmp_path_factory.mktemp(name)
        proc = subprocess.run([sys.executable, str(ROOT / "run.py"), f"+experiment={name}", *TINY, *SHRUNK[name]],
                              cwd=cwd, capture_output=True, text=True, timeout=300)
        return name, (cwd, proc)

    with ThreadPoolExecutor(2) as pool:
        return dict(pool.map(launch, EXPERIMENTS))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_each_experiment_runs_end_to_end_and_writes_its_findings(shrunk_runs, name):
    cwd, proc = shrunk_runs[name]
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    folder = cwd / "findings" / name
    assert f"findings: findings/{name}/findings.md" in proc.stdout
    table = pd.read_csv(folder / "findings.csv")
    assert len(table) >= 1 and table.notna().any(axis=None)
    text = (folder / "findings.md").read_text()
    assert text.startswith(f"## {name}\n") and "**Claim.**" in text
    assert f"`python run.py experiment={name}`" in text
    figures = sorted(p.name for p in folder.glob("*.png"))
    assert figures and all(f"]({f})" in text for f in figures)
    assert not list(cwd.glob("findings/*.writing"))
    client = mlflow.MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    parent = client.search_runs([client.get_experiment_by_name(f"folklore-{name.replace('_', '-')}").experiment_id],
                                "tags.optuna.study != ''")
    parents = [r for r in parent if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    logged = {Path(a.path).name for a in client.list_artifacts(parents[0].info.run_id, "findings")}
    assert {"findings.csv", "findings.md", *figures} <= logged


@pytest.fixture(scope="module")
def variant_run(tmp_path_factory):
    """experiment=dropout_mnist1d shrunk (2 rates, 1 seed, 2 epochs, 32 units), from an empty directory."""
    cwd = tmp_path_factory.mktemp("dropout_mnist1d")
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "experiment=dropout_mnist1d", *TINY,
                           'sweep.params={model.dropout: "choice(0.0, 0.5)"}', "model.hidden=[32]"],
                          cwd=cwd, capture_output=True, text=True, timeout=300)
    return cwd, proc


def test_a_variant_writes_findings_of_its_own_that_name_its_data_set(variant_run):
    cwd, proc = variant_run
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert "findings: findings/dropout_mnist1d/findings.md" in proc.stdout
    assert not (cwd / "findings" / "dropout").exists()
    text = (cwd / "findings" / "dropout_mnist1d" / "findings.md").read_text()
    assert text.startswith("## dropout_mnist1d\n")
    assert "`python run.py experiment=dropout_mnist1d` (study `folklore-dropout-mnist1d`, data set `mnist1d`)" in text
    assert "on mnist1d" in text  # the notes: the network, the data set, the budget


def test_the_page_lists_each_variant_after_its_experiment_with_its_data_set(variant_run, tmp_path):
    findings = tmp_path / "findings"
    for name in ("dropout", "dropout_mnist1d"):  # the data set comes from the preset, not from the text
        shutil.copytree(variant_run[0] / "findings" / "dropout_mnist1d", findings / name)
    (tmp_path / "docs").mkdir()
    page, readme = tmp_path / "docs" / "findings.md", tmp_path / "README.md"
    page.write_text(f"{BEGIN}\n{END}\n")
    readme.write_text(f"{TABLE_BEGIN}\n{TABLE_END}\n")
    assert pages_main(["--findings", str(findings), "--page", str(page), "--readme", str(readme),
                       "--store", str(tmp_path / "store")]) == 0
    text = page.read_text()
    digits, variant = "## dropout\n\n**Data set.** digits\n", "## dropout_mnist1d\n\n**Data set.** mnist1d\n"
    assert text.index(digits) < text.index(variant)
    rows = [line for line in readme.read_text().splitlines() if line.startswith("| [dropout")]
    assert [row.split(" | ")[1] for row in rows] == ["digits", "mnist1d"]
    assert "| finding | data | claim | verdict |" in readme.read_text()


def test_the_findings_page_and_the_readme_table_are_rewritten_from_the_findings(shrunk_runs, tmp_path):
    cwd, _ = shrunk_runs["dropout"]
    (tmp_path / "docs").mkdir()
    page, readme = tmp_path / "docs" / "findings.md", tmp_path / "README.md"
    page.write_text(f"# x\n\nbefore\n\n{BEGIN}\nold text\n{END}\n\nafter\n")
    readme.write_text(f"# r\n\n{TABLE_BEGIN}\nold table\n{TABLE_END}\n\nrest\n")
    store = tmp_path / "analysis" / "findings"
    assert pages_main(["--findings", str(cwd / "findings"), "--page", str(page), "--readme", str(readme),
                       "--store", str(store)]) == 0
    text = page.read_text()
    assert "old text" not in text and text.startswith("# x\n\nbefore\n") and text.endswith(f"{END}\n\nafter\n")
    assert "## dropout" in text and "**Claim.**" in text and "(../analysis/findings/dropout/findings.md)" in text
    assert (store / "dropout" / "findings.csv").is_file()
    links = re.findall(r"\]\(([^)]*)\)", text)
    assert links and all((page.parent / link).is_file() for link in links), links
    assert ".png))" not in text
    table = readme.read_text()
    assert "old table" not in table and table.endswith(f"{TABLE_END}\n\nrest\n")
    row = next(line for line in table.splitlines() if line.startswith("| [dropout]"))
    assert "(docs/findings.md#dropout)" in row and "Dropout reduces overfitting" in row
    assert re.search(r"\| (The claim|No detectable difference)", row)  # shrunk to 1 seed: nothing detectable


def test_the_pages_script_refuses_files_without_markers(tmp_path, capsys):
    page, readme = tmp_path / "findings.md", tmp_path / "README.md"
    page.write_text("# no markers\n")
    readme.write_text(f"{TABLE_BEGIN}\n{TABLE_END}\n")
    (tmp_path / "findings" / "dropout").mkdir(parents=True)
    text = "## dropout\n\n**Claim.** c\n\n**Command.** x\n\nv\n"
    (tmp_path / "findings" / "dropout" / "findings.md").write_text(text)
    store = tmp_path / "store"
    arguments = ["--findings", str(tmp_path / "findings"), "--page", str(page), "--readme", str(readme),
                 "--store", str(store)]
    assert pages_main(arguments) == 2 and "needs one <!-- findings:begin -->" in capsys.readouterr().err
    assert page.read_text() == "# no markers\n" and not store.exists()  # nothing copied either
    page.write_text(f"{BEGIN}\n{END}\n")
    readme.write_text("# no table\n")
    assert pages_main(arguments) == 2 and "needs one <!-- findings-table:begin -->" in capsys.readouterr().err
    assert readme.read_text() == "# no table\n" and not store.exists()


# ---------------------------------------------------------------------------- helpers
def _trials(rows):
    return pd.DataFrame(rows, columns=["trial", "state", "group", "optimizer.lr", "val_cost", "best_val_cost",
                                       "train_cost", "val_accuracy"])


def test_tuned_picks_each_groups_rate_with_the_lowest_mean_over_seeds_and_a_failure_loses():
    trials = _trials([
        (0, "COMPLETE", "a", 0.1, 0.5, 0.30, 0.1, 0.9), (1, "COMPLETE", "a", 0.1, 0.5, 0.10, 0.1, 0.9),  # mean 0.20
        (2, "COMPLETE", "a", 1.0, 0.5, 0.15, 0.1, 0.9), (3, "COMPLETE", "a", 1.0, 0.5, 0.20, 0.1, 0.9),  # mean 0.175
        (4, "COMPLETE", "b", 0.1, 0.5, 0.40, 0.1, 0.9), (5, "COMPLETE", "b", 0.1, 0.5, 0.40, 0.1, 0.9),
        (6, "COMPLETE", "b", 1.0, 0.5, 0.01, 0.1, 0.9), (7, "FAIL", "b", 1.0, np.nan, np.nan, np.nan, np.nan),
    ])
    chosen = tuned(trials, "group")
    assert chosen.groupby("group")["optimizer.lr"].unique().map(list).to_dict() == {"a": [1.0], "b": [0.1]}
    assert sorted(chosen["trial"]) == [2, 3, 4, 5]
    assert sorted(tuned(trials, "group", metric="val_cost")["trial"]) == [0, 1, 4, 5]  # a tie: the smaller rate


def test_summarise_runs_counts_censored_runs_and_averages_over_seeds():
    trials = _trials([(0, "COMPLETE", "a", 0.1, 0.2, 0.2, 0.1, 0.9), (1, "COMPLETE", "a", 0.1, 0.4, 0.3, 0.3, 0.7)])
    val = {0: [0.9, 0.5, 0.2], 1: [0.9, 0.8, 0.4]}  # trial 0 reaches τ = 0.3 at epoch 3, trial 1 never
    rows = [(t, e + 1, "val_cost", v) for t, vs in val.items() for e, v in enumerate(vs)]
    rows += [(t, e + 1, "train_cost", v / 2) for t, vs in val.items() for e, v in enumerate(vs)]
    rows += [(t, e + 1, "time", 0.5) for t in val for e in range(3)]
    curves = pd.DataFrame(rows, columns=["trial", "epoch", "metric", "value"])
    row = summarise_runs(curves, trials, "group", 0.3).iloc[0]
    assert (row["runs"], row["lr"], row["val_reached"]) == (2, 0.1, 0.5)
    assert row["val_cost"] == pytest.approx(0.3) and row["val_cost_std"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert row["val_epochs_to_tau"] == 3 and row["val_seconds_to_tau"] == pytest.approx(1.5)
    assert row["train_epochs_to_tau"] == 2  # train costs 0.25 (trial 0) and 0.4 → 0.2 (trial 1) at epoch 2 and 3
    assert row["s_per_epoch"] == 0.5
