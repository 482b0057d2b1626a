"""The report's policy plots: what each context policy kept at every call (context maps), how well
facts survive it (probe recall by distance) and what it costs for what it achieves (the cost–success
frontier). Same contract as plots.py: a JSON-able series first, drawn from exactly that series, which
the PNG carries in its SERIES_KEY text chunk. A plot whose data do not exist is not drawn at all
(`has_data`): results without context maps give no context-map plot, results without answered
probes no retention plot.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ..episode.probe_recall import BUCKETS
from . import stats
from .loading import ArmKey, bundle_targets, group_by_arm, total_tokens
from .plot_common import Results, arm_labels, by_bundle, empty, figure, panel_head, pyplot
from .probes import arm_probe_recall

POLICY_PLOTS = ("context_map", "retention", "cost_frontier")
STATES = "KMSD"  # the order of the colour scale
STATE_NAMES = {"K": "K kept whole", "M": "M masked / cleared / truncated", "S": "S summarised (lead message)",
               "D": "D dropped"}
STATE_COLOURS = {"K": "#2da44e", "M": "#e3b341", "S": "#54aeff", "D": "#cf222e"}
MAP_COLUMNS = 3  # context maps per row
TOKENS_NOTE = "prompt + completion + summarizer; probe tokens excluded"
DODGE = 0.08  # horizontal offset between policies on the categorical distance axis


# -- series ---------------------------------------------------------------------------------------

def _representative(group: Results) -> dict[str, Any] | None:
    """The arm's episode with the lowest seed among those that recorded context maps."""
    mapped = [r for r in group if (r["metrics"].get("context_maps") or [])]
    return min(mapped, key=lambda r: (r["seed"], r.get("run_id", ""), r["episode_id"]), default=None)


def _arm_label(key: ArmKey, several_agents: bool, several_bundles: bool) -> str:
    parts = [key.bundle] if several_bundles else []
    parts += [key.mode, key.model] if several_agents else []
    return f"{key.policy} ({', '.join(parts)})" if parts else key.policy


def context_map_series(results: Results) -> dict[str, Any]:
    """Per arm, the context maps of one representative episode (the lowest seed): the states of
    every history turn (K, M, S, D) at every agent model call."""
    chosen = [(key, episode) for key, group in group_by_arm(results).items()
              if (episode := _representative(group)) is not None]
    several_agents = len({(k.mode, k.model) for k, _ in chosen}) > 1
    several_bundles = len({k.bundle for k, _ in chosen}) > 1
    maps = []
    for key, episode in chosen:
        records = sorted(episode["metrics"]["context_maps"], key=lambda m: m["call"])
        maps.append({"label": _arm_label(key, several_agents, several_bundles), **key.as_record(),
                     "episode": f"{episode['run_id']}/{episode['episode_id']}", "seed": episode["seed"],
                     "calls": [m["call"] for m in records], "states": [m["states"] for m in records],
                     "turns": max(len(m["states"]) for m in records)})
    return {"plot": "context_map", "states": STATE_NAMES, "maps": maps}


def retention_series(results: Results) -> dict[str, Any]:
    """Per arm, probe recall (correct / answered, pooled over every episode's answered probes) in
    each distance bucket (calls between plant and ask), with Wilson 95 % intervals: the arm's
    `probe_recall.by_distance` of compare.json, drawn."""
    targets, panels = bundle_targets(results), []
    for bundle, arms in by_bundle(results).items():
        labels, lines = arm_labels(list(arms)), []
        for key, group in arms.items():
            by_distance = (arm_probe_recall(group) or {}).get("by_distance") or {}
            x = [b for b in BUCKETS if b in by_distance]
            if not x:
                continue
            rates = [by_distance[b]["recall"] for b in x]
            lines.append({"label": labels[key], **key.as_record(), "x": x, "y": [r["estimate"] for r in rates],
                          "y_low": [r["low"] for r in rates], "y_high": [r["high"] for r in rates],
                          "answered": [by_distance[b]["answered"] for b in x],
                          "correct": [by_distance[b]["correct"] for b in x]})
        if lines:
            panels.append({**panel_head(bundle, targets[bundle]), "lines": lines})
    return {"plot": "retention", "buckets": list(BUCKETS), "panels": panels}


