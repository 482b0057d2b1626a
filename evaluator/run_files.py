"""A run's folder on disk: its manifest (run.json), its lock, its episodes and summary.json.

What a resume relies on lives here: a finished episode is one whose result.json exists (written
atomically, last); anything else found on resume is an interrupted attempt, set aside under
aborted/ and run again. run.json is written once and then only gains an entry per attempt.
Scheduling the episodes is runs.py's job; this module only reads and writes the folder.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import signal
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from .atomic import write_json_atomic
from .episode.runner import RESULT_FILE
from .errors import CtxevalError
from .matrix import RunMatrix

RUN_FILE = "run.json"
SUMMARY_FILE = "summary.json"
LOCK_FILE = "run.lock"
EPISODES_DIR = "episodes"
ABORTED_DIR = "aborted"
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def now_stamp() -> str:
    """The time run.json records (UTC, to the second)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_run_id(run_id: str) -> str:
    if not RUN_ID_PATTERN.fullmatch(run_id):
        raise CtxevalError(f"run id {run_id!r} must match {RUN_ID_PATTERN.pattern} (letters, digits, _ . -)")
    return run_id


def finished_result(episode_dir: Path) -> dict[str, Any] | None:
    path = episode_dir / RESULT_FILE
    if not path.exists():
        return None
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError, OSError):  # torn, garbled or unreadable: not finished
        return None
    return result if isinstance(result, dict) and "episode_id" in result else None


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Deterministic for the same finished episodes, whatever order or attempts produced them."""
    ordered = sorted(results, key=lambda r: r["episode_id"])

    def block(items: list[dict[str, Any]]) -> dict[str, Any]:
        scores = [r["score"] for r in items if r["score"] is not None]
        return {"episodes": len(items), "successes": sum(r["success"] for r in items),
                "errors": sum(r["status"] == "error" for r in items),
                "mean_score": round(sum(scores) / len(scores), 10) if scores else None}

    arms: dict[str, list[dict[str, Any]]] = {}
    for result in ordered:
        agent = result["agent"]
        label = " ".join(str(p) for p in (result["bundle"]["id"], agent.get("mode") or agent["kind"],
                                          agent.get("model"), (agent.get("policy") or {}).get("name")) if p)
        arms.setdefault(label, []).append(result)
    from .analysis.probes import summary_entry  # an arm's probe_recall block, where it had probes
    return {**block(ordered), "episode_ids": [r["episode_id"] for r in ordered],
            "arms": {label: {**block(items), **summary_entry(items)} for label, items in sorted(arms.items())}}


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """One process per run at a time; the kernel drops the lock when the holder dies (even SIGKILL)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CtxevalError(f"run {run_dir.name} is being executed by another process") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield


def read_json_object(path: Path) -> dict[str, Any] | None:
    """A JSON object from `path`, or None when it is missing, garbled or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError, OSError):
        return None
    return value if isinstance(value, dict) else None


def write_run_file(run_dir: Path, record: dict[str, Any]) -> None:
    """run.json: written once, then only gains an entry per attempt (resumes)."""
    path = run_dir / RUN_FILE
    attempts = []
    if path.exists():
        previous = read_json_object(path)
        if previous is not None and isinstance(previous.get("attempts"), list):
            attempts = previous["attempts"]
    attempts.append({"started_at": now_stamp(), "pid": os.getpid()})
    write_json_atomic(path, {**record, "attempts": attempts})


def end_run_file(run_dir: Path, status: str, signum: int | None = None) -> None:
    """Record how this attempt ended in run.json (its last attempt entry, and the run's status)."""
    record = read_json_object(run_dir / RUN_FILE)
    if record is None:
        return
    attempts = record.get("attempts") if isinstance(record.get("attempts"), list) else []
    if attempts and isinstance(attempts[-1], dict):
        attempts[-1].update(ended_at=now_stamp(), outcome=status,
                            **({"signal": signal.Signals(signum).name} if signum else {}))
    write_json_atomic(run_dir / RUN_FILE, {**record, "status": status, "attempts": attempts})


def set_aside(run_dir: Path, episode_dir: Path) -> None:
    """Move an interrupted attempt under aborted/ (kept for inspection), so the episode starts clean."""
    aborted = run_dir / ABORTED_DIR / f"{episode_dir.name}-{secrets.token_hex(3)}"
    aborted.parent.mkdir(parents=True, exist_ok=True)
    episode_dir.rename(aborted)


def set_aside_unfinished(run_dir: Path, episode_id: str) -> None:
    """An episode folder without a finished result is a torn attempt: set it aside, as a resume would."""
    episode_dir = run_dir / EPISODES_DIR / episode_id
    if episode_dir.exists() and finished_result(episode_dir) is None:
        set_aside(run_dir, episode_dir)


def load_run_record(run_dir: Path) -> dict[str, Any]:
    """The run.json of a run `ctxeval run --resume` can continue; a clear error for any other."""
    path = run_dir / RUN_FILE
    if not path.exists():
        raise CtxevalError(f"no run to resume at {run_dir} (no {RUN_FILE})")
    record = read_json_object(path)
    if record is None:
        raise CtxevalError(f"{path} is not a JSON object; the run cannot be resumed")
    if not isinstance(record.get("matrix"), dict):
        raise CtxevalError(f"{path} has no matrix: the run was not started by `ctxeval run` and cannot be "
                           "resumed from the command line")
    try:
        RunMatrix.from_record(record["matrix"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CtxevalError(f"{path}: $.matrix is damaged ({type(exc).__name__}: {exc}); the run cannot be "
                           "resumed") from None
    return record
