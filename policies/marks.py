"""The marks the evaluator writes into messages and the models and policies read back.

They are a protocol between writer and reader (an offline model finds its target after TARGET:, a
policy keeps CONSTRAINT: lines when it condenses history), so each is spelled once, here, where
both sides import it; policies sit below the evaluator, so this module is the one both can import.
"""
from __future__ import annotations

import re

TARGET_MARK = "TARGET:"
"""Opens the JSON of the task's target (metric, direction, goal) in the task message: written by
evaluator/agents/prompts.py (and policies/synthetic.py), read by the scripted models."""

RESULT_MARK = "RESULT:"
"""Opens the JSON of a controller-mode observation: written by evaluator/agents/controller.py,
read by policies/facts.py (the structured facts of a history) and the scripted models."""

CONSTRAINT_MARK = "CONSTRAINT:"
"""Opens the JSON of a constraint a planted fact states: written by evaluator/episode/probes.py,
read by policies/facts.py (kept as a note) and evaluator/models/memory.py (obeyed)."""

PROBE_MARK = "PROBE"
"""Starts a probe question (`PROBE <id>: <question>`): written by evaluator/episode/probes.py,
read by evaluator/models/memory.py (the scripted models answer it)."""

FACT_MARK = "[fact "
"""Opens a planted fact's tag line `[fact <id> = <JSON value>]`: written by
evaluator/episode/probes.py, read by policies/facts.py (FACT_TAG) and evaluator/models/memory.py."""

MEMORY_MARK = "MEMORY"
"""Opens the pinned copy of the agent's own memory (`MEMORY /memories` then its files): written by
evaluator/agents/prompts.py, read by the scripted models (what they already saved)."""

FACT_TAG = re.compile(rf"^{re.escape(FACT_MARK)}[a-z][a-z0-9_]* = .*\]$")
"""A whole fact tag line, as FACT_MARK opens it."""

__all__ = ["CONSTRAINT_MARK", "FACT_MARK", "FACT_TAG", "MEMORY_MARK", "PROBE_MARK", "RESULT_MARK", "TARGET_MARK"]
