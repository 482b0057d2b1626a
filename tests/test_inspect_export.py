"""`ctxeval export RUN --format inspect` (issue 16, item 3): every arm of a run as an Inspect AI eval
log, read back with the real inspect-ai package: samples, scores, token totals and each model
call's messages as result.json and the traces have them."""
from __future__ import annotations

import json
import sys

import pytest
from inspect_ai.log import read_eval_log
from typer.testing import CliRunner

from evaluator.analysis.inspect_export import export_run
from evaluator.bundles import load_bundle
from evaluator.cli import app
from evaluator.episode.context import Budget
from evaluator.errors import CtxevalError
from evaluator.matrix import RunMatrix
from evaluator.paths import BUNDLES_DIR
from evaluator.runs import RunSettings, execute_jobs, matrix_jobs, run_record

POLICIES = ["full_history", "sliding_window"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    bundle = load_bundle(BUNDLES_DIR / "toy")
    matrix = RunMatrix.from_options([str(BUNDLES_DIR / "toy")], policies=POLICIES, seeds=[0, 1])
    jobs = matrix_jobs(matrix, {str(BUNDLES_DIR / "toy"): bundle}, {})
    settings = RunSettings(backend="local", run_id="to-inspect", root=tmp_path_factory.mktemp("runs"),
                           budget=Budget(max_steps=4), max_parallel=2)
    execute_jobs(settings, run_record(settings, matrix=matrix.as_record()), jobs)
    return settings.run_dir


def _results(run_dir):
    return {p.parent.name: json.loads(p.read_text()) for p in (run_dir / "episodes").glob("*/result.json")}


def test_each_arm_reads_back_with_the_episodes_scores_and_tokens(run_dir, tmp_path):
    exported = export_run(run_dir, tmp_path / "logs")
    results = _results(run_dir)
    assert len(exported) == len(POLICIES) and sum(e.samples for e in exported) == len(results)
    for entry in exported:
        log = read_eval_log(str(entry.path))
        assert log.status == "success" and log.eval.run_id == "to-inspect" and log.eval.task == "ctxeval/toy"
        assert log.results.total_samples == len(log.samples) == entry.samples == 2
        for sample in log.samples:
            result = results[sample.id]
            assert sample.scores["success"].value == ("C" if result["success"] else "I")
            assert sample.scores["score"].value == pytest.approx(result["score"])
            usage = sample.model_usage["scripted/hill_climb"]
            assert (usage.input_tokens, usage.output_tokens) == (result["metrics"]["prompt_tokens"],
                                                                 result["metrics"]["completion_tokens"])
            calls = [e for e in sample.events if e.event == "model"]
            assert len(calls) == result["metrics"]["llm_calls"] > 0
            assert [c.output.usage.input_tokens for c in calls] == result["metrics"]["context_tokens"]
            assert calls[0].input[0].role == "system" and calls[0].input[1].role == "user"
            assert sample.messages[-1].role == "assistant" and sample.messages[-1].text == calls[-1].output.completion
        policy = log.eval.metadata["ctxeval"]["policy"]
        mean = sum(results[s.id]["score"] for s in log.samples) / 2
        scores = {s.name: s.metrics for s in log.results.scores}
        assert policy in POLICIES and scores["score"]["mean"].value == pytest.approx(mean)
        totals = log.stats.model_usage["scripted/hill_climb"]
        assert totals.input_tokens == sum(results[s.id]["metrics"]["prompt_tokens"] for s in log.samples)


def test_the_command_writes_the_logs_and_bad_input_gets_a_clear_error(run_dir, tmp_path, monkeypatch):
    runner = CliRunner()
    done = runner.invoke(app, ["export", str(run_dir), "--out", str(tmp_path / "out")])
    assert done.exit_code == 0, done.output
    assert len(list((tmp_path / "out").glob("*.eval"))) == len(POLICIES)
    refused = runner.invoke(app, ["export", str(run_dir), "--format", "csv"])
    assert refused.exit_code != 0 and "--format must be one of inspect" in refused.output
    missing = runner.invoke(app, ["export", str(tmp_path / "nothing-here")])
    assert missing.exit_code != 0 and "no run" in missing.output
    monkeypatch.setitem(sys.modules, "inspect_ai.log", None)  # as if inspect-ai were not installed
    with pytest.raises(CtxevalError, match=r"pip install 'ctxeval\[inspect\]'"):
        export_run(run_dir, tmp_path / "never")


def test_inspect_view_serves_the_export_and_a_browser_shows_a_sample(run_dir, tmp_path):
    import subprocess
    import time
    import urllib.request
    from pathlib import Path

    from PIL import Image

    from cdp_browser import free_port, render
    from test_report import chromium
    exported = export_run(run_dir, tmp_path / "logs")
    port = free_port()
    view = subprocess.Popen([str(Path(sys.executable).with_name("inspect")), "view", "--log-dir", str(tmp_path / "logs"),
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                listing = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/logs", timeout=2))
                break
            except OSError:
                time.sleep(0.3)
        assert sorted(Path(f["name"]).name for f in listing["files"]) == sorted(e.path.name for e in exported)
        log = read_eval_log(str(exported[0].path))
        sample_id = log.samples[0].id
        shot = tmp_path / "sample.png"
        text = render(chromium(), f"http://127.0.0.1:{port}/#/logs/{exported[0].path.name}", sample_id, shot)
        assert sample_id in text and "ctxeval/toy" in text, text[:2000]
        with Image.open(shot) as image:
            grey = image.convert("L")
            assert image.size[0] == 1280 and image.size[1] > 500 and grey.getextrema()[1] - grey.getextrema()[0] > 150
    finally:
        view.kill()
        view.wait()
