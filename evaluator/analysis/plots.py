"""The report's plots. Each plot is computed as a JSON-able series first, then drawn from exactly that
series, and the series is stored in the PNG (text chunk SERIES_KEY) so what a plot shows can be checked.

One panel per bundle (scores of different bundles are not on one scale); one colour per policy.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import policy_plots, stats
from .loading import bundle_targets, group_by_arm, total_tokens
from .plot_common import Results, arm_labels, by_bundle, empty, figure, panel_head
from .plot_common import colours as _colours, pyplot as _pyplot  # noqa: F401  (these names: tests)

SERIES_KEY = "ctxeval:series"
PLOTS = ("score_by_iteration", "context_by_call", "tokens_vs_score", "cost_vs_success")


# -- series ---------------------------------------------------------------------------------------

def best_so_far(iterations: list[dict[str, Any]], upto: int, maximize: bool) -> float | None:
    """The best score among iterations numbered <= upto (None before the first score)."""
    scores = [i["score"] for i in iterations if i["iteration"] <= upto and i.get("score") is not None]
    if not scores:
        return None
    return max(scores) if maximize else min(scores)


def score_by_iteration_series(results: Results) -> dict[str, Any]:
    """Per arm, the mean best-so-far score at each iteration (0 = the starter baseline). An episode that
    stopped early keeps its final best; one without a score yet is left out of that point (n says how many).
    Where the direction is unknown, best means highest."""
    targets, panels = bundle_targets(results), []
    for bundle, arms in by_bundle(results).items():
        target, labels, lines = targets[bundle], arm_labels(list(arms)), []
        maximize = target.maximize is not False
        for key, group in arms.items():
            runs = [r["metrics"].get("iterations") or [] for r in group]
            numbers = sorted({i["iteration"] for its in runs for i in its})
            if not numbers:
                continue
            x, y, n = [], [], []
            for k in range(numbers[0], numbers[-1] + 1):
                values = [v for its in runs if (v := best_so_far(its, k, maximize)) is not None]
                if values:
                    x.append(k)
                    y.append(float(np.mean(values)))
                    n.append(len(values))
            lines.append({"label": labels[key], **key.as_record(), "x": x, "y": y, "n": n})
        baselines = {r.get("baseline") for group in arms.values() for r in group} - {None}
        panels.append({**panel_head(bundle, target),
                       "baseline": float(baselines.pop()) if len(baselines) == 1 else None, "lines": lines})
    return {"plot": "score_by_iteration", "panels": panels}


def context_by_call_series(results: Results) -> dict[str, Any]:
    """Per arm, mean context tokens sent at each LLM call (1-based), over the episodes that made that
    call, and the mean size the full history would have had."""
    targets, panels = bundle_targets(results), []
    for bundle, arms in by_bundle(results).items():
        labels, lines = arm_labels(list(arms)), []
        for key, group in arms.items():
            sent = [r["metrics"].get("context_tokens") or [] for r in group]
            full = [r["metrics"].get("full_history_tokens") or r["metrics"].get("context_tokens") or [] for r in group]
            calls = max((len(s) for s in sent), default=0)
            if not calls:
                continue
            x = list(range(1, calls + 1))
            lines.append({"label": labels[key], **key.as_record(), "x": x,
                          "y": [float(np.mean([s[i] for s in sent if len(s) > i])) for i in range(calls)],
                          "full_history": [float(np.mean([f[i] for f in full if len(f) > i])) for i in range(calls)],
                          "n": [sum(1 for s in sent if len(s) > i) for i in range(calls)]})
        panels.append({**panel_head(bundle, targets[bundle]), "lines": lines})
    return {"plot": "context_by_call", "panels": panels}


def tokens_vs_score_series(results: Results) -> dict[str, Any]:
    """Every scored episode: total tokens against graded score, grouped by policy."""
    targets, panels = bundle_targets(results), []
    for bundle, arms in by_bundle(results).items():
        groups: dict[str, dict[str, list]] = {}
        for key, group in arms.items():
            points = groups.setdefault(key.policy, {"policy": key.policy, "x": [], "y": [], "episodes": []})
            for r in group:
                if r.get("score") is not None:
                    points["x"].append(total_tokens(r))
                    points["y"].append(float(r["score"]))
                    points["episodes"].append(f"{r['run_id']}/{r['episode_id']}")
        panels.append({**panel_head(bundle, targets[bundle]), "groups": [groups[p] for p in sorted(groups)]})
    return {"plot": "tokens_vs_score", "panels": panels}


def cost_vs_success_series(results: Results) -> dict[str, Any]:
    """Per arm: mean cost (USD) against success rate with its Wilson interval."""
    targets, panels = bundle_targets(results), []
    for bundle, arms in by_bundle(results).items():
        labels, points = arm_labels(list(arms)), []
        for key, group in arms.items():
            successes = sum(1 for r in group if r["success"])
            rate = stats.wilson_interval(successes, len(group))
            points.append({"label": labels[key], **key.as_record(),
                           "x": float(np.mean([r["metrics"]["cost_usd"] for r in group])),
                           "y": rate.estimate, "y_low": rate.low, "y_high": rate.high, "n": len(group)})
        panels.append({**panel_head(bundle, targets[bundle]), "points": points})
    return {"plot": "cost_vs_success", "panels": panels}


SERIES: dict[str, Callable[[Results], dict[str, Any]]] = {
    "score_by_iteration": score_by_iteration_series, "context_by_call": context_by_call_series,
    "tokens_vs_score": tokens_vs_score_series, "cost_vs_success": cost_vs_success_series,
}


# -- drawing --------------------------------------------------------------------------------------

def _score_label(panel: dict[str, Any]) -> str:
    better = {"maximize": " (higher is better)", "minimize": " (lower is better)"}.get(panel["direction"] or "", "")
    return f"{panel['metric'] or 'score'}{better}"


def _draw_line_panels(series: dict[str, Any], colours: dict[str, Any], title: str, nothing: str, xlabel: str,
                      ylabel: Callable[[dict[str, Any]], str],
                      per_line: Callable[[Any, dict[str, Any], Any], None] | None = None,
                      per_panel: Callable[[Any, dict[str, Any]], None] | None = None):
    """One line per arm and panel over integer x (iterations, calls); `per_line` and `per_panel`
    add what a plot draws besides (after the arm's line, and after all of a panel's lines)."""
    fig, axes = figure(series["panels"], title)
    for ax, panel in zip(axes, series["panels"]):
        for line in panel["lines"]:
            colour = colours[line["policy"]]
            ax.plot(line["x"], line["y"], marker="o", color=colour, label=line["label"])
            if per_line:
                per_line(ax, line, colour)
        if per_panel:
            per_panel(ax, panel)
        if not panel["lines"]:
            empty(ax, nothing)
        ax.set(title=panel["bundle"], xlabel=xlabel, ylabel=ylabel(panel))
        ax.xaxis.get_major_locator().set_params(integer=True)
    return fig


def _draw_score_by_iteration(series: dict[str, Any], colours: dict[str, Any]):
    def baseline(ax: Any, panel: dict[str, Any]) -> None:
        if panel["baseline"] is not None:
            ax.axhline(panel["baseline"], color="grey", linestyle=":", label="bundle baseline (graded)")

    return _draw_line_panels(series, colours, "Best-so-far score by iteration (iteration 0 = starter baseline)",
                             "no iterations recorded", "iteration",
                             lambda panel: f"mean best-so-far {_score_label(panel)}", per_panel=baseline)


def _draw_context_by_call(series: dict[str, Any], colours: dict[str, Any]):
    def full_history(ax: Any, line: dict[str, Any], colour: Any) -> None:
        ax.plot(line["x"], line["full_history"], linestyle="--", color=colour, alpha=0.7,
                label=f"{line['label']}: full history")

    return _draw_line_panels(series, colours, "Context size by LLM call (solid: sent, dashed: full history)",
                             "no LLM calls recorded", "LLM call", lambda panel: "mean context tokens",
                             per_line=full_history)


def _draw_tokens_vs_score(series: dict[str, Any], colours: dict[str, Any]):
    fig, axes = figure(series["panels"], "Total tokens against graded score (one point per episode)")
    for ax, panel in zip(axes, series["panels"]):
        for group in panel["groups"]:
            ax.scatter(group["x"], group["y"], color=colours[group["policy"]], label=group["policy"], alpha=0.8,
                       edgecolors="black", linewidths=0.4)
        if not any(g["x"] for g in panel["groups"]):
            empty(ax, "no scored episodes")
        ax.margins(0.1)
        ax.set(title=panel["bundle"], xlabel="total tokens (prompt + completion + summarizer)",
               ylabel=_score_label(panel))
    return fig


def _draw_cost_vs_success(series: dict[str, Any], colours: dict[str, Any]):
    fig, axes = figure(series["panels"], "Mean cost against success rate (95 % Wilson interval)")
    for ax, panel in zip(axes, series["panels"]):
        for point in panel["points"]:
            below, above = point["y"] - point["y_low"], point["y_high"] - point["y"]
            ax.errorbar([point["x"]], [point["y"]], yerr=[[below], [above]],
                        fmt="o", capsize=4, color=colours[point["policy"]], label=f"{point['label']} (n={point['n']})")
        costs = [point["x"] for point in panel["points"]]
        if costs and max(costs) > 0:
            ax.margins(x=0.2)  # keep points and their error bars off the frame
            ax.set_xlim(left=max(ax.get_xlim()[0], -0.05 * max(costs)))  # no negative costs on the axis
        elif costs:
            ax.set_xlim(-0.05, 1.0)
            ax.text(0.5, 0.05, "every episode cost 0 USD", ha="center", transform=ax.transAxes, color="grey")
        ax.set(title=panel["bundle"], xlabel="mean cost per episode (USD)", ylabel="success rate", ylim=(-0.05, 1.1))
    return fig


DRAW = {"score_by_iteration": _draw_score_by_iteration, "context_by_call": _draw_context_by_call,
        "tokens_vs_score": _draw_tokens_vs_score, "cost_vs_success": _draw_cost_vs_success}


def draw(name: str, series: dict[str, Any], path: Path, colours: dict[str, Any]) -> Path:
    """Draw `series` to a PNG at `path`, carrying the series as JSON in its SERIES_KEY text chunk."""
    import io

    from ..atomic import write_bytes_atomic
    plt = _pyplot()
    with plt.rc_context({"text.parse_math": False}):  # a "$" in a policy name is text, not TeX
        fig = (DRAW.get(name) or policy_plots.DRAW[name])(series, colours)
        for ax in fig.axes:
            ax.grid(True, alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8, loc="best")
        if fig.get_layout_engine() is None:  # a figure may bring its own (constrained) layout
            fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", metadata={SERIES_KEY: json.dumps(series, sort_keys=True)})
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())
    path.chmod(0o644)
    return path


def write_plots(results: Results, out_dir: Path) -> dict[str, Path]:
    """Every plot of PLOTS as `<out_dir>/<name>.png`, then each policy plot (policy_plots.POLICY_PLOTS)
    whose data exist; a policy plot without data is not written (and a stale one is removed)."""
    colours = _colours([key.policy for key in group_by_arm(results)])
    written = {name: draw(name, SERIES[name](results), out_dir / f"{name}.png", colours) for name in PLOTS}
    for name in policy_plots.POLICY_PLOTS:
        series, path = policy_plots.SERIES[name](results), out_dir / f"{name}.png"
        if policy_plots.has_data(series):
            written[name] = draw(name, series, path, colours)
        else:
            path.unlink(missing_ok=True)
    return written


def read_series(path: Path) -> dict[str, Any]:
    """The series a PNG written by `draw` carries."""
    from PIL import Image
    with Image.open(path) as image:
        return json.loads(image.text[SERIES_KEY])
