"""An RL environment over a warm sandbox, in the shape Gymnasium users expect.

    env = BundleEnv(load_bundle("bundles/experiment_profiler"))
    observation, info = env.reset(seed=0)
    observation, reward, terminated, truncated, info = env.step({"exec": "ls"})
    ...
    env.close()

The container is started once. `reset()` restores the workspace to the starter, clears /tmp and
/dev/shm and kills every process the previous episode left (sandbox.reset), then checks that the
workspace's content digest equals the starter's. An action is one item of the scripted-actions
format (evaluator/schemas/actions.schema.json): {"exec": cmd}, {"write_file": {path, content}},
{"read_file": path}, {"tool": name, "args": {...}}, {"submit": {...}}. The reward is 0 until the
episode ends; on submit the workspace is graded in a separate container and the reward is the
grade's score (negated for a minimised metric), or 1/0 success with reward="success". Running out of steps or wall time
truncates the episode (and grades it, so the last reward is still informative).
"""
from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from .bundles.data import PreparedData, prepare_data
from .bundles.manifest import Bundle
from .episode.actions import apply_action
from .episode.context import Budget, EpisodeContext
from .episode.events import EventLog
from .episode.grading import grade_artefacts
from .episode.judging import judge
from .episode.limits import agent_limits
from .episode.mounts import bundle_scratch
from .episode.runner import check_output_file
from .errors import CtxevalError, EpisodeEnded, SandboxError
from .sandbox import SandboxSpec, create_sandbox, options_for, provider
from .sandbox.base import folder_digest
from .sandbox.defaults import LABEL_EPISODE, LABEL_RUN

REWARDS = ("score", "success")


class BundleEnv:
    def __init__(self, bundle: Bundle, backend: str = "docker", image: str | None = None,
                 reward: str = "score", budget: Budget | None = None, events_dir: Path | None = None,
                 **sandbox_options: Any):
        if reward not in REWARDS:
            raise CtxevalError(f"reward must be one of {', '.join(REWARDS)}")
        self.sandbox_options = options_for(backend, **sandbox_options)  # checked now, not at reset
        if provider(backend).needs_image and image is None:
            from .images import ImageBuilder
            image = ImageBuilder().bundle_image(bundle).tag
        self.bundle, self.backend, self.image, self.reward_kind = bundle, backend, image, reward
        self.budget = budget
        self.events_dir = events_dir
        self.run_id = f"env-{secrets.token_hex(4)}"
        self.prepared: PreparedData = prepare_data(bundle)
        self.starter_digest = folder_digest(bundle.starter_dir)
        self.sandbox = None
        self.ctx: EpisodeContext | None = None
        self.episode = 0

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

    def __enter__(self) -> "BundleEnv":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the RL interface --------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
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
        self.episode += 1
        log = EventLog(self.events_dir / f"episode-{self.episode}.jsonl" if self.events_dir else None)
        self.ctx = EpisodeContext(self.bundle, self.sandbox, log, seed or 0, budget=self.budget,
                                  public_dir=self.prepared.public)
        observation = {"task": self.bundle.task_text, "text": "", "step": 0}
        info = {"workspace_digest": digest, "reset_seconds": time.monotonic() - started, "episode": self.episode}
        return observation, info

    def step(self, action: dict[str, Any]) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self.ctx is None:
            raise CtxevalError("call reset() before step()")
        if self.ctx.submitted is not None:
            raise CtxevalError("the episode has ended: call reset()")
        truncated = False
        try:
            text = apply_action(self.ctx, action)
        except EpisodeEnded as exc:
            text, truncated = f"episode over: {exc.reason}", True
            self.ctx.stop_reason = exc.reason
            self.ctx.submitted = {"truncated": exc.reason}
        except ValueError as exc:
            return self._observation(f"ERROR: {exc}"), 0.0, False, False, {"error": str(exc)}
        terminated = self.ctx.submitted is not None and not truncated
        if not (terminated or truncated):
            return self._observation(text), 0.0, False, False, {}
        reward, info = self._grade()
        return self._observation(text), reward, terminated, truncated, info

    # -- helpers -------------------------------------------------------------------------
    def _observation(self, text: str) -> dict[str, Any]:
        return {"task": self.bundle.task_text, "text": text, "step": self.ctx.metrics.steps}

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
