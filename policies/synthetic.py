"""Seeded synthetic episodes for tests and benchmarks: realistic agentic and controller histories.

Agentic turns: an assistant message (a short thought) with one or two tool calls among
train_and_evaluate (with a config), exec, read_file, write_file and clarify, each answered by a tool
message whose meta carries what the evaluator records (ok, score, config, error, outcome, tool).
Some runs fail (tracebacks, timeouts, rejected arguments, arguments that are not JSON), some
outputs are long (training logs, files), some questions go unanswered, some replies call no tool
(answered by the evaluator's nudge). Controller turns: a JSON proposal and a "RESULT: {...}"
observation, with the occasional invalid proposal.
"""
from __future__ import annotations

import json
import random
from typing import Any, Callable

from .base import KIND_ACTION, KIND_HINTS, KIND_OBSERVATION, KIND_SYSTEM, KIND_TASK, Message, ToolCall
from .marks import RESULT_MARK, TARGET_MARK

MODELS = ["logistic_regression", "random_forest", "gradient_boosting", "mlp"]
QUESTIONS = ["Is the metric macro or micro F1?", "May I use the validation split for early stopping?",
             "Are there missing values in the label column?", "What is the time limit per training run?",
             "Should predictions be probabilities or classes?"]
ERRORS = ["ValueError: max_depth must be a positive integer, got 0",
          "MemoryError: unable to allocate 2.1 GiB for an array with shape (60000, 4800)",
          "KeyError: 'label'", "RuntimeError: mat1 and mat2 shapes cannot be multiplied (64x10 and 12x8)",
          "ConvergenceWarning escalated: lbfgs failed to converge after 100 iterations"]
FILES = ["README.md", "data/schema.json", "train.py", "data/context.json"]


def preamble(mode: str = "agentic", direction: str = "maximize", hints: bool = True,
             task_words: int = 120) -> list[Message]:
    """System prompt, task statement (with the machine-readable target line) and hints."""
    rng = random.Random(7)
    filler = " ".join(rng.choice(["tabular", "classification", "features", "baseline", "validation", "accuracy",
                                  "columns", "rows", "seed", "split", "improve", "report"]) for _ in range(task_words))
    system = (f"You are an ML engineer working in {mode} mode. Act only through the tools; run experiments, "
              "read their results and improve on the baseline.")
    target = {"metric": "accuracy", "direction": direction, "goal": 0.9 if direction == "maximize" else 0.1,
              "baseline": 0.7, "seed": 0, "score_key": "score"}
    task = (f"Task: predict the label of each row of the toy tabular dataset. {filler}\n\n"
            f"{TARGET_MARK} {json.dumps(target)}\n")
    messages = [Message("system", system, kind=KIND_SYSTEM), Message("user", task, kind=KIND_TASK)]
    if hints:
        messages.append(Message("user", "Clarification hints (answers to your earlier questions):\n"
                                        "- Q: Which metric?\n  A: accuracy (higher is better)", kind=KIND_HINTS))
    return messages


def random_config(rng: random.Random) -> dict[str, Any]:
    return {"model": rng.choice(MODELS), "learning_rate": round(10 ** rng.uniform(-4, -0.5), 5),
            "max_depth": rng.randint(1, 12), "n_estimators": rng.choice([50, 100, 200, 400])}


def _score(rng: random.Random, config: dict[str, Any]) -> float:
    base = {"logistic_regression": 0.72, "random_forest": 0.8, "gradient_boosting": 0.83, "mlp": 0.78}[config["model"]]
    return round(min(0.99, base + rng.uniform(-0.05, 0.06) + 0.004 * min(config["max_depth"], 8)), 4)


def _long_log(rng: random.Random, lines: int) -> str:
    return "\n".join(f"epoch {i + 1:3d} | train_loss {rng.uniform(0.1, 1.5):.4f} "
                     f"| val_loss {rng.uniform(0.1, 1.5):.4f} "
                     f"| lr {rng.uniform(1e-4, 1e-2):.5f}" for i in range(lines))


