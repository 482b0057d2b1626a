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

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import IN_CI
from evaluator.analysis import plots, policy_plots
from evaluator.analysis.loading import load_run
from evaluator.analysis.report import ALL_PLOTS, write_report
from evaluator.cli import app
from test_compare import make_result, wilson, write_run

AGENT = {"bundle": "toy", "mode": "controller", "model": "scripted:hill_climb"}
ODD = "short<i>&'x'"  # a policy name that must come out escaped


def context_maps(*states: str, tokens: list[int], full: list[int]) -> list[dict[str, Any]]:
    return [{"call": i + 1, "states": s, "tokens": t, "full_tokens": f, "compression_ratio": round(t / f, 4)}
            for i, (s, t, f) in enumerate(zip(states, tokens, full))]


def probe(distance: int | None, correct: bool | None, status: str = "answered", asked: int = 9) -> dict[str, Any]:
    """A probe record (spec: Probe records in result.json)."""
    answered = status == "answered"
    return {"id": "leak_column", "decisive": True, "planted_call": None if distance is None else asked - distance,
            "asked_call": asked, "distance": distance, "status": status, "fact_in_context": True if answered else None,
            "answer": ("f23" if correct else "f7") if answered else None, "correct": correct if answered else None,
            "prompt_tokens": 40 if answered else None, "completion_tokens": 3 if answered else None,
            "cost_usd": 0.0 if answered else None}


