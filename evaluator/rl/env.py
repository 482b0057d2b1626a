"""A bundle as a Gymnasium environment over one warm, hardened sandbox.

    env = gymnasium.make("ctxeval/toy-v0")                   # or BundleEnv(load_bundle("bundles/toy"))
    observation, info = env.reset(seed=0)
    action = '{"name": "train_and_evaluate", "arguments": {"config": {"model": "random_forest"}}}'
    observation, reward, terminated, truncated, info = env.step(action)

Spaces (rl/spaces.py): the action is text, a JSON tool call (rl/actions.py) of agentic mode's tools,
answered exactly as agentic mode answers it (agents/tools.py); the observation is a Dict of `task`,
`text` (the answer), `step` and, with a context policy, `context`: the messages that policy would
send a model now (JSON). Facts a long variant plants arrive in the answers as in agentic mode.

The sandbox starts at the first reset and is kept: each `reset()` restores the starter workspace,
clears /tmp and /dev/shm, kills what the previous episode left running and checks the workspace's
digest against the starter's (`info["workspace_digest"]`). The reward is 0 until the episode
ends; on `submit` the workspace is graded in a separate sandbox and the reward is the score
(negated for a minimised metric), or 1/0 success with reward="success". Running out of steps or
wall time truncates the episode and grades it. An invalid action is answered with an error
observation (it costs a step, like a malformed tool call in agentic mode) and no reward, never an
exception; a crash of the sandbox truncates the episode with the reason in `info["error"]`.
"""
from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium
from gymnasium.error import ResetNeeded

from policies.base import ToolCall
from policies.config import PolicyConfig, resolve_policy

from ..agents.tools import ToolDispatcher, offered_tools
from ..bundles.data import PreparedData, prepare_data
from ..bundles.manifest import Bundle
from ..episode.context import Budget, EpisodeContext
from ..episode.events import EventLog
from ..episode.grading import grade_artefacts
from ..episode.judging import judge
from ..episode.limits import agent_limits
from ..episode.mounts import bundle_scratch
from ..episode.probes import ProbeRunner
from ..episode.result import StopReason
from ..episode.runner import check_output_file
from ..errors import CtxevalError, EpisodeEnded, SandboxError
from ..sandbox import SandboxSpec, create_sandbox, options_for, provider
from ..sandbox.base import folder_digest
from ..sandbox.defaults import LABEL_EPISODE, LABEL_RUN
from .actions import InvalidAction, parse_action
from .spaces import action_space, observation_space
from .transcript import Transcript

REWARDS = ("score", "success")
ENDED = "the episode has ended: call reset()"


def _load(bundle: Bundle | str | Path) -> Bundle:
    if isinstance(bundle, Bundle):
        return bundle
    from ..bundles.registry import bundle_registry
    return bundle_registry().load(bundle)


