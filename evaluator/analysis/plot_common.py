"""What every report plot module shares: results grouped into one panel per bundle, the arms'
labels and colours, and the figure the panels are drawn on. Below plots.py and policy_plots.py
(plots.py's registry draws both kinds), so neither imports the other for these.
"""
from __future__ import annotations

from typing import Any

from .loading import ArmKey, BundleTarget, group_by_arm

Results = list[dict[str, Any]]


def by_bundle(results: Results) -> dict[str, dict[ArmKey, Results]]:
    """One panel per bundle: scores of different bundles are not on one scale."""
    panels: dict[str, dict[ArmKey, Results]] = {}
    for key, group in group_by_arm(results).items():
        panels.setdefault(key.bundle, {})[key] = group
    return panels


def arm_labels(arms: list[ArmKey]) -> dict[ArmKey, str]:
    """The policy name, plus the agent where one panel holds several agents."""
    several = len({(a.mode, a.model) for a in arms}) > 1
    return {a: f"{a.policy} ({a.mode}, {a.model})" if several else a.policy for a in arms}


def panel_head(bundle: str, target: BundleTarget) -> dict[str, Any]:
    return {"bundle": bundle, "metric": target.metric, "direction": target.direction}


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def colours(policies: list[str]) -> dict[str, Any]:
    """One distinct colour per policy: tab10 up to ten, tab20 up to twenty (the 13 shipped policies
    and the presets do not fit ten), cycling only beyond that."""
    plt = pyplot()
    names = sorted(set(policies))
    cmap, size = (plt.get_cmap("tab10"), 10) if len(names) <= 10 else (plt.get_cmap("tab20"), 20)
    return {p: cmap(i % size) for i, p in enumerate(names)}


def figure(panels: list[dict[str, Any]], title: str):
    """A figure with one axes per panel, side by side (one empty axes when there is no panel)."""
    plt = pyplot()
    count = max(1, len(panels))
    fig, axes = plt.subplots(1, count, figsize=(6.4 * count, 4.6), squeeze=False, dpi=110)
    fig.suptitle(title, fontsize=13)
    return fig, list(axes[0])


def empty(ax, message: str) -> None:
    """Say on the axes why it holds nothing."""
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="grey")
