"""A run killed while its batch job is pending: the next one resumes polling the same job and pays once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from fake_gemini import FakeGemini
from isotiles_testing import kill_while_first_job_pending

WORKER = Path(__file__).with_name("batch_worker.py")


def test_sigkill_while_the_batch_is_pending_then_resume_pays_nothing_twice(plugins_dir, tmp_path):
    state, cache = tmp_path / "state.json", tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(plugins_dir)}
    with FakeGemini() as fake:
        fake.batch.hold = True  # the job stays pending until released
        args = [sys.executable, str(WORKER), "submit", fake.base_url, str(state), str(cache)]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        kill_while_first_job_pending(proc, fake, state, "the submitting process")
        assert proc.returncode == -signal.SIGKILL
        name = json.loads(state.read_text())["batch_jobs"][0]["name"]
        assert fake.batch.created == [name] and fake.batch.job(name).state == "pending"
        assert fake.batch.lines == []  # nothing answered yet

        fake.batch.finish_all()
        args[2] = "resume"
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["images"] == 4 and result["summary"]["answered"] == 4
        assert fake.batch.created == [name]  # no second job: not paid twice
        assert len(fake.batch.lines) == 4 and fake.calls() == 0  # each request answered once, none online
        polls = [r for r in fake.batch.log if r["method"] == "GET" and r["path"].endswith(name.split("/")[-1])]
        assert len(polls) >= 3  # the first process polled, then the second

        # a third run (the cache) sends nothing at all
        args[2] = "submit"
        again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
        assert json.loads(again.stdout.strip().splitlines()[-1])["images"] == 4
        assert fake.batch.created == [name] and len(fake.batch.lines) == 4