Outcome = tuple[dict[str, Any], str, dict[str, Any]]  # a tool call's arguments, result text and meta


def _train(rng: random.Random, failed: bool, long: bool, turn: int) -> Outcome:
    tool = "train_and_evaluate"
    config = random_config(rng)
    if failed:
        error = rng.choice(ERRORS)
        return {"config": config}, f"ERROR: {error}", {"ok": False, "tool": tool, "error": error}
    score = _score(rng, config)
    output = {"score": score, "train_seconds": round(rng.uniform(0.5, 30), 2)}
    content = json.dumps({"ok": True, "output": output}, sort_keys=True)
    if long:
        content += "\n" + _long_log(rng, rng.randint(60, 160))
    return {"config": config}, content, {"ok": True, "tool": tool, "error": None, "score": score, "config": config}


def _exec(rng: random.Random, failed: bool, long: bool, turn: int) -> Outcome:
    args = {"command": rng.choice(["python train.py --epochs 5", "ls -la data", "python eval.py", "pip list"])}
    if failed:
        outcome = rng.choice(["error", "timeout"])
        err = rng.choice(ERRORS)
        trace = ("Traceback (most recent call last):\n"
                 f"  File \"train.py\", line {rng.randint(10, 200)}, in <module>\n"
                 f"    main()\n{err}")
        content = f"exit code {1 if outcome == 'error' else 124} ({outcome})\nstdout:\n\nstderr:\n{trace}"
        return args, content, {"ok": False, "outcome": outcome, "tool": "exec"}
    body = _long_log(rng, rng.randint(80, 200)) if long else _long_log(rng, rng.randint(2, 6))
    return args, f"exit code 0 (ok)\nstdout:\n{body}\nstderr:\n", {"ok": True, "outcome": "ok", "tool": "exec"}


def _read_file(rng: random.Random, failed: bool, long: bool, turn: int) -> Outcome:
    path = rng.choice(FILES)
    if failed:
        return {"path": path}, f"ERROR: cannot read {path}", {"ok": False, "error": "not found", "tool": "read_file"}
    lines = rng.randint(40, 120) if long else rng.randint(3, 12)
    words = ["feature", "label", "value", "column", "int64", "float", "category"]
    content = "\n".join(f"{path} line {i}: " + " ".join(rng.choice(words) for _ in range(8)) for i in range(lines))
    return {"path": path}, content, {"ok": True, "tool": "read_file"}


def _write_file(rng: random.Random, failed: bool, long: bool, turn: int) -> Outcome:
    args = {"path": "train.py", "content": "\n".join(f"# line {i}" for i in range(rng.randint(5, 30)))}
    return args, "wrote train.py", {"ok": True, "tool": "write_file"}


def _clarify(rng: random.Random, failed: bool, long: bool, turn: int) -> Outcome:
    question = rng.choice(QUESTIONS)
    if failed:  # unanswered
        return {"question": question}, "", {"ok": True, "tool": "clarify", "question": question, "answered": False}
    content = (f"From the dataset context: the answer to '{question[:30]}' is documented in context.json "
               f"(fact {turn}).")
    return {"question": question}, content, {"ok": True, "tool": "clarify", "question": question}


TOOLS: dict[str, Callable[[random.Random, bool, bool, int], Outcome]] = {
    "train_and_evaluate": _train, "exec": _exec, "read_file": _read_file, "write_file": _write_file,
    "clarify": _clarify}


def agentic_call(rng: random.Random, turn: int, index: int, tool: str, long_rate: float = 0.1,
                 error_rate: float = 0.15) -> tuple[ToolCall, Message]:
    """One tool call and the tool message answering it (failed at `error_rate`, long at `long_rate`)."""
    call_id = f"call_{turn}_{index}"
    failed = rng.random() < error_rate
    long = rng.random() < long_rate
    if tool not in TOOLS:
        raise ValueError(f"unknown synthetic tool {tool!r}")
    args, content, meta = TOOLS[tool](rng, failed, long, turn)
    call = ToolCall(call_id, tool, args)
    return call, Message("tool", content, tool_call_id=call_id, name=tool, kind=KIND_OBSERVATION, turn=turn, meta=meta)


