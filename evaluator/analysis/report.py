"""One self-contained HTML report of one or more runs: tables, run metadata and the plots.

Self-contained means no external URL at all: CSS inline, PNGs as base64 data URIs, and a
Content-Security-Policy that would block anything else. Every text is escaped with html.escape.
"""
from __future__ import annotations

import base64
import html
from itertools import repeat
from pathlib import Path
from typing import Any, Iterable

from ..atomic import write_bytes_atomic
from .compare import compare_runs, pooled_results, verdict
from .loading import RunResults
from .plots import PLOTS, write_plots
from .policy_plots import POLICY_PLOTS, TOKENS_NOTE

ALL_PLOTS = (*PLOTS, *POLICY_PLOTS)  # the order of the page; policy plots only where their data exist

CAPTIONS = {
    "score_by_iteration": "Mean best-so-far score by iteration, per arm; iteration 0 is the starter baseline, "
                          "the dotted line the bundle's graded baseline.",
    "context_by_call": "Mean context tokens sent at each LLM call, per arm (solid), and the size the full "
                       "history would have had (dashed).",
    "tokens_vs_score": "Total tokens against graded score, one point per episode, one colour per policy.",
    "cost_vs_success": "Mean cost per episode against success rate, with 95 % Wilson intervals.",
    "context_map": "Context map of one episode per arm (its lowest seed): for every agent model call (y), the state "
                   "of every history turn (x) in the context the policy built — K kept whole, M masked, cleared or "
                   "truncated, S summarised or represented by a lead message, D dropped.",
    "retention": "Probe recall (correct / answered probes, over every episode) by the distance in model calls "
                 "between planting a fact and asking for it, per arm, with 95 % Wilson intervals.",
    "cost_frontier": f"Mean total tokens per episode ({TOKENS_NOTE}; 95 % percentile bootstrap) against success "
                     "rate (95 % Wilson), per arm; the dashed line joins the Pareto-optimal arms (diamonds).",
}

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1500px;
       padding: 0 1rem; color: #1f2328; line-height: 1.4; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #d0d7de; }
