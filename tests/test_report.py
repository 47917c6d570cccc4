"""analysis/report.py: ``python -m analysis.report`` end to end, and the frames it is made of.

The command runs as a user runs it, from the directory of the small study of ``analysis_study``
(its defaults: ``sqlite:///mlflow.db`` there, the study run last), with small sizes.
"""

import html.parser
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from analysis_study import EMPTY, STUDY, environment, small_study
from mlflow.tracking import MlflowClient

from analysis import report
from analysis.loading import SEED_KIND, find_study, load_curves, load_trials
from tests.helpers import explain, run_py

FIGURES = {"curves_by_optimizer", "curves_by_batch_size", "curves_by_activation", "param_importances",
           "interpolation", "final_spread", "landscape_1d", "landscape_2d"}
SECTIONS = ("Best trials", "Convergence", "By optimizer", "By batch size", "By activation", "Parameter importances",
            "Minima of the 2 best trials", "Seed robustness", "Barriers between the minima", "Loss landscape")


class _Images(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources, self.headings, self._in_heading = [], [], False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])
        self._in_heading = tag in ("h1", "h2", "h3")

    def handle_data(self, data):
        if self._in_heading:
            self.headings.append(data)

    def handle_endtag(self, tag):
        self._in_heading = False

    @classmethod
    def of(cls, page: str) -> "_Images":
        parsed = cls()
        parsed.feed(page)
        return parsed


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return small_study(tmp_path_factory)


@pytest.fixture(scope="module")
def made(study):
    """``python -m analysis.report`` in the study's directory: (the process, the report's path). Its
    folder holds a file of the user's and a figure of an older report beforehand."""
    older = study.folder / "reports" / STUDY
    (older / "figures").mkdir(parents=True)
    (older / "notes.txt").write_text("mine")
    (older / "figures" / "gone_since.png").write_bytes(b"")
    proc = subprocess.run([sys.executable, "-m", "analysis.report", "--top-k", "2", "--seeds", "1", "--grid", "7"],
                          cwd=study.folder, capture_output=True, text=True, timeout=300, env=environment())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, study.folder / proc.stdout.strip().splitlines()[-1]


def test_the_report_is_written_where_it_says(study, made):
    proc, path = made
    assert path == study.folder / "reports" / STUDY / "report.html" and path.is_file()
    assert proc.stdout.strip() == f"reports/{STUDY}/report.html"  # stdout holds the path alone
    assert "report moons-quick" in proc.stderr  # the progress bar


def test_the_report_replaces_its_own_files_and_keeps_the_users(study, made):
    folder = study.folder / "reports" / STUDY
    assert (folder / "notes.txt").read_text() == "mine" and not (folder / "figures" / "gone_since.png").exists()
    assert not list(folder.glob(".report-partial-*"))  # the folder it was made in is gone


