"""Checks of what `run` wrote for the sample manifest: the command, summary.json, the selection,
the order, the two logs, the metrics and the refusal. The problem finders also serve the second
manifest. A check returns None when it passes, else why it fails."""

from __future__ import annotations

from typing import Any

from .common import METRICS, SAMPLE_MANIFEST, TOLERANCE, GraderError, tail
from .context import Context
from .expectations import Expected
from .results import RunOutput

REQUEST_KEYS = ("sequence", "experiment_id", "run_id", "prompt_id", "model", "temperature", "max_tokens",
                "system", "user")
RESPONSE_KEYS = ("sequence", "run_id", "prompt_id", "text", "stop_reason", "fact_coverage", "refused", "completed")
MAX_SHOWN = 5


def joined(problems: list[str], most: int = MAX_SHOWN) -> str | None:
    """The first problems, and how many more there are; None when there are none."""
    if not problems:
        return None
    return "; ".join(problems[:most]) + (f" (+{len(problems) - most} more)" if len(problems) > most else "")


def needs(run: RunOutput, *files: str) -> str | None:
    """Why the files of a run are unusable (with the run's failure), or None."""
    problems = [run.problems[f] for f in files if f in run.problems]
    if not problems:
        return None
    why = "; ".join(problems)
    return why if run.proc.ok else f"{why} (the run command failed: {run.proc.describe()})"


def is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def check_run_command(ctx: Context) -> str | None:
    run = ctx.sample_run
    if not run.proc.ok:
        return f"`run --config {SAMPLE_MANIFEST} --output-dir DIR` failed: {run.proc.describe()}"
    return None


def check_summary_written(ctx: Context) -> str | None:
    run = ctx.sample_run
    why = needs(run, "summary.json")
    if why:
        return why
    import jsonschema
    errors = sorted(jsonschema.Draft202012Validator(ctx.schema).iter_errors(run.summary), key=lambda e: e.path)
    if errors:
        shown = "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors[:3])
        return f"summary.json does not follow summary.schema.json ({len(errors)} error(s)): {tail(shown, 600)}"
    exp, s = ctx.expected, run.summary
    wrong = [f"{k} is {s.get(k)!r}, expected {getattr(exp, k)!r}" for k in ("experiment_id", "model", "max_tokens")
             if s.get(k) != getattr(exp, k)]
    if abs(float(s["temperature"]) - exp.temperature) > 1e-9:
        wrong.append(f"temperature is {s['temperature']!r}, expected {exp.temperature!r}")
    return ("summary.json: " + "; ".join(wrong)) if wrong else None


def summary_run_problems(exp: Expected, summary: dict[str, Any]) -> list[str]:
    """The runs and skipped runs of summary.json against the manifest's."""
    problems = []
    executed = [r["run_id"] for r in exp.runs]
    got = [r.get("run_id") if isinstance(r, dict) else r for r in summary.get("runs") or []]
    if got != executed:
        problems.append(f"summary.json runs are {got}, expected the enabled runs {executed} in manifest order")
    if summary.get("skipped_runs") != exp.skipped:
        problems.append(f"summary.json skipped_runs is {summary.get('skipped_runs')!r}, "
                        f"expected the disabled runs {exp.skipped}")
    for want in exp.runs:
        have = next((r for r in summary.get("runs") or [] if isinstance(r, dict)
                     and r.get("run_id") == want["run_id"]), None)
        if have is None:
            continue
        for key in ("model", "max_tokens", "prompt_ids"):
            if have.get(key) != want[key]:
                problems.append(f"run {want['run_id']}: {key} is {have.get(key)!r}, expected {want[key]!r}")
        t = have.get("temperature")
        if not isinstance(t, (int, float)) or abs(t - want["temperature"]) > 1e-9:
            problems.append(f"run {want['run_id']}: temperature is {t!r}, expected {want['temperature']!r}")
    return problems


