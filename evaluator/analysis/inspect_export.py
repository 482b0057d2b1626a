"""A finished run as Inspect AI eval logs (`ctxeval export RUN --format inspect`): one log per arm
(bundle × mode × model × policy), written with inspect_ai's own log types and writer, so
`inspect_ai.log.read_eval_log` reads it and `inspect view` serves it.

- a sample per episode (id = episode id, epoch 1): input = the task as the first call's user
  message gave it; one ModelEvent per model call with the messages the policy built for that call
  (from the run's `llm` spans, each message clipped where the trace clipped it) and what came back;
  messages = the last call's context and reply; scores `score` (the grade, absent when the
  episode had none) and `success` (C/I); model usage from result.json's token counts; metadata =
  ctxeval's result fields (status, stop reason, relative improvement, context tokens, ...);
- the log's results: samples, completed samples (status not error), mean score, success rate.
inspect-ai is an optional extra (`pip install 'ctxeval[inspect]'`), imported when exporting.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CtxevalError
from .loading import ArmKey, RunResults, arm_key, group_by_arm, load_run

INSTALL_HINT = "exporting to Inspect needs inspect-ai: pip install 'ctxeval[inspect]'"
ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class ExportedLog:
    arm: str
    path: Path
    samples: int


def export_run(run: str | Path, out_dir: Path, root: Path | None = None) -> list[ExportedLog]:
    """Write one Inspect eval log per arm of the run (a folder or a run id) under `out_dir`."""
    try:
        from inspect_ai.log import write_eval_log
    except ImportError as exc:
        raise CtxevalError(INSTALL_HINT) from exc
    loaded = load_run(run, root)
    if not loaded.results:
        raise CtxevalError(f"run {loaded.run_id} has no finished episode to export")
    calls = _llm_calls(loaded.run_dir / "traces.jsonl")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for arm, items in group_by_arm(loaded.results).items():
        path = out_dir / f"{_slug(loaded.run_id)}-{_slug('-'.join(arm.as_record().values()))}.eval"
        write_eval_log(_eval_log(loaded, arm, items, calls), str(path))
        written.append(ExportedLog(arm.label, path, len(items)))
    return written


def _eval_log(loaded: RunResults, arm: ArmKey, items: list[dict[str, Any]],
              calls: dict[str, list[dict[str, Any]]]) -> Any:
    from inspect_ai.log import EvalConfig, EvalDataset, EvalLog, EvalSpec, EvalStats
    run = loaded.run
    samples = [_sample(result, calls.get(result["episode_id"], [])) for result in items]
    spec = EvalSpec(created=run.get("created_at") or items[0]["started_at"], run_id=loaded.run_id,
                    task=f"ctxeval/{arm.bundle}", task_version=str(items[0]["bundle"].get("version") or 0),
                    dataset=EvalDataset(name=arm.bundle, samples=len(items)), model=_model_name(arm.model),
                    config=EvalConfig(), solver=f"ctxeval/{arm.mode}",
                    metadata={"ctxeval": {"run_id": loaded.run_id, **arm.as_record(),
                                          "executor": run.get("executor", "local"), "backend": run.get("backend"),
                                          "budget": run.get("budget"), "probes": run.get("probes")}})
    usage = _usage_sum([s.model_usage for s in samples])
    stats = EvalStats(started_at=min(r["started_at"] for r in items), completed_at=max(r["finished_at"] for r in items),
                      model_usage={spec.model: usage} if usage else {})
    return EvalLog(status="success", eval=spec, results=_results(items), stats=stats, samples=samples)


def _model_name(model: str) -> str:
    """Inspect's provider/model form: scripted:hill_climb -> scripted/hill_climb."""
    return model.replace(":", "/", 1) if ":" in model else f"ctxeval/{model}"


def _sample(result: dict[str, Any], calls: list[dict[str, Any]]) -> Any:
    from inspect_ai.log import EvalSample
    from inspect_ai.model import ModelUsage
    from inspect_ai.scorer import CORRECT, INCORRECT, Score
    metrics = result["metrics"]
    model = _model_name(arm_key(result).model)
    events = [_model_event(call, model) for call in calls]
    last = events[-1] if events else None
    messages = [*last.input, *[c.message for c in last.output.choices]] if last else []
    first_user = next((m.text for e in events for m in e.input if m.role == "user"), "")
    scores = {"success": Score(value=CORRECT if result["success"] else INCORRECT, explanation=result["stop_reason"])}
    if result["score"] is not None:
        scores["score"] = Score(value=result["score"], metadata={"best_score": result.get("best_score")})
    usage = ModelUsage(input_tokens=metrics["prompt_tokens"], output_tokens=metrics["completion_tokens"],
                       total_tokens=metrics["prompt_tokens"] + metrics["completion_tokens"],
                       input_tokens_cache_read=metrics.get("cached_tokens") or None,
                       total_cost=metrics.get("cost_usd"))
    return EvalSample(id=result["episode_id"], epoch=1, input=first_user or result["episode_id"], target="",
                      messages=messages, output=last.output if last else None, scores=scores, events=events,
                      model_usage={model: usage}, started_at=result["started_at"],
                      completed_at=result["finished_at"], total_time=metrics.get("wall_seconds"),
                      metadata={key: result.get(key) for key in ("seed", "status", "stop_reason", "success",
                                                                  "relative_improvement", "best_score", "baseline",
                                                                  "error")}
                      | {"context_tokens": metrics.get("context_tokens"), "steps": metrics.get("steps")})


