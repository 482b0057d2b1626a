"""`ctxeval report`: real PNGs carrying exactly the series they draw, and one self-contained HTML page
that a headless Chromium renders with every plot decoded."""
from __future__ import annotations

import base64
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import IN_CI
from evaluator.analysis import plots
from evaluator.analysis.loading import load_run
from evaluator.analysis.report import write_report
from evaluator.cli import app
from test_compare import make_result, wilson, write_run

AGENT = {"bundle": "toy", "mode": "controller", "model": "scripted:hill_climb"}
ODD = "short<i>&'x'"  # a policy name that must come out escaped


def episodes() -> dict[str, list[dict[str, Any]]]:
    """Two toy arms in two runs and a minimised nomad arm, with hand-picked values."""
    return {
        "run-full": [
            make_result("run-full", "full_history", 0, 0.81, True, prompt_tokens=3000, completion_tokens=200,
                        cost_usd=0.03, context_tokens=[100, 200, 300], iterations=[(0, 0.70), (1, 0.68), (2, 0.80)]),
            make_result("run-full", "full_history", 1, 0.77, False, prompt_tokens=2000, completion_tokens=100,
                        summarizer_tokens=50, cost_usd=0.02, context_tokens=[100, 220],
                        iterations=[(0, 0.70), (1, None), (2, 0.75), (3, 0.90)]),
        ],
        "run-short": [
            make_result("run-short", ODD, 0, 0.79, True, prompt_tokens=1500, completion_tokens=100, cost_usd=0.01,
                        context_tokens=[100, 150, 160], full_history_tokens=[100, 200, 300],
                        iterations=[(1, 0.72), (2, 0.71)]),
            make_result("run-short", ODD, 1, 0.80, True, prompt_tokens=1800, completion_tokens=120, cost_usd=0.012,
                        context_tokens=[100, 150, 170, 180], full_history_tokens=[100, 220, 330, 450],
                        iterations=[(0, 0.70), (1, 0.74)]),
        ],
        "run-nomad": [
            make_result("run-nomad", "full_history", 0, 0.055, True, bundle="nomad", direction="minimize",
                        metric="mean_rmsle", baseline=0.06807, prompt_tokens=900, completion_tokens=100,
                        cost_usd=0.005, context_tokens=[50, 60], iterations=[(0, 0.07), (1, 0.08), (2, 0.05)],
                        medal="gold"),
        ],
    }


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for run_id, results in episodes().items():
        write_run(root, run_id, results)
    runs = [load_run(root / run_id) for run_id in episodes()]
    assert all(run.invalid == [] for run in runs)
    return write_report(runs, root / "report")


def line(policy: str, bundle: str = "toy", **values) -> dict[str, Any]:
    return {**AGENT, "bundle": bundle, "policy": policy, "label": policy, **values}


# What each plot must show, worked out by hand from episodes().
EXPECTED = {
    "score_by_iteration": {"plot": "score_by_iteration", "panels": [
        {"bundle": "nomad", "metric": "mean_rmsle", "direction": "minimize", "baseline": 0.06807, "lines": [
            line("full_history", "nomad", x=[0, 1, 2], y=[0.07, 0.07, 0.05], n=[1, 1, 1])]},  # lower is better
        {"bundle": "toy", "metric": "accuracy", "direction": "maximize", "baseline": 0.788, "lines": [
            # s0 best so far 0.70 0.70 0.80 (0.80 carried); s1 0.70 0.70 (failed run) 0.75 0.90
            line("full_history", x=[0, 1, 2, 3], y=[0.70, 0.70, 0.775, 0.85], n=[2, 2, 2, 2]),
            # s0 has no baseline (iteration 0): the first point is s1's alone
            line(ODD, x=[0, 1, 2], y=[0.70, 0.73, 0.73], n=[1, 2, 2])]},
    ]},
    "context_by_call": {"plot": "context_by_call", "panels": [
        {"bundle": "nomad", "metric": "mean_rmsle", "direction": "minimize", "lines": [
            line("full_history", "nomad", x=[1, 2], y=[50, 60], full_history=[50, 60], n=[1, 1])]},
        {"bundle": "toy", "metric": "accuracy", "direction": "maximize", "lines": [
            line("full_history", x=[1, 2, 3], y=[100, 210, 300], full_history=[100, 210, 300], n=[2, 2, 1]),
            line(ODD, x=[1, 2, 3, 4], y=[100, 150, 165, 180], full_history=[100, 210, 315, 450], n=[2, 2, 2, 1])]},
    ]},
    "tokens_vs_score": {"plot": "tokens_vs_score", "panels": [
        {"bundle": "nomad", "metric": "mean_rmsle", "direction": "minimize", "groups": [
            {"policy": "full_history", "x": [1000], "y": [0.055],
             "episodes": ["run-nomad/nomad-controller-full_history-s0"]}]},
        {"bundle": "toy", "metric": "accuracy", "direction": "maximize", "groups": [
            {"policy": "full_history", "x": [3200, 2150], "y": [0.81, 0.77],
             "episodes": ["run-full/toy-controller-full_history-s0", "run-full/toy-controller-full_history-s1"]},
            {"policy": ODD, "x": [1600, 1920], "y": [0.79, 0.80],
             "episodes": ["run-short/toy-controller-short_i___x_-s0", "run-short/toy-controller-short_i___x_-s1"]}]},
    ]},
    "cost_vs_success": {"plot": "cost_vs_success", "panels": [
        {"bundle": "nomad", "metric": "mean_rmsle", "direction": "minimize", "points": [
            line("full_history", "nomad", x=0.005, **dict(zip(("y", "y_low", "y_high"), wilson(1, 1))), n=1)]},
        {"bundle": "toy", "metric": "accuracy", "direction": "maximize", "points": [
            line("full_history", x=0.025, **dict(zip(("y", "y_low", "y_high"), wilson(1, 2))), n=2),
            line(ODD, x=0.011, **dict(zip(("y", "y_low", "y_high"), wilson(2, 2))), n=2)]},
    ]},
}