def pareto_front(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points no other point dominates (as few or fewer tokens and as high or higher a success
    rate, one of them strictly), by tokens ascending."""
    def dominated(p: dict[str, Any]) -> bool:
        return any(q["x"] <= p["x"] and q["y"] >= p["y"] and (q["x"] < p["x"] or q["y"] > p["y"]) for q in points)
    return sorted((p for p in points if not dominated(p)), key=lambda p: (p["x"], -p["y"]))


def cost_frontier_series(results: Results) -> dict[str, Any]:
    """Per arm: mean total tokens per episode (prompt + completion + summarizer, with a percentile
    bootstrap interval) against the success rate (Wilson interval), and the Pareto frontier."""
    targets, panels = bundle_targets(results), []
    for bundle, arms in by_bundle(results).items():
        labels, points = arm_labels(list(arms)), []
        for key, group in arms.items():
            tokens = stats.bootstrap_mean([float(total_tokens(r)) for r in group])
            rate = stats.wilson_interval(sum(1 for r in group if r["success"]), len(group))
            points.append({"label": labels[key], **key.as_record(), "x": tokens.estimate, "x_low": tokens.low,
                           "x_high": tokens.high, "y": rate.estimate, "y_low": rate.low, "y_high": rate.high,
                           "n": len(group)})
        front = pareto_front(points)
        for point in points:
            point["pareto"] = any(point is p for p in front)
        panels.append({**panel_head(bundle, targets[bundle]), "points": points,
                       "frontier": [p["label"] for p in front]})
    return {"plot": "cost_frontier", "tokens": TOKENS_NOTE, "panels": panels}


SERIES: dict[str, Callable[[Results], dict[str, Any]]] = {
    "context_map": context_map_series, "retention": retention_series, "cost_frontier": cost_frontier_series,
}


def has_data(series: dict[str, Any]) -> bool:
    """Whether a policy plot has anything to draw."""
    if series["plot"] == "context_map":
        return bool(series["maps"])
    return any(panel.get("lines") or panel.get("points") for panel in series["panels"])


# -- drawing --------------------------------------------------------------------------------------

def state_matrix(entry: dict[str, Any]) -> np.ndarray:
    """Rows = calls (row i is call i + 1), columns = history turns; values index STATES (NaN: the turn
    did not exist yet, or the call has no map; one blank column when no call had a turn yet)."""
    matrix = np.full((max(entry["calls"]), max(1, entry["turns"])), np.nan)
    for call, states in zip(entry["calls"], entry["states"]):
        matrix[call - 1, :len(states)] = [STATES.index(s) for s in states]
    return matrix


def _draw_context_map(series: dict[str, Any], colours: dict[str, Any]):
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch
    plt = pyplot()
    maps = series["maps"]
    columns = max(1, min(MAP_COLUMNS, len(maps)))
    rows = max(1, math.ceil(len(maps) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 4.2 * rows + 0.8), squeeze=False, dpi=110,
                             layout="constrained")
    fig.suptitle("Context map per arm: the state of every history turn at every model call "
                 "(representative episode: lowest seed)", fontsize=13)
    cmap = ListedColormap([STATE_COLOURS[s] for s in STATES]).with_extremes(bad="white")  # white: no turn yet
    for ax, entry in zip(axes.flat, maps):
        matrix = state_matrix(entry)
        ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, vmin=-0.5, vmax=len(STATES) - 0.5, origin="lower",
                  aspect="auto", interpolation="nearest",
                  extent=(0.5, matrix.shape[1] + 0.5, 0.5, matrix.shape[0] + 0.5))
        ax.set(title=f"{entry['label']}\n{entry['episode']}", xlabel="history turn (oldest first)",
               ylabel="model call")
        ax.title.set_fontsize(9)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.yaxis.get_major_locator().set_params(integer=True)
    for ax in list(axes.flat)[len(maps):]:
        ax.axis("off")
    if not maps:
        empty(axes[0][0], "no context maps recorded")
    handles = [Patch(facecolor=STATE_COLOURS[s], edgecolor="black", label=series["states"][s]) for s in STATES]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(STATES), fontsize=9)
    return fig


def _draw_retention(series: dict[str, Any], colours: dict[str, Any]):
    fig, axes = figure(series["panels"], "Probe recall by plant-to-ask distance\n"
                                         "(answered probes; 95 % Wilson interval)")
    buckets = series["buckets"]
    for ax, panel in zip(axes, series["panels"]):
        count = len(panel["lines"])
        for i, line in enumerate(panel["lines"]):
            x = [buckets.index(b) + (i - (count - 1) / 2) * DODGE for b in line["x"]]
            below = [y - low for y, low in zip(line["y"], line["y_low"])]
            above = [high - y for y, high in zip(line["y"], line["y_high"])]
            ax.errorbar(x, line["y"], yerr=[below, above], fmt="o", linestyle=":", linewidth=1, capsize=3,
                        color=colours[line["policy"]], label=f"{line['label']} (n={sum(line['answered'])})")
        ax.set_xticks(range(len(buckets)), buckets)
        ax.set(title=panel["bundle"], xlabel="distance (model calls from plant to ask)", ylabel="probe recall",
               ylim=(-0.05, 1.1), xlim=(-0.5, len(buckets) - 0.5))
    return fig


def _draw_cost_frontier(series: dict[str, Any], colours: dict[str, Any]):
    title = (f"Cost–success frontier: mean total tokens per episode (95 % bootstrap)\nagainst success rate "
             f"(95 % Wilson)\n[{series['tokens']}]")
    fig, axes = figure(series["panels"], title)
    for ax, panel in zip(axes, series["panels"]):
        for point in panel["points"]:
            yerr = [[point["y"] - point["y_low"]], [point["y_high"] - point["y"]]]
            xerr = None if point["x_low"] is None else [[point["x"] - point["x_low"]], [point["x_high"] - point["x"]]]
            ax.errorbar([point["x"]], [point["y"]], xerr=xerr, yerr=yerr, fmt="D" if point["pareto"] else "o",
                        capsize=4, color=colours[point["policy"]], label=f"{point['label']} (n={point['n']})")
        front = {p["label"]: p for p in panel["points"]}
        xs, ys = [front[label]["x"] for label in panel["frontier"]], [front[label]["y"] for label in panel["frontier"]]
        if len(xs) > 1:  # one optimal arm is its own frontier (its diamond)
            ax.plot(xs, ys, drawstyle="steps-post", color="black", linestyle="--", linewidth=1, label="Pareto frontier")
        ax.margins(x=0.15)
        ax.set(title=panel["bundle"], xlabel="mean total tokens per episode", ylabel="success rate", ylim=(-0.05, 1.1))
    return fig


DRAW = {"context_map": _draw_context_map, "retention": _draw_retention, "cost_frontier": _draw_cost_frontier}
