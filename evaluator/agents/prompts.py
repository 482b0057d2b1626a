"""The preamble both reasoning modes start from: system prompt, task statement, target line."""
from __future__ import annotations

import json
from typing import Any

from policies.base import KIND_HINTS, KIND_MEMORY, KIND_SYSTEM, KIND_TASK, Message
from policies.marks import MEMORY_MARK, TARGET_MARK

from ..episode.context import EpisodeContext

CLARIFICATION_GUIDANCE = {
    "encourage": "Your context is tight: when anything about the data, metric or rules is unclear, ask with "
                 "the `clarify` tool before experimenting; answers are kept for you as hints.",
    "neutral": "You may ask clarifying questions with the `clarify` tool.",
    "discourage": "You have a large context: prefer reading files and earlier results to asking questions; "
                  "use `clarify` only when something is truly ambiguous.",
}


MEMORY_GUIDANCE = ("You have a memory of your own: the `memory` tool keeps text files under /memories, shown to you "
                   "after the task on every turn, while older turns may be cleared from your context. Save there what "
                   "you will need later: the configurations you tried and their scores, the best one so far, and every "
                   "constraint or fact you are told. Keep it short.")


def target_facts(ctx: EpisodeContext) -> dict[str, Any]:
    """Machine-readable target: what counts as done (offline models read it from the task)."""
    bundle = ctx.bundle
    open_ended = bundle.target.open_ended  # the agent is not told a goal: it searches the whole budget
    facts = {"metric": bundle.target.metric, "direction": bundle.target.direction,
             "goal": None if open_ended else bundle.target.target_score(), "baseline": bundle.target.baseline,
             "seed": ctx.seed, "output": bundle.output_path, **({"open_ended": True} if open_ended else {})}
    if bundle.controller is not None:
        facts.update(score_key=bundle.controller.score_key, apply_tool=bundle.controller.apply_tool)
    return facts


def task_message(ctx: EpisodeContext) -> Message:
    text = f"{ctx.bundle.task_text}\n\n{TARGET_MARK} {json.dumps(target_facts(ctx), sort_keys=True)}\n"
    return Message("user", text, kind=KIND_TASK)


def system_message(text: str) -> Message:
    return Message("system", text, kind=KIND_SYSTEM)


def hints_message(hints: list[tuple[str, str]]) -> Message | None:
    """Clarification answers, carried forward in the preamble so every policy keeps them."""
    if not hints:
        return None
    lines = [f"- Q: {q}\n  A: {a}" for q, a in hints]
    return Message("user", "Clarification hints (answers to your earlier questions):\n" + "\n".join(lines),
                   kind=KIND_HINTS)


def memory_message(memory: Any) -> Message:
    """The agent's memory as it is pinned after the task statement (episode/memory.py's MemoryStore)."""
    return Message("user", f"{MEMORY_MARK} /memories (your memory, {memory.total_bytes()} bytes):\n{memory.render()}",
                   kind=KIND_MEMORY)


def preamble(system: Message, task: Message, memory: Any, hints: list[tuple[str, str]]) -> list[Message]:
    """What every call starts with: system prompt, task, the agent's memory (when it has one), hints."""
    hint = hints_message(hints)
    return [system, task, *([memory_message(memory)] if memory is not None else []), *([hint] if hint else [])]
