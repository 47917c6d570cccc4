"""What a new user sees, in a real browser (headless Chromium, tests.chromium), on the shared small study:
the report's images all load and nothing is wider than the page; the MLflow UI's pages of the parent
run and of the best trial's run render and name them, and the trial's Model metrics tab leads with its
curves; optuna-dashboard shows the study; the study's importances are the same numbers in the parent
run's artifact, the report and optuna-dashboard (``importances.txt``). Screenshots are kept in each
test's temp dir: ``report.png`` (the report's first screen), ``parent-run.png``, ``best-run.png``,
``best-run-model-metrics.png``, ``optuna-dashboard.png``, ``optuna-dashboard-importances.png``.
Slow: ``pytest -m slow``.
"""

import json
import re
import subprocess
import sys
import time
import urllib.request

import pandas as pd
import pytest
from analysis_study import STUDY, environment, small_study
from mlflow.tracking import MlflowClient

from analysis.loading import find_study
from analysis.report import format_value
from experiments.tracking import EPOCH_METRICS
from tests.chromium import Browser, render
from tests.services import MlflowServer, OptunaDashboard

pytestmark = pytest.mark.slow

PROBE = """<script>
window.addEventListener('load', () => {
  const images = [...document.images];
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'));
  const page = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > page + 1)
    .map(e => e.tagName + (e.className ? '.' + e.className : '')).slice(0, 10);
  const out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify({images: images.length, broken, wide, scroll: document.documentElement.scrollWidth,
                                    page});
  document.body.appendChild(out);
});
</script>"""
# The MLflow UI as a user leaves it after one click each: the Model training view (MLflow 3 opens in
# GenAI's), the assistant panel closed (it opens by itself on a first visit from this machine)
MLFLOW_UI_STORAGE = {"mlflow.workflowType_v1": '"machine_learning"', "mlflow.assistant.panelOpen_v1": "false",
                     "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true"}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return small_study(tmp_path_factory)


@pytest.fixture(scope="module")
def report_path(study):
    proc = subprocess.run([sys.executable, "-m", "analysis.report", "--top-k", "2", "--seeds", "1", "--grid", "7",
                           "--no-log"], cwd=study.folder, capture_output=True, text=True, timeout=600,
                          env=environment())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return study.folder / proc.stdout.strip().splitlines()[-1]


@pytest.fixture()
def browser():
    opened = Browser()
    try:
        yield opened
    finally:
        opened.close()