def _model_event(call: dict[str, Any], model: str) -> Any:
    from inspect_ai.event import ModelEvent
    from inspect_ai.model import GenerateConfig, ModelOutput, ModelUsage
    output = ModelOutput.from_content(model=model, content=str(call.get("llm.output_messages.0.message.content") or
                                                               call.get("output.value") or ""))
    prompt, completion = int(call.get("llm.token_count.prompt") or 0), int(call.get("llm.token_count.completion") or 0)
    output.usage = ModelUsage(input_tokens=prompt, output_tokens=completion, total_tokens=prompt + completion)
    return ModelEvent(model=model, input=_messages(call, "llm.input_messages"), tools=[], tool_choice="none",
                      config=GenerateConfig(), output=output)


def _usage_sum(usages: list[dict[str, Any]]) -> Any:
    from inspect_ai.model import ModelUsage
    parts = [u for usage in usages for u in usage.values()]
    if not parts:
        return None
    return ModelUsage(input_tokens=sum(u.input_tokens for u in parts), output_tokens=sum(u.output_tokens for u in parts),
                      total_tokens=sum(u.total_tokens for u in parts),
                      input_tokens_cache_read=sum(u.input_tokens_cache_read or 0 for u in parts) or None,
                      total_cost=sum(u.total_cost or 0 for u in parts))


def _results(items: list[dict[str, Any]]) -> Any:
    from inspect_ai.log import EvalMetric, EvalResults, EvalScore
    scores = [r["score"] for r in items if r["score"] is not None]
    entries = [EvalScore(name="success", scorer="ctxeval", scored_samples=len(items),
                         metrics={"accuracy": EvalMetric(name="accuracy", value=sum(r["success"] for r in items) / len(items))})]
    if scores:
        entries.append(EvalScore(name="score", scorer="ctxeval", scored_samples=len(scores),
                                 metrics={"mean": EvalMetric(name="mean", value=sum(scores) / len(scores))}))
    return EvalResults(total_samples=len(items), completed_samples=sum(r["status"] != "error" for r in items),
                       scores=entries)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def _llm_calls(traces: Path) -> dict[str, list[dict[str, Any]]]:
    """Each episode's model calls (policy-built input messages, output, tokens), in order."""
    if not traces.exists():
        return {}
    spans = [json.loads(line) for line in traces.read_text().splitlines() if line.strip()]
    episodes = {s["span_id"]: s["attributes"].get("ctxeval.episode_id") for s in spans if s["name"] == "episode"}
    parents = {s["span_id"]: s.get("parent_id") for s in spans}
    calls: dict[str, list[dict[str, Any]]] = {}
    for span in sorted((s for s in spans if s["name"] == "llm"), key=lambda s: s["start_time_ns"]):
        episode = _episode_of(span["span_id"], parents, episodes)
        if episode is not None:
            calls.setdefault(episode, []).append(span["attributes"])
    return calls


def _episode_of(span_id: str, parents: dict[str, str | None], episodes: dict[str, str]) -> str | None:
    seen = 0
    while span_id is not None and seen < 64:
        if span_id in episodes:
            return episodes[span_id]
        span_id, seen = parents.get(span_id), seen + 1  # type: ignore[assignment]
    return None


def _messages(attributes: dict[str, Any], prefix: str) -> list[Any]:
    from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageTool, ChatMessageUser
    kinds = dict(zip(ROLES, (ChatMessageSystem, ChatMessageUser, ChatMessageAssistant, ChatMessageTool)))
    messages, index = [], 0
    while f"{prefix}.{index}.message.role" in attributes:
        role = attributes[f"{prefix}.{index}.message.role"]
        content = str(attributes.get(f"{prefix}.{index}.message.content", ""))
        kind = kinds.get(role, ChatMessageUser)
        fields = {"tool_call_id": attributes.get(f"{prefix}.{index}.message.tool_call_id")} if kind is ChatMessageTool else {}
        messages.append(kind(content=content, **fields))
        index += 1
    return messages