def test_a_report_whose_runs_artifacts_were_moved_is_one_error_line_and_writes_nothing(tmp_path):
    launched, moved = tmp_path / "launched", tmp_path / "moved"
    launched.mkdir()
    proc = run_py(launched, "experiment=quick", "sweep.n_trials=2", "tracking.log_weights=true")
    assert proc.returncode == 0, explain(proc)
    launched.rename(moved)  # MLflow recorded the artifacts' absolute paths under launched/
    proc = subprocess.run([sys.executable, "-m", "analysis.report", "--storage", "optuna.journal", "--no-log"],
                          cwd=moved, capture_output=True, text=True, timeout=300, env=environment())
    said = [line.strip() for line in re.split(r"[\r\n]", proc.stderr) if line.strip()]
    errors = [line for line in said if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1, explain(proc)
    assert "config.yaml" in errors[0] and str(launched / "mlruns") in errors[0]
    assert "Traceback" not in proc.stderr and not (moved / "reports").exists()


def test_every_figure_it_shows_exists(made):
    _, path = made
    page = _Images()
    page.feed(path.read_text())
    assert page.sources and len(page.sources) == len(set(page.sources))
    for source in page.sources:
        assert not Path(source).is_absolute() and (path.parent / source).is_file(), source
        assert (path.parent / source).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stems = {Path(s).stem for s in page.sources}
    assert FIGURES <= stems and any(s.startswith("barriers_") for s in stems)
    text = " ".join(page.headings)
    for section in SECTIONS:
        assert section in text, section


def test_the_report_and_its_seeds_are_in_mlflow(study, made):
    record = find_study(STUDY, study.tracking_uri)
    client = MlflowClient(study.tracking_uri)
    logged = {a.path for a in client.list_artifacts(record.parent_run_id, "report")}
    assert {"report/report.html", "report/figures"} <= logged
    figures = {Path(a.path).stem for a in client.list_artifacts(record.parent_run_id, "report/figures")}
    assert FIGURES <= figures
    seeds = client.search_runs([record.experiment_id], f"tags.kind = '{SEED_KIND}'")
    assert {r.data.tags["seed"] for r in seeds} >= {"1"} and len(seeds) >= 2


def test_the_report_shows_the_importances_of_the_parent_runs_artifact(study, made, tmp_path):
    """One study, one set of importances: the parent run's plots/param_importances.csv (drawn as the
    sweep ended) and the report's table hold the same numbers, and the page says how uncertain they are."""
    _, path = made
    record = find_study(STUDY, study.tracking_uri)
    client = MlflowClient(study.tracking_uri)
    artifact = pd.read_csv(client.download_artifacts(record.parent_run_id, "plots/param_importances.csv",
                                                     str(tmp_path)))
    shown = pd.read_csv(path.parent / "param_importances.csv")
    assert len(artifact) == len(record.searched) and artifact["fanova"].notna().all()
    pd.testing.assert_frame_equal(shown, artifact, rtol=1e-12)
    page = path.read_text()
    section = page[page.index("<h2>Parameter importances</h2>"):]
    section = section[:section.index("<h2>", 5)]
    for row in artifact.itertuples():
        assert f"<td>{report.format_value(row.fanova)}</td>" in section, row.param  # as the table prints it
    assert "fANOVA forests differ by up to" in section and "href='param_importances.csv'" in section


class _Table(html.parser.HTMLParser):
    """The cells of the first table fed, as text: ``header`` and ``rows``."""

    def __init__(self):
        super().__init__()
        self.header, self.rows, self._cell, self._done = [], [], None, False

    def handle_starttag(self, tag, attrs):
        if not self._done and tag == "tr":
            self.rows.append([])
        elif not self._done and tag in ("th", "td"):
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None and not self._done:
            self.rows[-1].append(self._cell.strip())
            self._cell = None
        elif tag == "table":
            self._done = True


def _table_after(page: str, heading: str) -> pd.DataFrame:
    """The first table after ``heading`` on the page, as text cells."""
    parsed = _Table()
    parsed.feed(page[page.index(heading):])
    return pd.DataFrame(parsed.rows[1:], columns=parsed.rows[0])


def test_the_page_fits_a_laptop_and_says_what_blank_cells_mean(study, made):
    _, path = made
    page = path.read_text()
    record = find_study(STUDY, study.tracking_uri)
    best = _table_after(page, "<h2>Best trials</h2>")
    assert list(best.columns) == ["trial", "value", *record.searched]  # the searched columns and the objective
    rest = pd.read_csv(path.parent / "best_trials.csv")
    assert {"test_cost", "epochs_run", "run_id", *record.searched} <= set(rest.columns)
    assert len(rest) == (load_trials(record)["state"] == "COMPLETE").sum() and "href='best_trials.csv'" in page
    for heading in ("<h2>Convergence</h2>", "<h3>By optimizer</h3>"):
        km = _table_after(page, heading)["km_median"]
        assert (km != "").all() and all(v == report.KM_UNDEFINED or float(v) >= 1 for v in km), (heading, list(km))
    for source in _Images.of(page).sources:  # each figure opens full size on a click
        assert f"<a href='{source}' target='_blank'" in page, source
    assert "figure img{width:900px;max-width:100%" in page
    assert "★: the trained weights θ*, at α = β = 0" in page


def test_the_landscape_caption_says_where_the_lowest_point_is():
    grid = [-1.0, 0.0, 1.0]
    flat = pd.DataFrame([(a, b, 1.0 + a * a + b * b) for a in grid for b in grid], columns=["alpha", "beta", "loss"])
    assert report.landscape_caption(flat).endswith("It is the lowest point of the grid.")
    sloped = flat.assign(loss=flat["loss"] - 1.5 * flat["beta"])  # a gradient along β at θ*
    words = report.landscape_caption(sloped)
    assert "lowest grid point is at α = 0, β = 1 (loss 0.5, against 1 at θ*)" in words and "not zero" in words


def test_a_km_median_left_undefined_is_said_in_place():
    table = pd.DataFrame({"optimizer": ["a", "b"], "km_median": [3.0, np.nan]})
    assert list(report.km_explained(table)["km_median"]) == ["3", report.KM_UNDEFINED]


def test_the_seed_section_shows_barriers_before_and_after_alignment(made):
    _, path = made
    page = path.read_text()
    section = page[page.index("<h3>Barriers between the minima</h3>"):page.index("<h2>Loss landscape")]
    for column in ("mean_aligned", "max_aligned", "lower_aligned", "n_basins_aligned", "basins_aligned",
                   "members_aligned"):
        assert f"<th>{column}</th>" in section, column
    assert "weight matching" in section and "after aligning each pair by weight matching (right)" in section
    assert section.count("<img src='figures/barriers_") == page.count("<img src='figures/barriers_") >= 1


def test_barrier_summary_and_the_two_heat_maps():
    labels = ["a", "b", "c"]
    plain = pd.DataFrame([[0, 0.4, 0.2], [0.4, 0, 0.1], [0.2, 0.1, 0]], index=labels, columns=labels)
    aligned = pd.DataFrame([[0, 0.1, 0.3], [0.1, 0, 0.0], [0.3, 0.0, 0]], index=labels, columns=labels)
    comparison = report.SeedComparison(pd.DataFrame(), {"g": plain}, pd.DataFrame(), pd.DataFrame(), 0.01,
                                       {"g": aligned})
    row = report.barrier_summary(comparison).iloc[0]
    assert row["group"] == "g" and row["n_pairs"] == 3
    assert row["mean"] == pytest.approx(0.7 / 3) and row["mean_aligned"] == pytest.approx(0.4 / 3)
    assert (row["max"], row["max_aligned"]) == (0.4, 0.3) and row["lower_aligned"] == pytest.approx(2 / 3)
    figure = report.plot_barrier_heatmaps(plain, aligned, "g")
    left, right = figure.axes[:2]  # then their colour bars
    assert left.get_title() == "g: straight line" and right.get_title() == "g: after weight matching"
    assert left.images[0].get_clim() == right.images[0].get_clim() == (0.0, 0.4)  # one scale


def test_an_unknown_study_is_an_error_naming_the_known_ones(study, capsys, monkeypatch):
    monkeypatch.chdir(study.folder)
    assert report.main(["--study", "nope", "--no-log"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no study 'nope'") and STUDY in err and EMPTY in err
    assert report.main(["--study", EMPTY, "--no-log"]) == 2
    assert f"study '{EMPTY}' is empty" in capsys.readouterr().err


def test_bad_options_are_refused(capsys):
    with pytest.raises(SystemExit):
        report.main(["--seeds", "-1"])
    assert "--seeds must be at least 0" in capsys.readouterr().err


def test_convergence_table_groups_and_counts(study):
    record = find_study(STUDY, study.tracking_uri)
    trials, curves = load_trials(record), load_curves(record)
    tau = report.default_threshold(trials)
    assert tau == trials.loc[trials["state"] == "COMPLETE", "val_cost"].median()
    overall = report.convergence_table(curves, trials, None, tau)
    assert len(overall) == 1 and overall["n_runs"].iloc[0] == len(trials)
    by = report.convergence_table(curves, trials, "optimizer", tau)
    assert by["n_runs"].sum() == len(trials) and set(by["optimizer"]) == set(trials["optimizer"])
    assert {"km_median", "median_final_val_cost", "median_rate", "median_auc"} <= set(by.columns)


def test_convergence_table_on_known_curves():
    """Two groups of two runs with known curves: the table's counts and medians follow."""
    curves = pd.DataFrame([(t, e, "val_cost", v) for t, values in enumerate([[1.0, 0.5, 0.2], [1.0, 0.8, 0.6],
                                                                              [0.9, 0.3], [2.0, 1.0, 0.4]])
                           for e, v in enumerate(values, start=1)], columns=["trial", "epoch", "metric", "value"])
    trials = pd.DataFrame({"trial": [0, 1, 2, 3], "optimizer": ["a", "a", "b", "b"],
                           "state": ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"], "val_cost": [0.2, 0.6, 0.3, 0.4]})
    assert report.default_threshold(trials) == 0.4
    table = report.convergence_table(curves, trials, "optimizer", 0.4).set_index("optimizer")
    assert list(table["n_reached"]) == [1, 2] and list(table["median_epochs"]) == [3.0, 2.5]
    assert np.allclose(table["median_final_val_cost"], [0.4, 0.35])
    assert np.isclose(table.loc["a", "median_auc"], np.median([(1.5 / 2 + 0.7 / 2) / 2, (1.8 / 2 + 1.4 / 2) / 2]))
