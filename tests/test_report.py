"""analysis/report.py: ``python -m analysis.report`` end to end, and the frames it is made of.

The command runs as a user runs it, from the directory of the small study of ``analysis_study``
(its defaults: ``sqlite:///mlflow.db`` there, the study run last), with small sizes.
"""

import html.parser
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


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return small_study(tmp_path_factory)


@pytest.fixture(scope="module")
def made(study):
    """``python -m analysis.report`` in the study's directory: (the process, the report's path)."""
    proc = subprocess.run([sys.executable, "-m", "analysis.report", "--top-k", "2", "--seeds", "1", "--grid", "7"],
                          cwd=study.folder, capture_output=True, text=True, timeout=300, env=environment())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, study.folder / proc.stdout.strip().splitlines()[-1]


def test_the_report_is_written_where_it_says(study, made):
    proc, path = made
    assert path == study.folder / "reports" / STUDY / "report.html" and path.is_file()
    assert proc.stdout.strip() == f"reports/{STUDY}/report.html"  # stdout holds the path alone
    assert "report moons-quick" in proc.stderr  # the progress bar


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