def test_the_report_loads_every_image_and_fits_a_laptop(report_path, tmp_path):
    probed = report_path.with_name("probe.html")
    probed.write_text(report_path.read_text().replace("</body>", PROBE + "</body>"))
    for width in (1280, 1024):  # a laptop: nothing sticks out; a narrower window: a wide table scrolls in its box
        dom = render(probed.as_uri(), dom=True, width=width)
        found = json.loads(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S).group(1).replace("&quot;", '"'))
        assert found["images"] >= 8 and found["broken"] == [], found
        assert found["scroll"] <= found["page"], found  # the page itself never scrolls sideways
        assert width < 1280 or found["wide"] == [], found
    render(report_path.as_uri(), screenshot=tmp_path / "report.png")
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_the_mlflow_ui_shows_the_parent_and_the_best_trials_run_led_by_its_curves(study, browser, tmp_path):
    record = find_study(STUDY, study.tracking_uri)
    client = MlflowClient(study.tracking_uri)
    best = client.search_runs([record.experiment_id], f"tags.`mlflow.parentRunId` = '{record.parent_run_id}' "
                              "and tags.best = 'true'")
    assert len(best) == 1
    run = best[0]
    number = run.data.tags["optuna.trial_number"]
    server = MlflowServer(study.tracking_uri, tmp_path)
    try:
        pages = f"{server.wait()}/#/experiments/{record.experiment_id}/runs"
        browser.open(f"{pages}/{record.parent_run_id}", MLFLOW_UI_STORAGE)
        browser.wait_for(f"document.body.innerText.includes('Best: trial {number}')")  # the description
        assert STUDY in browser.text() and run.info.run_name in browser.text()  # named, its child runs listed
        browser.screenshot(tmp_path / "parent-run.png")

        browser.open(f"{pages}/{run.info.run_id}")
        browser.wait_for(f"document.body.innerText.includes('{run.info.run_name}') && "
                         "document.body.innerText.includes('outcome')")
        shown = browser.text()
        assert "best" in shown and "test_accuracy" in shown  # its tags: the winner, its final numbers
        browser.screenshot(tmp_path / "best-run.png")

        browser.open(f"{pages}/{run.info.run_id}/model-metrics")
        curves = sorted(EPOCH_METRICS)
        browser.wait_for("document.body.innerText.includes('Add chart')")
        titles = [line for line in browser.text().splitlines() if line in {*curves, "value"}]
        assert titles == [*curves, "value"], titles  # the curves first, the objective's one value last
        assert re.search(r"Model metrics\s*\(6\)", browser.text())  # no one-step charts of final numbers
        browser.screenshot(tmp_path / "best-run-model-metrics.png")
    finally:
        server.stop()
    for name in ("parent-run.png", "best-run.png", "best-run-model-metrics.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name


def _get(url: str):
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.loads(answer.read())


def _report_importances(report_path) -> pd.DataFrame:
    """The importances the report shows: its table (``param``, ``fanova`` as printed) and its CSV beside it."""
    page = report_path.read_text()
    section = page[page.index("<h2>Parameter importances</h2>"):]
    section = section[:section.index("</table>")]
    shown = dict(re.findall(r"<tr>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>", section))
    frame = pd.read_csv(report_path.parent / "param_importances.csv")
    frame["shown"] = frame["param"].map(shown)
    return frame


def test_one_studys_importances_are_the_same_in_the_artifact_the_report_and_optuna_dashboard(
        study, report_path, browser, tmp_path):
    record = find_study(STUDY, study.tracking_uri)
    client = MlflowClient(study.tracking_uri)
    artifact = pd.read_csv(client.download_artifacts(record.parent_run_id, "plots/param_importances.csv",
                                                     str(tmp_path)))
    report = _report_importances(report_path)
    dashboard = OptunaDashboard(study.folder)
    try:
        url = dashboard.wait()
        ids = {s["study_name"]: s["study_id"] for s in _get(url + "/api/studies")["study_summaries"]}
        found = _get(f"{url}/api/studies/{ids[STUDY]}/param_importances")["param_importances"][0]
        shown = {p["name"]: p["importance"] for p in found}
        browser.open(f"{url}/dashboard/studies/{ids[STUDY]}")
        browser.wait_for(f"document.body.innerText.includes('{STUDY}') && "
                         "document.querySelectorAll('.js-plotly-plot').length > 0", settle=3)
        browser.screenshot(tmp_path / "optuna-dashboard.png")
        assert browser.evaluate("[...document.querySelectorAll('h6, h5, h4, h3, h2')].filter(h => "
                                "h.textContent.trim() === 'Hyperparameter Importance').map(h => "
                                "(h.scrollIntoView(), true)).length") == 1  # its own importances, on the same page
        time.sleep(1)
        browser.screenshot(tmp_path / "optuna-dashboard-importances.png")
    finally:
        dashboard.stop()
    table = artifact.merge(report, on="param", suffixes=("", "_report"))
    table["dashboard"] = table["param"].map(shown)
    lines = [f"study {STUDY}: importances of its {len(table)} searched parameters in three places",
             f"{'param':<14}{'artifact fanova':>16}{'report fanova':>15}{'report shows':>14}{'artifact ped':>14}"
             f"{'report ped':>12}{'dashboard':>11}   fanova min-max (5 forests)"]
    lines += [f"{r.param:<14}{r.fanova:>16.4f}{r.fanova_report:>15.4f}{r.shown:>14}{r.ped_anova:>14.4f}"
              f"{r.ped_anova_report:>12.4f}{r.dashboard:>11.4f}   {r.fanova_min:.2f}-{r.fanova_max:.2f}"
              for r in table.itertuples()]
    (tmp_path / "importances.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    assert len(table) == len(artifact) == len(report) == len(shown) == len(record.searched)
    assert table["fanova_report"].tolist() == pytest.approx(table["fanova"].tolist(), rel=1e-12, abs=1e-15)
    assert table["shown"].tolist() == [format_value(v) for v in table["fanova"]]  # the report's table, as printed
    assert table["ped_anova_report"].tolist() == pytest.approx(table["ped_anova"].tolist(), rel=1e-12)
    # optuna-dashboard computes its own, with PED-ANOVA: our ped_anova column, not the fANOVA one
    assert table["dashboard"].tolist() == pytest.approx(table["ped_anova"].tolist(), rel=1e-9)
    assert (tmp_path / "optuna-dashboard.png").stat().st_size > 10_000