.meta { color: #59636e; font-size: .9rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .8rem; margin: .6rem 0; }
th, td { border: 1px solid #d0d7de; padding: .3rem .55rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.better td { background: #eef9f0; }
figure { margin: 1rem 0 2rem; } figure img { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
figcaption { color: #59636e; font-size: .9rem; }
.warn { color: #9a6700; }
"""

# Counts the plots that actually decoded (a headless browser test reads it from the DOM).
SCRIPT = """
window.addEventListener("load", function () {
  var loaded = Array.prototype.filter.call(document.images, function (img) { return img.naturalWidth > 0; });
  document.body.dataset.imagesLoaded = String(loaded.length);
});
"""

ARMS_NOTE = ("One arm per bundle × mode × model × policy, pooled over the runs. Success rates carry Wilson "
             "score intervals; means carry percentile bootstrap intervals.")

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def _e(value: Any) -> str:
    return html.escape("–" if value is None else str(value))


def _num(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}g}"


def _interval(record: dict[str, Any], digits: int = 4) -> str:
    text = _num(record["estimate"], digits)
    if record["low"] is not None:
        text += f" [{_num(record['low'], digits)}, {_num(record['high'], digits)}]"
    return text


def _table(headers: Iterable[str], rows: Iterable[Iterable[tuple[str, bool]]], cls: str,
           row_classes: Iterable[str] | None = None) -> str:
    """A table of (text, numeric) cells; texts are escaped here."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row, row_cls in zip(rows, row_classes or repeat("")):
        cells = "".join(f'<td class="num">{_e(t)}</td>' if num else f"<td>{_e(t)}</td>" for t, num in row)
        body.append(f'<tr class="{_e(row_cls)}">{cells}</tr>' if row_cls else f"<tr>{cells}</tr>")
    return (f'<div class="scroll"><table class="{_e(cls)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _runs_table(runs: list[dict[str, Any]]) -> str:
    headers = ["run", "created", "backend", "bundles", "modes", "models", "policies", "seeds", "episodes",
               "invalid", "ctxeval", "folder"]
    rows = [[(r["run_id"], False), (r["created_at"], False), (r["backend"], False), (", ".join(r["bundles"]), False),
             (", ".join(r["modes"]), False), (", ".join(r["models"]), False), (", ".join(r["policies"]), False),
             (", ".join(map(str, r["seeds"])), False), (r["episodes"], True), (len(r["invalid"]), True),
             (r["ctxeval_version"], False), (r["run_dir"], False)]
            for r in runs]
    return _table(headers, rows, "runs")


def _arms_table(arms: list[dict[str, Any]]) -> str:
    headers = ["bundle", "mode", "model", "policy", "n", "successes", "success rate [95 % Wilson]",
               "mean score [95 % bootstrap]", "mean total tokens [95 %]", "mean cost USD [95 %]",
               "mean LLM calls", "errors", "stop reasons"]
    medals = any(a["medals"] for a in arms)  # a column only where the grader awards medals
    headers += ["medals"] if medals else []
    rows = []
    for a in arms:
        key = a["arm"]
        arrow = {"maximize": "↑", "minimize": "↓"}.get(a["direction"] or "", "?")
        score_name = f"{a['metric'] or 'score'} ({arrow})"
        rows.append([(key["bundle"], False), (key["mode"], False), (key["model"], False), (key["policy"], False),
                     (a["n"], True), (a["successes"], True), (_interval(a["success_rate"], 3), True),
                     (f"{_interval(a['score'])} {score_name}", True), (_interval(a["total_tokens"], 5), True),
                     (_interval(a["cost_usd"], 3), True), (_num(a["llm_calls"], 3), True), (a["errors"], True),
                     (", ".join(f"{k}: {v}" for k, v in a["stop_reasons"].items()), False)])
        if medals:
            rows[-1].append((", ".join(f"{k}: {v}" for k, v in a["medals"].items()), False))
    return _table(headers, rows, "arms")


def _comparisons_table(comparisons: list[dict[str, Any]]) -> str:
    headers = ["bundle", "mode", "model", "policy a", "policy b", "pairs (seeds)", "mean score a", "mean score b",
               "a − b [95 % paired bootstrap]", "p score (sign-flip)", "p score adjusted", "successes a / b",
               "p success (McNemar)", "p success adjusted", "better"]
    rows, classes = [], []
    for c in comparisons:
        rows.append([(c["bundle"], False), (c["mode"], False), (c["model"], False), (c["policy_a"], False),
                     (c["policy_b"], False), (f"{c['pairs']} ({', '.join(map(str, c['seeds']))})", True),
                     (_num(c["mean_score_a"]), True), (_num(c["mean_score_b"]), True),
                     (_interval(c["score_difference"]), True), (_num(c["score_p"], 3), True),
                     (_num(c["score_p_adjusted"], 3), True), (f"{c['successes_a']} / {c['successes_b']}", True),
                     (_num(c["success_p"], 3), True), (_num(c["success_p_adjusted"], 3), True), (verdict(c), False)])
        classes.append("better" if c["significant"] else "")
    return _table(headers, rows, "comparisons", classes)


def _figure(name: str, png: Path) -> str:
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return (f'<figure id="{_e(name)}"><img src="data:image/png;base64,{data}" alt="{_e(CAPTIONS[name])}">'
            f"<figcaption>{_e(CAPTIONS[name])}</figcaption></figure>")


def render_html(document: dict[str, Any], pngs: dict[str, Path]) -> str:
    run_ids = ", ".join(r["run_id"] for r in document["runs"])
    correction = document["correction"]
    confidence = f"{document['confidence']:.0%}"
    meta = f"runs {run_ids} · generated {document['generated_at']} · {confidence} intervals"
    method = (f"Policies paired by seed within a bundle, mode and model (only seeds both ran). Score: paired "
              f"bootstrap interval of the mean difference and an exact sign-flip permutation test; success: "
              f"exact McNemar test. Multiple-comparison correction: {correction} (each test across all "
              f"comparisons); significant means adjusted p < {document['alpha']}.")
    warnings = "".join(f'<li class="warn">{_e(w)}</li>' for w in document["warnings"])
    comparisons = (_comparisons_table(document["comparisons"]) if document["comparisons"]
                   else "<p>No two policies share a bundle, mode and model: nothing to pair.</p>")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e('ctxeval report: ' + run_ids)}</title><style>{STYLE}</style>",
        f"<script>{SCRIPT}</script></head><body>",
        f"<h1>{_e('ctxeval report')}</h1>",
        f'<p class="meta">{_e(meta)}</p>',
        "<h2>Runs</h2>", _runs_table(document["runs"]),
        "<h2>Arms</h2>",
        f"<p>{_e(ARMS_NOTE)}</p>",
        _arms_table(document["arms"]),
        "<h2>Paired comparisons</h2>",
        f"<p>{_e(method)}</p>",
        f'<p class="correction" data-correction="{_e(correction)}">{_e("correction: " + correction)}</p>',
        comparisons,
        "<h2>Plots</h2>", *(_figure(name, pngs[name]) for name in ALL_PLOTS if name in pngs),
    ]
    if warnings:
        parts += ["<h2>Warnings</h2>", f"<ul>{warnings}</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(runs: list[RunResults], out_dir: Path) -> Path:
    """The plots as PNGs and report.html in `out_dir`; returns the HTML's path."""
    out_dir = Path(out_dir)
    document = compare_runs(runs)
    pngs = write_plots(pooled_results(runs), out_dir)
    path = out_dir / "report.html"
    write_bytes_atomic(path, render_html(document, pngs).encode("utf-8"))
    path.chmod(0o644)  # a report is for reading (the atomic write's temporary file is private)
    return path
