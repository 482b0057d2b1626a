"""Context policies: what part of an episode's history the model sees at each call.

`resolve_policy(spec)` turns a preset name, a policy name or a YAML file into a `PolicyConfig`;
`PolicyConfig.create()` gives the fresh (stateful, per-episode) policy instance whose
`build(PolicyInput(preamble, history, budget))` returns the messages to send. The marks the
evaluator writes into messages for models and policies to read back are in marks.py. The package
imports nothing of the evaluator (it sits below it): its errors are ValueErrors (errors.py).
"""
from __future__ import annotations

from .base import (BudgetTooSmall, BuiltContext, ContextPolicy, Message, PolicyInput, SummarizerResult, ToolCall,
                   count_tokens)
from .config import POLICIES, PolicyConfig, create_policy, list_policies, list_presets, load_policy_file, resolve_policy
from .errors import PresetError
from .structured_state import ExperimentState
from .summary import ExtractiveSummarizer

__all__ = ["BudgetTooSmall", "BuiltContext", "ContextPolicy", "ExperimentState", "ExtractiveSummarizer", "Message",
           "POLICIES", "PolicyConfig", "PolicyInput", "PresetError", "SummarizerResult", "ToolCall", "count_tokens",
           "create_policy", "list_policies", "list_presets", "load_policy_file", "resolve_policy"]