def with_policy_data(result: dict[str, Any], maps: list[dict[str, Any]] | None = None,
                     probes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    if maps is not None:
        result["metrics"]["context_maps"] = maps
    if probes is not None:
        result["probes"] = probes
    return result


def episodes() -> dict[str, list[dict[str, Any]]]:
    """Two toy arms in two runs and a minimised nomad arm, with hand-picked values; context maps and
    probe records on some toy episodes (older results have neither)."""
    data = base_episodes()
    full0, full1 = data["run-full"]
    odd0, odd1 = data["run-short"]
    with_policy_data(full0, context_maps("K", "KK", "KKK", tokens=[100, 200, 300], full=[100, 200, 300]),
                     [probe(1, True), probe(2, True), probe(5, False), probe(None, None, "not_planted"),
                      probe(None, None, "not_asked")])
    with_policy_data(full1, context_maps("K", "DK", tokens=[100, 220], full=[100, 220]),
                     [probe(1, False), probe(3, True)])
    with_policy_data(odd0, probes=[probe(1, True), probe(40, False, asked=45)])  # no maps: an older result
    with_policy_data(odd1, context_maps("K", "MK", "SMK", "SSMK", tokens=[100, 150, 170, 180],
                                        full=[100, 220, 330, 450]))
    return data


def base_episodes() -> dict[str, list[dict[str, Any]]]:
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


def rates(*tallies: tuple[int, int]) -> dict[str, list[float]]:
    """y, y_low, y_high of (correct, answered) tallies: Wilson intervals worked out in test_compare."""
    values = [wilson(k, n) for k, n in tallies]
    return {"y": [v[0] for v in values], "y_low": [v[1] for v in values], "y_high": [v[2] for v in values]}


def point(policy: str, bundle: str = "toy", *, successes: int, n: int, **values) -> dict[str, Any]:
    return line(policy, bundle, **dict(zip(("y", "y_low", "y_high"), wilson(successes, n))), n=n, **values)


# The policy plots, worked out by hand from episodes() the same way.
EXPECTED_POLICY = {
    "context_map": {"plot": "context_map", "states": policy_plots.STATE_NAMES, "maps": [
        # the lowest seed of each arm with maps: full_history s0; the odd arm's s0 is an older result without any
        line("full_history", episode="run-full/toy-controller-full_history-s0", seed=0, calls=[1, 2, 3],
             states=["K", "KK", "KKK"], turns=3),
        line(ODD, episode="run-short/toy-controller-short_i___x_-s1", seed=1, calls=[1, 2, 3, 4],
             states=["K", "MK", "SMK", "SSMK"], turns=4)]},  # nomad recorded none: no map
    "retention": {"plot": "retention", "buckets": ["1", "2-3", "4-7", "8-15", "16-31", "32+"], "panels": [
        # answered probes only (not_planted / not_asked left out); nomad has no probes: no panel
        {"bundle": "toy", "metric": "accuracy", "direction": "maximize", "lines": [
            # distance 1: s0 right, s1 wrong; 2-3: 2 and 3, both right; 4-7: 5, wrong
            line("full_history", x=["1", "2-3", "4-7"], **rates((1, 2), (2, 2), (0, 1)), answered=[2, 2, 1],
                 correct=[1, 2, 0]),
            line(ODD, x=["1", "32+"], **rates((1, 1), (0, 1)), answered=[1, 1], correct=[1, 0])]}]},
    "cost_frontier": {"plot": "cost_frontier", "tokens": policy_plots.TOKENS_NOTE, "panels": [
        {"bundle": "nomad", "metric": "mean_rmsle", "direction": "minimize", "frontier": ["full_history"], "points": [
            point("full_history", "nomad", successes=1, n=1, x=1000, x_low=None, x_high=None, pareto=True)]},
        # two episodes: every bootstrap resample mean is a, (a+b)/2 or b, so the 95 % interval is [min, max]
        {"bundle": "toy", "metric": "accuracy", "direction": "maximize", "frontier": [ODD], "points": [
            point("full_history", successes=1, n=2, x=2675, x_low=2150, x_high=3200, pareto=False),
            # fewer tokens and more success: the odd arm alone is optimal
            point(ODD, successes=2, n=2, x=1760, x_low=1600, x_high=1920, pareto=True)]}]},
}
EXPECTED.update(EXPECTED_POLICY)


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

@pytest.mark.parametrize("name", ALL_PLOTS)
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


def test_the_policy_plots_draw_their_series(report):
    colours = plots._colours(["full_history", ODD])
    series = plots.read_series(report.parent / "context_map.png")
    figure = policy_plots.DRAW["context_map"](series, colours)
    images = [ax.images[0] for ax in figure.axes if ax.images]
    assert len(images) == len(series["maps"]) == 2
    nan = np.nan
    # K=0 M=1 S=2 D=3 by call (row) and turn (column); a turn not yet taken is blank (NaN)
    np.testing.assert_array_equal(policy_plots.state_matrix(series["maps"][1]),
                                  [[0, nan, nan, nan], [1, 0, nan, nan], [2, 1, 0, nan], [2, 2, 1, 0]])
    for image, entry in zip(images, series["maps"]):
        drawn, expected = image.get_array(), policy_plots.state_matrix(entry)
        np.testing.assert_array_equal(np.ma.getmaskarray(drawn), np.isnan(expected))  # blank exactly there
        np.testing.assert_array_equal(drawn.filled(-1), np.nan_to_num(expected, nan=-1))
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend == [policy_plots.STATE_NAMES[s] for s in "KMSD"]
    plots._pyplot().close(figure)

    for name in ("retention", "cost_frontier"):
        series = plots.read_series(report.parent / f"{name}.png")
        figure = policy_plots.DRAW[name](series, colours)
        for ax, panel in zip(figure.axes, series["panels"]):
            data = [(list(c.lines[0].get_xdata()), list(c.lines[0].get_ydata())) for c in ax.containers]
            if name == "retention":  # categorical x: the bucket's position, dodged a little per policy
                assert [y for _, y in data] == [line["y"] for line in panel["lines"]]
                assert [[round(x) for x in xs] for xs, _ in data] == \
                    [[series["buckets"].index(b) for b in line["x"]] for line in panel["lines"]]
            else:
                assert data == [([p["x"]], [p["y"]]) for p in panel["points"]]
        plots._pyplot().close(figure)


def test_the_cost_frontier_joins_the_pareto_optimal_arms():
    arms = {"a": (1000, [True, False]), "b": (2000, [True, True]), "c": (3000, [True, False]),
            "d": (1000, [False, False]), "e": (2000, [True, True])}  # c is dominated by b, d by a; e ties b
    results = [make_result("r", policy, seed, 0.8, success, prompt_tokens=tokens - 100, completion_tokens=100)
               for policy, (tokens, outcomes) in arms.items() for seed, success in enumerate(outcomes)]
    series = policy_plots.cost_frontier_series(results)
    [panel] = series["panels"]
    assert panel["frontier"] == ["a", "b", "e"]
    assert {p["policy"]: p["pareto"] for p in panel["points"]} == {"a": True, "b": True, "c": False, "d": False,
                                                                   "e": True}
    assert [(p["x"], p["x_low"], p["x_high"]) for p in panel["points"]] == [(t, t, t) for t, _ in arms.values()]
    figure = policy_plots.DRAW["cost_frontier"](series, plots._colours(list(arms)))
    [frontier] = [line for line in figure.axes[0].get_lines() if line.get_label() == "Pareto frontier"]
    assert (list(frontier.get_xdata()), list(frontier.get_ydata())) == ([1000, 2000, 2000], [0.5, 1.0, 1.0])
    assert frontier.get_drawstyle() == "steps-post"
    plots._pyplot().close(figure)


def test_policy_plots_appear_only_where_their_data_exist(tmp_path):
    """Older results (no context maps, no probes) or probes never answered: no map, no retention plot;
    the frontier needs only episodes. A report written again over one with them drops the stale PNGs."""
    first = episodes()["run-full"]
    write_run(tmp_path, "with", first)
    out = tmp_path / "out"
    write_report([load_run(tmp_path / "with")], out)
    assert {"context_map.png", "retention.png", "cost_frontier.png"} <= {p.name for p in out.iterdir()}

    older = base_episodes()["run-full"]
    older[0]["probes"] = [probe(None, None, "not_planted"), probe(None, None, "not_asked")]
    write_run(tmp_path, "without", older)
    html = write_report([load_run(tmp_path / "without")], out)
    names = [*plots.PLOTS, "cost_frontier"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*(f"{n}.png" for n in names), "report.html"])
    page = Page(html.read_text())
    assert len(page.images) == len(names)
    assert 'id="context_map"' not in html.read_text() and 'id="retention"' not in html.read_text()
    assert not policy_plots.has_data(policy_plots.retention_series(older))
    assert not policy_plots.has_data(policy_plots.context_map_series(older))


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
    assert len(page.images) == len(ALL_PLOTS)
    for src, name in zip(page.images, ALL_PLOTS):
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
    assert dom.body.get("data-images-loaded") == str(len(ALL_PLOTS))  # every plot decoded, the policy plots too
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
    assert sorted(p.name for p in out.iterdir()) == sorted([*(f"{n}.png" for n in ALL_PLOTS), "report.html"])
    assert re.search(r"wrote .*report\.html", result.stderr)

    missing = CliRunner().invoke(app, ["report", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "error:" in missing.stderr and "Traceback" not in missing.output


def test_every_policy_of_a_large_study_gets_its_own_colour():
    for count in (3, 10, 11, 20):
        names = [f"policy_{i:02d}" for i in range(count)]
        colours = plots._colours(names)
        assert len({tuple(colours[n]) for n in names}) == count, count