def rounded(value: Any) -> Any:
    """Floats to 9 digits, recursively, so computed means compare equal to the hand-worked ones."""
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def assert_real_plot(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert width >= 600 and height >= 400
        grey = image.convert("L")
        low, high = grey.getextrema()
        assert high - low > 150  # dark ink on a light background, not a blank canvas
        assert len(image.convert("RGB").getcolors(maxcolors=1_000_000)) > 20  # lines, text, legend colours


# -- plots ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", plots.PLOTS)
def test_each_plot_is_a_real_png_carrying_the_expected_series(report, name):
    png = report.parent / f"{name}.png"
    assert_real_plot(png)
    assert rounded(plots.read_series(png)) == rounded(EXPECTED[name])


def test_the_lines_drawn_are_the_series(report):
    """The figure's own artists hold exactly the series' values (the chunk is not a separate story)."""
    colours = plots._colours(["full_history", ODD])
    series = plots.read_series(report.parent / "context_by_call.png")
    figure = plots.DRAW["context_by_call"](series, colours)
    drawn = {(ax.get_title(), l.get_label()): (list(l.get_xdata()), list(l.get_ydata()))
             for ax in figure.axes for l in ax.get_lines()}
    for panel in series["panels"]:
        for s in panel["lines"]:
            assert drawn[(panel["bundle"], s["label"])] == (s["x"], s["y"])
            assert drawn[(panel["bundle"], f"{s['label']}: full history")] == (s["x"], s["full_history"])
    plots._pyplot().close(figure)

    series = plots.read_series(report.parent / "tokens_vs_score.png")
    figure = plots.DRAW["tokens_vs_score"](series, colours)
    for ax, panel in zip(figure.axes, series["panels"]):
        offsets = [c.get_offsets().tolist() for c in ax.collections]
        assert offsets == [[list(p) for p in zip(g["x"], g["y"])] for g in panel["groups"]]
    plots._pyplot().close(figure)


# -- the HTML ---------------------------------------------------------------------------------------

class Page(HTMLParser):
    """What a test needs of a page: images, tables and their rows, body attributes, every URL."""

    def __init__(self, text: str):
        super().__init__()
        self.images: list[str] = []
        self.tables: dict[str, int] = {}
        self.body: dict[str, str] = {}
        self.urls: list[str] = []
        self.tags: set[str] = set()
        self._table: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        self.urls += [v or "" for k, v in attrs.items() if k in ("src", "href", "action", "srcset", "poster")]
        if tag == "img":
            self.images.append(attrs.get("src") or "")
        elif tag == "body":
            self.body = {k: v or "" for k, v in attrs.items()}
        elif tag == "table":
            self._table = attrs.get("class", "")
            self.tables[self._table] = 0
        elif tag == "tr" and self._table is not None:
            self.tables[self._table] += 1

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None


def test_the_html_is_self_contained_and_escaped(report):
    text = report.read_text()
    page = Page(text)
    assert "http://" not in text and "https://" not in text
    assert page.urls and all(url.startswith("data:image/png;base64,") for url in page.urls)
    assert "link" not in page.tags and "iframe" not in page.tags
    assert len(page.images) == len(plots.PLOTS)
    for src, name in zip(page.images, plots.PLOTS):
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]) == (report.parent / f"{name}.png").read_bytes()
    # tables: header + one row per run / arm / comparison
    assert page.tables == {"runs": 1 + 3, "arms": 1 + 3, "comparisons": 1 + 1}
    assert "holm-bonferroni" in text
    assert "<th>medals</th>" in text and "gold: 1" in text  # nomad's grader awards medals
    assert "short&lt;i&gt;&amp;&#x27;x&#x27;" in text and ODD not in text and "i" not in page.tags
    assert "script" in page.tags and "imagesLoaded" in text


# -- in a browser -----------------------------------------------------------------------------------

def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if IN_CI:
            pytest.fail("CI=true but chromium is not installed: the browser test must run in CI")
        pytest.skip("chromium is not installed (outside CI this is a skip)")
    return path


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
               f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def test_the_report_renders_in_headless_chromium(report, tmp_path):
    url = report.resolve().as_uri()
    dom = Page(run_chromium(tmp_path, "--dump-dom", url).stdout)
    assert dom.body.get("data-images-loaded") == str(len(plots.PLOTS))  # every plot decoded
    assert dom.tables == {"runs": 4, "arms": 4, "comparisons": 2}

    shot = tmp_path / "shot.png"
    run_chromium(tmp_path, "--window-size=1280,2000", f"--screenshot={shot}", url)
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.size == (1280, 2000)
        grey = image.convert("L")
        assert grey.getextrema()[1] - grey.getextrema()[0] > 150
        dark = sum(count for value, count in enumerate(grey.histogram()) if value < 128)
        assert dark > 0.005 * 1280 * 2000  # text, tables and plots drew something


# -- the command ------------------------------------------------------------------------------------

def test_cli_report_writes_to_the_run_folder_by_default(tmp_path):
    write_run(tmp_path, "r1", episodes()["run-full"])
    result = CliRunner().invoke(app, ["report", "r1"], env={"CTXEVAL_RUNS_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    out = tmp_path / "r1" / "report"
    assert sorted(p.name for p in out.iterdir()) == sorted([*(f"{n}.png" for n in plots.PLOTS), "report.html"])
    assert re.search(r"wrote .*report\.html", result.stderr)

    missing = CliRunner().invoke(app, ["report", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "error:" in missing.stderr and "Traceback" not in missing.output
