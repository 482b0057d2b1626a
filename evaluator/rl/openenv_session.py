"""A ctxeval bundle under OpenEnv's rollout loop (the `rl` extra: `pip install 'ctxeval[rl]'`).

OpenEnv's harness API drives an episode through a `ResourceSession`: the loop
(`MCPHarnessAdapter.run_white_box`, or `build_harness_rollout_func` for TRL's GRPO trainer) asks
the model for its next turn with the session's tools, sends each tool call to `call_tool` until a
call says done, then `verify` forwards the reward the environment produced.

- `BundleSession`: one episode of a BundleEnv. Its tools are agentic mode's (MCP tool specs),
  each call is one env step, `submit` ends the episode with the graded score as reward; a rollout
  that stops without submitting is graded as it stands in `verify`.
- `BundleSessionFactory`: sessions over warm environments (one container each, reset between
  rollouts, as many as rollouts run at once).
- `with_policy(model_step, policy)`: the context policy applied to what the model sees: every turn
  the loop's transcript is rebuilt by the policy (ctxeval's, the same as in agentic mode) before
  the model step is called; the loop keeps the full transcript.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from openenv.core.env_server.mcp_types import Tool
from openenv.core.harness import ModelStep, ResourceSession, ResourceSessionFactory, ToolResult, VerifyResult

from policies.base import KIND_ACTION, KIND_OBSERVATION, Message, PolicyInput, ToolCall
from policies.config import PolicyConfig, resolve_policy

from ..models.openai_client import parse_arguments, to_openai_messages
from .env import BundleEnv


def _mcp_tool(schema: Any) -> Tool:
    return Tool(name=schema.name, description=schema.description,
                input_schema=schema.parameters or {"type": "object", "properties": {}})


class BundleSession(ResourceSession):
    """One rollout: an episode of `env` from reset to submit (or to `verify`)."""

    def __init__(self, env: BundleEnv, seed: int | None = None, release: Callable[[BundleEnv], None] | None = None):
        self.env, self.release = env, release
        self.observation, self.reset_info = env.reset(seed=seed)
        self.done, self.reward, self.last_info = False, 0.0, dict(self.reset_info)

    def initial_messages(self) -> list[dict[str, Any]]:
        return to_openai_messages(self.env.transcript.preamble())

    def list_tools(self) -> list[Tool]:
        return [_mcp_tool(schema) for schema in self.env.tools]

    def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        if self.done:
            return ToolResult(data="the episode has ended", done=True, error="episode ended")
        observation, reward, terminated, truncated, info = self.env.step({"name": name, "arguments": arguments})
        self.done, self.reward, self.last_info = terminated or truncated, reward, info
        metadata = {"reward": reward, "step": observation["step"], "terminated": terminated, "truncated": truncated}
        return ToolResult(data=observation["text"], done=self.done, metadata=metadata, error=info.get("error"))

    def verify(self, transcript: list[dict[str, Any]], final_state: Any | None = None) -> VerifyResult:
        """The environment's reward; a rollout the loop stopped before `submit` is submitted now."""
        if not self.done:
            self.call_tool("submit", {"summary": "the rollout loop stopped"})
        info = self.last_info
        metrics = {"score": info.get("score"), "success": info.get("success"), "target_met": info.get("target_met"),
                   "stop_reason": info.get("stop_reason"), "steps": self.env.ctx.metrics.steps if self.env.ctx else 0,
                   "error": info.get("error")}
        return VerifyResult(env_reward=self.reward, done=True, metrics=metrics,
                            artifacts={"grade": info.get("grade")})

    def close(self) -> None:
        if self.release is not None:
            self.release(self.env)
        else:
            self.env.close()


class BundleSessionFactory(ResourceSessionFactory[BundleSession]):
    """Sessions of one bundle over warm environments: a session takes an idle environment (or makes
    one), its `close()` gives it back for the next rollout's reset. `close()` ends them all."""

    def __init__(self, bundle: Any, **env_kwargs: Any):
        self.bundle, self.env_kwargs = bundle, env_kwargs
        self.idle: list[BundleEnv] = []
        self.made: list[BundleEnv] = []
        self.lock = threading.Lock()

    def create(self, task: Any, seed: int | None = None, episode_id: str | None = None) -> BundleSession:
        with self.lock:
            env = self.idle.pop() if self.idle else None
        if env is None:
            env = BundleEnv(self.bundle, **self.env_kwargs)
            with self.lock:
                self.made.append(env)
        return BundleSession(env, seed=seed, release=self._release)

    def _release(self, env: BundleEnv) -> None:
        with self.lock:
            self.idle.append(env)

    def close(self) -> None:
        with self.lock:
            envs, self.made, self.idle = self.made, [], []
        for env in envs:
            env.close()


# -- the context policy between the loop and the model -----------------------------------------

def from_openai_messages(wire: list[dict[str, Any]]) -> list[Message]:
    """Chat Completions messages as ctxeval's; each assistant message opens a turn, the tool
    answers that follow belong to it."""
    messages, turn = [], 0
    for entry in wire:
        role, content = entry.get("role"), entry.get("content") or ""
        if role == "assistant":
            turn += 1
            calls = [ToolCall(c.get("id", ""), c["function"]["name"], parse_arguments(c["function"].get("arguments")))
                     for c in entry.get("tool_calls") or []]
            messages.append(Message("assistant", content, tool_calls=calls, kind=KIND_ACTION, turn=turn))
        elif role == "tool":
            messages.append(Message("tool", content, tool_call_id=entry.get("tool_call_id"), name=entry.get("name"),
                                    kind=KIND_OBSERVATION, turn=turn))
        else:
            kind = KIND_OBSERVATION if turn else ""
            messages.append(Message(role, content, kind=kind, turn=turn or None))
    return messages


def policy_messages(wire: list[dict[str, Any]], policy: Any, budget_tokens: int | None = None,
                    preamble_length: int = 2) -> list[dict[str, Any]]:
    """What `policy` (a ContextPolicy) keeps of a loop's transcript: the first `preamble_length`
    messages (system prompt, task) always, the turns after them as the policy decides."""
    messages = from_openai_messages(wire)
    preamble, history = messages[:preamble_length], messages[preamble_length:]
    return to_openai_messages(policy.build(PolicyInput(preamble, history, budget_tokens)).messages)


def with_policy(model_step: ModelStep, policy: str | PolicyConfig) -> ModelStep:
    """A ModelStep that sends the model the policy's view of the transcript instead of all of it.
    One policy instance per wrapper (policies keep per-episode state): wrap once per rollout, as
    `build_harness_rollout_func`'s model_step_builder does."""
    config = resolve_policy(policy) if isinstance(policy, str) else policy
    instance = config.create()

    def step(messages: list[dict[str, Any]], tools: list[Tool], sampling: dict[str, Any]) -> Any:
        return model_step(policy_messages(messages, instance, config.budget_tokens), tools, sampling)
    step.policy = config  # type: ignore[attr-defined]
    return step