def selection_problems(exp: Expected, run: RunOutput) -> str | None:
    problems = summary_run_problems(exp, run.summary) if isinstance(run.summary, dict) else []
    if isinstance(run.requests, list):
        executed = {r["run_id"] for r in exp.runs}
        logged = {r.get("run_id") for r in run.requests if isinstance(r, dict)}
        disabled = sorted(logged & set(exp.skipped))
        if disabled:
            problems.append(f"requests.jsonl has calls of disabled run(s) {disabled}")
        unknown = sorted(str(x) for x in logged - executed - set(exp.skipped))
        if unknown:
            problems.append(f"requests.jsonl has calls of unknown run id(s) {unknown}")
    return "; ".join(problems[:6]) or None


def check_runs_selected(ctx: Context) -> str | None:
    return needs(ctx.sample_run, "summary.json", "requests.jsonl") or selection_problems(ctx.expected, ctx.sample_run)


def order_problems(exp: Expected, records: list[Any], file: str) -> str | None:
    want = [(c["run_id"], c["prompt_id"]) for c in exp.calls]
    got = [(r.get("run_id"), r.get("prompt_id")) if isinstance(r, dict) else (None, None) for r in records]
    for i, (w, g) in enumerate(zip(want, got)):
        if w != g:
            return (f"{file} line {i + 1} is (run_id, prompt_id) = {g}, expected {w}: runs execute in manifest "
                    f"order, a run's prompts in the order it lists them (`all`: dataset order)")
    if len(got) != len(want):
        return f"{file} has {len(got)} record(s), expected {len(want)} (one per executed prompt)"
    for i, r in enumerate(records):
        if r.get("sequence") != i:
            return f"{file} line {i + 1}: sequence is {r.get('sequence')!r}, expected {i} (0-based, experiment-wide)"
    return None


def check_execution_order(ctx: Context) -> str | None:
    return needs(ctx.sample_run, "requests.jsonl") or \
        order_problems(ctx.expected, ctx.sample_run.requests, "requests.jsonl")


def match_records(exp: Expected, records: list[Any], file: str) -> tuple[dict[tuple, dict], str | None]:
    """Records keyed by (run_id, prompt_id): one per expected call, no others."""
    keyed: dict[tuple, dict] = {}
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            return {}, f"{file} line {i + 1} is not a JSON object"
        key = (r.get("run_id"), r.get("prompt_id"))
        if key in keyed:
            return {}, f"{file} logs {key} more than once"
        keyed[key] = r
    want = exp.by_key()
    missing = [k for k in want if k not in keyed]
    extra = [k for k in keyed if k not in want]
    if missing or extra:
        parts = ([f"missing {len(missing)} call(s), e.g. {missing[:3]}"] if missing else []) + \
                ([f"{len(extra)} unexpected call(s), e.g. {extra[:3]}"] if extra else [])
        return {}, f"{file}: every executed prompt must be logged exactly once: {'; '.join(parts)}"
    return keyed, None


def request_problems(exp: Expected, run: RunOutput) -> str | None:
    keyed, why = match_records(exp, run.requests, "requests.jsonl")
    if why:
        return why
    problems = []
    for key, want in exp.by_key().items():
        have = keyed[key]
        absent = [k for k in REQUEST_KEYS if k not in have]
        if absent:
            problems.append(f"request {key} lacks {', '.join(absent)}")
            continue
        for k in ("experiment_id", "model", "max_tokens", "system", "user"):
            if have[k] != want[k]:
                problems.append(f"request {key}: {k} is {tail(repr(have[k]), 80)}, expected {tail(repr(want[k]), 80)}")
        t = have["temperature"]
        if not is_number(t) or abs(t - want["temperature"]) > 1e-9:
            problems.append(f"request {key}: temperature is {t!r}, expected {want['temperature']!r} "
                            f"(the run's override, else the manifest's)")
    return joined(problems)


def check_requests_logged(ctx: Context) -> str | None:
    return needs(ctx.sample_run, "requests.jsonl") or request_problems(ctx.expected, ctx.sample_run)


