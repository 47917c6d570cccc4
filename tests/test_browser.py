"""What a new user sees, in a real browser (headless Chromium, Debian's ``chromium``; .ci/run installs
it): the report's images all load and nothing is wider than the page; the MLflow UI's page of the
best trial's run renders and names the trial. Screenshots are kept in the test's temp dir
(``report.png``, ``best-run.png``, ``parent-run.png``). Slow: ``pytest -m slow``.

No WebDriver: the page is probed by a script added to a copy of it (the report), or read back as
Chromium renders it (``--dump-dom`` after the app has run, the MLflow UI).
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from analysis_study import STUDY, environment, small_study
from mlflow.tracking import MlflowClient

from analysis.loading import find_study
from tests.services import MlflowServer, in_ci

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


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "headless Chromium is missing: apt-get install -y chromium"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def _browse(url: str, *, dom: bool = False, screenshot: Path | None = None, width: int = 1280) -> str:
    """Chromium's rendering of ``url`` once its scripts have run: the DOM (``dom``) or a screenshot."""
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--window-size={width},900", "--virtual-time-budget=15000", "--run-all-compositor-stages-before-draw"]
    command += ["--dump-dom"] if dom else [f"--screenshot={screenshot}"]
    proc = subprocess.run([*command, url], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


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


def test_the_report_loads_every_image_and_fits_a_laptop(report_path, tmp_path):
    import json

    probed = report_path.with_name("probe.html")
    probed.write_text(report_path.read_text().replace("</body>", PROBE + "</body>"))
    for width in (1280, 1024):  # a laptop: nothing sticks out; a narrower window: a wide table scrolls in its box
        dom = _browse(probed.as_uri(), dom=True, width=width)
        found = json.loads(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S).group(1).replace("&quot;", '"'))
        assert found["images"] >= 8 and found["broken"] == [], found
        assert found["scroll"] <= found["page"], found  # the page itself never scrolls sideways
        assert width < 1280 or found["wide"] == [], found
    _browse(report_path.as_uri(), screenshot=tmp_path / "report.png")
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_the_mlflow_ui_shows_the_best_trials_run(study, tmp_path):
    record = find_study(STUDY, study.tracking_uri)
    client = MlflowClient(study.tracking_uri)
    best = client.search_runs([record.experiment_id], f"tags.`mlflow.parentRunId` = '{record.parent_run_id}' "
                              "and tags.best = 'true'")
    assert len(best) == 1
    run = best[0]
    server = MlflowServer(study.tracking_uri, tmp_path)
    try:
        url = server.wait()
        page = f"{url}/#/experiments/{record.experiment_id}/runs/{run.info.run_id}"
        dom = _browse(page, dom=True)
        assert run.info.run_name in dom, dom[-2000:]  # the page rendered, naming the trial
        assert "best" in dom
        _browse(page, screenshot=tmp_path / "best-run.png")
        _browse(f"{url}/#/experiments/{record.experiment_id}/runs/{record.parent_run_id}",
                screenshot=tmp_path / "parent-run.png")
        assert (tmp_path / "best-run.png").stat().st_size > 10_000
    finally:
        server.stop()
