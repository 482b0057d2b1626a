"""BundleEnv as a real Gymnasium environment: Gymnasium's own env checker, registration
(`gymnasium.make("ctxeval/toy-v0")`, an id per bundle and variant, kwargs), text spaces, seeding,
invalid actions answered (never raised), a crash truncating the episode, the context observation
of a policy, and vectorised environments (sync and async) over warm sandboxes: parallel, no state
crossing, every container removed at close() and when the process is killed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import evaluator.rl  # noqa: F401 - registers the ctxeval/* ids
from evaluator.bundles.registry import bundle_registry
from evaluator.paths import BUNDLES_DIR, PROJECT_ROOT
from evaluator.rl import ENV_IDS, BundleEnv, env_id
from evaluator.rl.spaces import AnyText
from evaluator.sandbox.base import folder_digest

TRAIN = {"name": "train_and_evaluate", "arguments": {"config": {"model": "hist_gradient_boosting"}}}


# -- registration and spaces (no sandbox) -----------------------------------------------------

def test_every_bundle_and_variant_is_registered():
    registry = bundle_registry()
    expected = set()
    for folder in registry.folders():
        bundle = registry.load(folder.name)
        expected.add(env_id(bundle.id))
        expected.update(env_id(bundle.id, v) for v in bundle.variants)
    assert set(ENV_IDS) == expected and "ctxeval/toy-v0" in ENV_IDS and "ctxeval/toy-long-v0" in ENV_IDS
    spec = gymnasium.spec("ctxeval/toy-long-v0")
    assert spec.kwargs["bundle"].endswith("toy@long") and spec.entry_point == "evaluator.rl.registration:make_env"


def test_the_text_spaces_hold_any_text_and_sample():
    space = AnyText(50)
    assert space.contains("ünïcödé ✓ {\"json\": 1}\n\t") and not space.contains("x" * 51) and not space.contains(3)
    assert all(space.contains(space.sample()) for _ in range(20))


def test_make_passes_kwargs_and_a_bad_one_is_a_clear_error():
    with pytest.raises(Exception, match="reward must be one of"):
        gymnasium.make("ctxeval/toy-v0", backend="local", reward="points")
    with pytest.raises(Exception, match="unknown context policy"):
        gymnasium.make("ctxeval/toy-v0", backend="local", policy="no_such_policy")
    env = gymnasium.make("ctxeval/toy-v0", backend="local", budget={"max_steps": 3}, policy="sliding_window")
    try:
        assert env.unwrapped.max_steps == 3 and env.observation_space["step"].n == 4
        assert "context" in env.observation_space.spaces
    finally:
        env.close()


# -- one environment on the local backend (fast) -----------------------------------------------

@pytest.fixture
def local_env():
    env = gymnasium.make("ctxeval/toy-v0", backend="local", budget={"max_steps": 6}, render_mode="ansi")
    yield env
    env.close()


@pytest.mark.parametrize("action, message", [
    ("not json", "not valid JSON"), ("[1, 2]", "must be a JSON object"), ({"do": "it"}, "not a tool call"),
    ({"name": "nope"}, "unknown tool 'nope'"), ({"name": "exec", "arguments": {"cmd": "ls"}}, "command"),
    ({"name": "exec", "arguments": "{broken"}, "not a JSON object"), (b"\xff\xfe", "not valid JSON"),
])
def test_an_invalid_action_is_an_error_observation_with_no_reward(local_env, action, message):
    local_env.reset(seed=0)
    observation, reward, terminated, truncated, info = local_env.step(action)
    assert observation["text"].startswith("ERROR:") and message in observation["text"] and message in info["error"]
    assert reward == 0.0 and not terminated and not truncated and observation["step"] == 1  # it costs a step


def test_invalid_actions_run_the_budget_out_and_truncate(local_env):
    local_env.reset(seed=0)
    results = [local_env.step("garbage") for _ in range(7)]
    assert [r[3] for r in results[:6]] == [False] * 6
    _, reward, terminated, truncated, info = results[6]
    assert truncated and not terminated and info["stop_reason"] == "max_steps" and reward == 0.0
    observation, _, terminated, _, info = local_env.step(TRAIN)  # after the end: answered, not raised
    assert terminated and "call reset()" in observation["text"]


def test_seeded_resets_repeat_and_render_shows_the_last_answer(local_env):
    first = local_env.reset(seed=7)
    again = local_env.reset(seed=7)
    assert first[0] == again[0] and first[1]["seed"] == again[1]["seed"] == 7
    local_env.step({"name": "exec", "arguments": {"command": "echo rendered-$((6*7))"}})
    assert "rendered-42" in local_env.render()


def test_the_context_observation_is_what_the_policy_would_send(tmp_path):
    envs = {name: gymnasium.make("ctxeval/toy-v0", backend="local", policy=name) for name in
            ("full_history", "sliding_window")}
    try:
        for env in envs.values():
            env.reset(seed=0)
            for i in range(8):
                observation, *_ = env.step({"name": "exec", "arguments": {"command": f"echo turn-{i}-" + "x" * 300}})
        full = json.loads(envs["full_history"].unwrapped._observation()["context"])
        window = json.loads(envs["sliding_window"].unwrapped._observation()["context"])
    finally:
        for env in envs.values():
            env.close()
    assert "turn-0-" in json.dumps(full) and "turn-7-" in json.dumps(full)
    assert "turn-0-" not in json.dumps(window) and "turn-7-" in json.dumps(window)  # k_turns=6 keeps 2..7
    assert full[0]["role"] == "system" and window[1] == full[1]  # the task is kept


# -- Docker: the real sandbox ----------------------------------------------------------------

@pytest.mark.docker
@pytest.mark.parametrize("bundle", ["toy", "experiment_profiler"])
def test_gymnasiums_env_checker_passes(bundle, docker_client):
    from evaluator.images import ImageBuilder
    loaded = bundle_registry().load(bundle)
    image = ImageBuilder(client=docker_client).bundle_image(loaded).tag
    with BundleEnv(loaded, image=image, client=docker_client, budget=None) as env:
        check_env(env, skip_render_check=False)
        observation, info = env.reset(seed=3)
        assert env.observation_space.contains(observation) and info["workspace_digest"] == folder_digest(
            loaded.starter_dir)


@pytest.mark.docker
def test_make_plays_a_graded_episode_in_docker(toy_bundle, toy_image, docker_client):
    env = gymnasium.make("ctxeval/toy-v0", image=toy_image.tag, client=docker_client)
    try:
        env.reset(seed=0)
        _, reward, terminated, _, _ = env.step(json.dumps(TRAIN))
        assert reward == 0.0 and not terminated
        _, reward, terminated, truncated, info = env.step({"name": "submit", "arguments": {}})
        assert terminated and not truncated and reward == info["score"] and info["success"]
    finally:
        env.close()


@pytest.mark.docker
def test_a_sandbox_killed_mid_episode_truncates_it_and_the_next_reset_recovers(toy_image, docker_client):
    env = gymnasium.make("ctxeval/toy-v0", image=toy_image.tag, client=docker_client)
    try:
        env.reset(seed=0)
        docker_client.containers.get(env.unwrapped.sandbox.container.name).kill()
        observation, reward, terminated, truncated, info = env.step({"name": "exec", "arguments": {"command": "ls"}})
        assert truncated and not terminated and reward == 0.0 and "sandbox died" in info["error"]
        assert "crashed" in observation["text"]
        _, info = env.reset(seed=1)  # a new sandbox
        assert env.step({"name": "exec", "arguments": {"command": "ls"}})[0]["text"].startswith("exit code 0")
    finally:
        env.close()


def _marking_step(envs, num: int) -> None:
    """Each environment writes its own index, then reads it back: nothing may cross."""
    envs.step([json.dumps({"name": "write_file", "arguments": {"path": "mine.txt", "content": f"env-{i} ü✓"}})
               for i in range(num)])
    observations, *_ = envs.step([json.dumps({"name": "exec", "arguments": {"command": "cat mine.txt; ls"}})
                                  for _ in range(num)])
    for i, text in enumerate(observations["text"]):  # any text survives the async workers' shared memory
        assert f"env-{i} ü✓" in text and all(f"env-{j}" not in text for j in range(num) if j != i)


@pytest.mark.docker
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_vector_envs_step_in_parallel_with_no_state_crossing(mode, toy_bundle, toy_image, docker_client):
    num = 3
    envs = gymnasium.make_vec("ctxeval/toy-v0", num_envs=num, vectorization_mode=mode, image=toy_image.tag)
    starter = folder_digest(toy_bundle.starter_dir)
    try:
        _, infos = envs.reset(seed=list(range(num)))
        runs = list(infos["sandbox"]["container"])
        assert len(set(runs)) == num and list(infos["workspace_digest"]) == [starter] * num
        _marking_step(envs, num)
        _, infos = envs.reset(seed=list(range(10, 10 + num)))  # digests after every reset: each back to the starter
        assert list(infos["workspace_digest"]) == [starter] * num
        assert list(infos["sandbox"]["container"]) == runs  # warm: the same containers
        observations, *_ = envs.step([json.dumps({"name": "exec", "arguments": {"command": "ls"}})] * num)
        assert all("mine.txt" not in text for text in observations["text"])
        if mode == "async":  # the steps ran at the same time: three 2-second sleeps take well under 6 s
            started = time.monotonic()
            envs.step([json.dumps({"name": "exec", "arguments": {"command": "sleep 2"}})] * num)
            assert time.monotonic() - started < 5.0
    finally:
        envs.close()
    assert not [n for n in runs if docker_client.api.containers(all=True, filters={"name": n})]


KILLED_SCRIPT = """
import json, sys, time
import gymnasium
import evaluator.rl
envs = gymnasium.make_vec("ctxeval/toy-v0", num_envs=2, vectorization_mode="async", image=sys.argv[1])
_, infos = envs.reset(seed=[0, 1])
print(json.dumps(list(infos["sandbox"]["container"])), flush=True)
time.sleep(600)
"""


@pytest.mark.docker
def test_a_killed_process_takes_its_vector_envs_containers_with_it(toy_image, docker_client, tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SCRIPT, toy_image.tag], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=PROJECT_ROOT, start_new_session=False)
    try:
        names = json.loads(proc.stdout.readline())
        assert len(names) == 2 and all(docker_client.api.containers(filters={"name": n}) for n in names)
        os.kill(proc.pid, signal.SIGKILL)  # the parent only: its workers see their pipe close
        proc.wait(timeout=30)
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and any(docker_client.api.containers(all=True, filters={"name": n})
                                                  for n in names):
            time.sleep(0.5)
        left = [n for n in names if docker_client.api.containers(all=True, filters={"name": n})]
        assert not left, left
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_bundle_folder_is_the_registered_one():
    assert gymnasium.spec("ctxeval/toy-v0").kwargs["bundle"] == str(BUNDLES_DIR / "toy")