def response_problems(key: tuple, want: dict[str, Any], have: dict[str, Any]) -> list[str]:
    absent = [k for k in RESPONSE_KEYS if k not in have]
    if absent:
        return [f"response {key} lacks {', '.join(absent)}"]
    problems = []
    if have["sequence"] != want["sequence"]:
        problems.append(f"response {key}: sequence is {have['sequence']!r}, expected {want['sequence']}")
    if have["text"] != want["text"]:
        problems.append(f"response {key}: text is {tail(repr(have['text']), 80)}, expected the client's "
                        f"response {tail(repr(want['text']), 80)}")
    if have["stop_reason"] != want["stop_reason"]:
        problems.append(f"response {key}: stop_reason is {have['stop_reason']!r}, expected "
                        f"{want['stop_reason']!r} (max_tokens {want['max_tokens']})")
    c = have["fact_coverage"]
    if not is_number(c) or abs(c - want["fact_coverage"]) > TOLERANCE:
        problems.append(f"response {key}: fact_coverage is {c!r}, expected {want['fact_coverage']:.4f}")
    for flag in ("refused", "completed"):
        if have[flag] is not want[flag]:
            problems.append(f"response {key}: {flag} is {have[flag]!r}, expected {want[flag]}")
    return problems


def check_responses_logged(ctx: Context) -> str | None:
    run, exp = ctx.sample_run, ctx.expected
    why = needs(run, "responses.jsonl")
    if why:
        return why
    keyed, why = match_records(exp, run.responses, "responses.jsonl")
    if why:
        return why
    return joined([p for key, want in exp.by_key().items() for p in response_problems(key, want, keyed[key])])


def metric_problems(want: dict[str, Any], have: Any, where: str) -> list[str]:
    if not isinstance(have, dict):
        return [f"{where} is missing or not an object"]
    problems = []
    if have.get("n_prompts") != want["n_prompts"]:
        problems.append(f"{where}.n_prompts is {have.get('n_prompts')!r}, expected {want['n_prompts']}")
    for m in METRICS:
        v = have.get(m)
        if not is_number(v) or abs(v - want[m]) > TOLERANCE:
            problems.append(f"{where}.{m} is {v!r}, expected {want[m]:.4f}")
    return problems


def overall_problems(exp: Expected, run: RunOutput) -> str | None:
    return "; ".join(metric_problems(exp.metrics, run.summary.get("metrics"), "summary.json metrics")) or None


def per_run_problems(exp: Expected, run: RunOutput) -> str | None:
    runs = {r.get("run_id"): r for r in run.summary.get("runs") or [] if isinstance(r, dict)}
    problems = []
    for want in exp.runs:
        have = runs.get(want["run_id"])
        if have is None:
            problems.append(f"summary.json has no run {want['run_id']!r}")
        else:
            problems += metric_problems(want["metrics"], have.get("metrics"), f"run {want['run_id']} metrics")
    return joined(problems, 6)


def check_metrics_match(ctx: Context) -> str | None:
    return needs(ctx.sample_run, "summary.json") or overall_problems(ctx.expected, ctx.sample_run)


def check_run_metrics_match(ctx: Context) -> str | None:
    return needs(ctx.sample_run, "summary.json") or per_run_problems(ctx.expected, ctx.sample_run)


def check_refusal(ctx: Context) -> str | None:
    run, exp = ctx.sample_run, ctx.expected
    refusals = [c for c in exp.calls if c["expect_refusal"]]
    if not refusals:
        raise GraderError("the sample manifest executes no prompt that expects a refusal")
    bad_data = [c["prompt_id"] for c in refusals if not c["refused"]]
    if bad_data:
        raise GraderError(f"the mock responses of {bad_data} are not refusals")
    why = needs(run, "responses.jsonl")
    if why:
        return why
    problems = []
    for c in refusals:
        have = next((r for r in run.responses if isinstance(r, dict)
                     and (r.get("run_id"), r.get("prompt_id")) == (c["run_id"], c["prompt_id"])), None)
        if have is None:
            problems.append(f"no response logged for the refusal case {c['prompt_id']} in run {c['run_id']}")
        elif have.get("refused") is not True:
            problems.append(f"the refusal case {c['prompt_id']} (run {c['run_id']}) is logged with refused="
                            f"{have.get('refused')!r}; its response {tail(repr(have.get('text')), 60)} is a refusal")
    return "; ".join(problems) or None
