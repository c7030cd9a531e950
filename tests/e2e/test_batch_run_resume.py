"""A BATCH run killed while a phase's job is pending: started again, it polls the same job and pays once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from fake_gemini import FakeGemini
from isotiles_testing import block_city, kill_while_first_job_pending, patch

from iso_tile_stylizer.iso_qgis.plan.batchphase import BATCH_FILE

pytestmark = pytest.mark.e2e
MODEL = "gemini-3-pro-image"


def test_a_killed_batch_run_resumes_polling_and_pays_once(repo_root, tmp_path):
    (tmp_path / "city").mkdir()
    city = block_city(tmp_path / "city")
    (x0, y0), *_ = patch(city, 3, 3)
    out = tmp_path / "out"
    with FakeGemini(known_models={MODEL}) as fake:
        env = {**os.environ, "GOOGLE_API_KEY": "k-1", "ISOTILES_CACHE_DIR": str(tmp_path / "cache")}
        args = [sys.executable, "-m", "iso_qgis", "generate", "--backend", "gemini", "--model", MODEL,
                "--base_url", fake.base_url, "--tilejson", str(city), "--x0", str(x0), "--y0", str(y0), "--w", "3",
                "--h", "3", "--k", "2", "--schedule", "lattice", "--batch", "--batch_poll_s", "0.05",
                "--out_dir", str(out)]  # fmt: skip
        fake.batch.hold = True  # the first phase's job stays pending
        proc = subprocess.Popen(args, cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        kill_while_first_job_pending(proc, fake, out / BATCH_FILE, "the run")
        first = fake.batch.created[0]
        assert json.loads((out / BATCH_FILE).read_text())["jobs"][0]["name"] == first
        assert fake.batch.lines == [] and fake.calls() == 0  # nothing answered, nothing paid yet

        fake.batch.finish_all()  # the job ends while no run is there
        again = subprocess.run(args, cwd=repo_root, env=env, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr[-2000:]
        assert "polling the 1 job(s) a stopped run left" in again.stdout + again.stderr
        # phase 1's job was polled again, not made again: 3 jobs for 3 phases, each request answered once
        assert fake.batch.created[0] == first and len(fake.batch.created) == 3
        assert len(fake.batch.lines) == 18 and fake.calls() == 0
    report = json.loads((out / "report_nb_pro.json").read_text())
    assert report["totals"]["accepted"] == 9 and not (out / BATCH_FILE).exists()