def agentic_turn(rng: random.Random, turn: int, **rates: float) -> list[Message]:
    roll = rng.random()
    if roll < 0.03:  # a reply without a tool call, and the evaluator's nudge
        return [Message("assistant", "I believe the model is good enough now.", kind=KIND_ACTION, turn=turn),
                Message("user", "No tool was called. Use a tool, or call `submit` when done.", kind=KIND_OBSERVATION,
                        turn=turn)]
    if roll < 0.05:  # arguments that are not JSON, rejected
        call = ToolCall(f"call_{turn}_0", "train_and_evaluate", '{"config": {"model": "mlp",')
        error = "arguments of train_and_evaluate are not a JSON object: {\"config\": {\"model\": \"mlp\","
        return [Message("assistant", "", tool_calls=[call], kind=KIND_ACTION, turn=turn),
                Message("tool", f"ERROR: {error}", tool_call_id=call.id, name=call.name, kind=KIND_OBSERVATION,
                        turn=turn, meta={"ok": False, "error": error, "tool": call.name})]
    tools = ["train_and_evaluate"] * 5 + ["exec"] * 3 + ["read_file"] * 2 + ["write_file", "clarify"]
    count = 2 if rng.random() < 0.25 else 1
    pairs = [agentic_call(rng, turn, i, rng.choice(tools), **rates) for i in range(count)]
    thought = rng.choice(["", "Let me try another configuration.", "Checking the data first.",
                          "The last run failed; adjusting.", "Trying a deeper model."])
    return [Message("assistant", thought, tool_calls=[c for c, _ in pairs], kind=KIND_ACTION, turn=turn),
            *[m for _, m in pairs]]


def controller_turn(rng: random.Random, turn: int, error_rate: float = 0.15, long_rate: float = 0.0) -> list[Message]:
    if rng.random() < error_rate / 3:
        text = "I think we should try a larger model"  # not JSON: an invalid proposal
        error = "the reply is not a JSON object: substring not found"
        observation = {"ok": False, "error": error}
        return [Message("assistant", text, kind=KIND_ACTION, turn=turn),
                Message("user", f"{RESULT_MARK} {json.dumps(observation)}", kind=KIND_OBSERVATION, turn=turn,
                        meta=observation)]
    config = random_config(rng)
    proposal = {"config": config, "rationale": rng.choice(["untried candidate", "deeper trees", "smaller lr"])}
    failed = rng.random() < error_rate
    score = None if failed else _score(rng, config)
    observation = {"ok": not failed, "score": score, "config": config,
                   "error": rng.choice(ERRORS) if failed else None}
    return [Message("assistant", json.dumps(proposal, sort_keys=True), kind=KIND_ACTION, turn=turn,
                    meta={"proposal": proposal}),
            Message("user", f"{RESULT_MARK} {json.dumps(observation, sort_keys=True)}", kind=KIND_OBSERVATION,
                    turn=turn, meta=observation)]


def history(turns: int, seed: int = 0, mode: str = "agentic", **rates: float) -> list[Message]:
    """`turns` turns of a seeded synthetic episode (mode: agentic | controller)."""
    rng = random.Random(f"{mode}:{seed}")
    make = agentic_turn if mode == "agentic" else controller_turn
    return [m for t in range(1, turns + 1) for m in make(rng, t, **rates)]


def episode(turns: int, seed: int = 0, mode: str = "agentic", **rates: float) -> tuple[list[Message], list[Message]]:
    """(preamble, history)."""
    return preamble(mode), history(turns, seed, mode, **rates)