class BundleEnv(gymnasium.Env):
    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, bundle: Bundle | str | Path, backend: str = "docker", image: str | None = None,
                 reward: str = "score", budget: Budget | None = None, policy: str | PolicyConfig | None = None,
                 events_dir: Path | None = None, render_mode: str | None = None, **sandbox_options: Any):
        if reward not in REWARDS:
            raise CtxevalError(f"reward must be one of {', '.join(REWARDS)}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise CtxevalError(f"render_mode must be None or one of {', '.join(self.metadata['render_modes'])}")
        self.bundle = _load(bundle)
        self.sandbox_options = options_for(backend, **sandbox_options)  # checked now, not at reset
        if provider(backend).needs_image and image is None:
            from ..images import ImageBuilder
            image = ImageBuilder().bundle_image(self.bundle).tag
        self.backend, self.image, self.reward_kind, self.render_mode = backend, image, reward, render_mode
        self.budget, self.events_dir = budget, events_dir
        self.policy_config = resolve_policy(policy) if isinstance(policy, str) else policy
        wants_memory = self.policy_config is not None and self.policy_config.create().wants_memory
        self.tools = offered_tools(self.bundle, memory=wants_memory)
        self.max_steps = (budget or Budget()).resolve(self.bundle).max_steps
        self.action_space = action_space()
        self.observation_space = observation_space(self.max_steps, with_context=self.policy_config is not None)
        self.run_id = f"env-{secrets.token_hex(4)}"
        self.prepared: PreparedData = prepare_data(self.bundle)
        self.starter_digest = folder_digest(self.bundle.starter_dir)
        self.sandbox = None
        self.ctx: EpisodeContext | None = None
        self.dispatcher: ToolDispatcher | None = None
        self.transcript: Transcript | None = None
        self.episode = self.turn = 0
        self.ended = False
        self.last_text = ""

    # -- lifecycle -------------------------------------------------------------------
    def _start(self) -> None:
        spec = SandboxSpec(image=self.image, limits=agent_limits(self.bundle, self.budget),
                           labels={LABEL_RUN: self.run_id, LABEL_EPISODE: self.run_id},
                           tools_dir=self.bundle.tools_dir, data_dir=self.prepared.public,
                           scratch=bundle_scratch(self.bundle))
        self.sandbox = create_sandbox(self.backend, spec, self.sandbox_options)
        self.sandbox.start()

    def close(self) -> None:
        if self.ctx is not None:
            self.ctx.events.close()
        if self.sandbox is not None:
            self.sandbox.stop()
            self.sandbox = None
        super().close()

    def __enter__(self) -> "BundleEnv":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the Gymnasium interface ----------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        started = time.monotonic()
        if self.sandbox is None or not self.sandbox.alive():
            if self.sandbox is not None:
                self.sandbox.stop()
            self._start()
        digest = self.sandbox.reset(self.bundle.starter_dir)
        if digest != self.starter_digest:
            raise SandboxError(f"reset left the workspace different from the starter ({digest} != {self.starter_digest})")
        if self.ctx is not None:
            self.ctx.events.close()
        self.episode, self.turn, self.ended, self.last_text = self.episode + 1, 0, False, ""
        episode_seed = seed if seed is not None else int(self.np_random.integers(0, 2**31 - 1))
        log = EventLog(self.events_dir / f"episode-{self.episode}.jsonl" if self.events_dir else None)
        self.ctx = EpisodeContext(self.bundle, self.sandbox, log, episode_seed, budget=self.budget,
                                  public_dir=self.prepared.public, probes=ProbeRunner(self.bundle.probes, enabled=False))
        self.dispatcher = ToolDispatcher(self.ctx, self.tools)
        self.transcript = Transcript(self.ctx, self.policy_config, self.dispatcher.hints)
        info = {"workspace_digest": digest, "reset_seconds": time.monotonic() - started, "episode": self.episode,
                "seed": episode_seed, "tools": [t.name for t in self.tools], "sandbox": self.sandbox.describe()}
        return self._observation(), info

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self.ctx is None:
            raise ResetNeeded("call reset() before step()")
        if self.ended:
            return self._observation(f"ERROR: {ENDED}"), 0.0, True, False, {"error": ENDED}
        self.turn += 1
        info: dict[str, Any] = {}
        try:
            call = self._call_of(action, info)
            content, meta = self.dispatcher.dispatch(call) if call is not None else self._rejected(action, info)
        except EpisodeEnded as exc:
            if exc.reason == StopReason.SANDBOX_DIED:
                return self._crash("the sandbox died", info)
            self.ctx.stop_reason = exc.reason
            return self._end(f"episode over: {exc.reason}", truncated=True, info=info)
        except (SandboxError, OSError) as exc:
            return self._crash(f"{type(exc).__name__}: {exc}", info)
        content = self.ctx.probes.plant(self.turn, content)
        if call is not None:
            self.transcript.record(self.turn, call, content, meta)
        if self.ctx.submitted is not None:
            return self._end(content, truncated=False, info=info)
        if not meta.get("ok", True) and meta.get("error"):
            info.setdefault("error", meta["error"])
        return self._observation(content), 0.0, False, False, {**info, "meta": meta}

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return f"[episode {self.episode}, step {self.ctx.metrics.steps if self.ctx else 0}]\n{self.last_text}"

    # -- helpers -------------------------------------------------------------------------
    def _call_of(self, action: Any, info: dict[str, Any]) -> ToolCall | None:
        try:
            return parse_action(action, self.turn)
        except InvalidAction as exc:
            info.update(error=str(exc), invalid_action=True)
            return None

    def _rejected(self, action: Any, info: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        shown = action if isinstance(action, str) else repr(action)
        return self.dispatcher.reject(ToolCall("invalid", "(invalid action)", shown[:300]), info["error"])

    def _observation(self, text: str = "") -> dict[str, Any]:
        self.last_text = text
        steps = min(self.ctx.metrics.steps, self.max_steps) if self.ctx else 0
        observation = {"task": self.bundle.task_text, "text": text, "step": steps}
        if self.policy_config is not None:
            observation["context"] = self.transcript.context_json() if self.transcript else "[]"
        return observation

    def _crash(self, error: str, info: dict[str, Any]) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """The sandbox is gone: the episode is truncated ungraded; the next reset starts a new one."""
        self.ended = True
        self.ctx.stop_reason = StopReason.SANDBOX_DIED
        return self._observation(f"ERROR: the episode crashed: {error}"), 0.0, False, True, \
            {**info, "error": error, "stop_reason": StopReason.SANDBOX_DIED}

    def _end(self, text: str, truncated: bool, info: dict[str, Any]) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        self.ended = True
        if truncated:
            self.ctx.submitted = {"truncated": self.ctx.stop_reason}
        try:
            reward, graded = self._grade()
        except (SandboxError, OSError) as exc:
            return self._observation(text), 0.0, False, True, {**info, "error": f"grading failed: {exc}"}
        return self._observation(text), reward, not truncated, truncated, {**info, **graded}

    def _grade(self) -> tuple[float, dict[str, Any]]:
        """Quiesce, copy the workspace out and grade the copy (the next reset thaws the sandbox)."""
        copied = Path(tempfile.mkdtemp(prefix="ctxeval-env-"))
        try:
            priority = [p for p in (self.bundle.grader_submission, self.bundle.output_path) if p]
            self.sandbox.copy_out(copied / "workspace", priority=priority)
            output = check_output_file(self.bundle, copied / "workspace")
            outcome = grade_artefacts(self.bundle, self.backend, self.image, copied / "workspace", self.prepared,
                                      {LABEL_RUN: self.run_id}, self.sandbox_options)
        finally:
            shutil.rmtree(copied, ignore_errors=True)
        success, target_met = judge(self.bundle, outcome, output_valid=output["valid"])
        score = outcome.score
        if self.reward_kind == "success":
            reward = float(success)
        elif score is None:
            reward = 0.0
        else:  # higher is better for a reward: a minimised metric counts negatively
            reward = float(score) if self.bundle.target.maximize else -float(score)
        return reward, {"grade": outcome.grade, "grade_errors": outcome.errors, "success": success,
                        "target_met": target_met, "score": score, "stop_reason": self.ctx.stop_reason}
