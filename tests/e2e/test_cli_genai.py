"""The command line on the gemini backend: the seed's environment variables, the SDK's endpoint override."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from fake_gemini import FakeGemini

pytestmark = pytest.mark.e2e


def cli(repo_root, env, *args):
    return subprocess.run([sys.executable, "-m", "iso_qgis", *args], cwd=repo_root, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


def test_generate_with_image_backend_and_google_api_key(repo_root, helsinki_tiles, tmp_path):
    with FakeGemini(known_models={"gemini-3-pro-image"}) as fake:
        env = {**os.environ, "IMAGE_BACKEND": "gemini", "GOOGLE_API_KEY": "cli-secret-77",
               "GOOGLE_GEMINI_BASE_URL": fake.base_url, "ISOTILES_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip
        args = ["generate", "--tiles_dir", str(helsinki_tiles), "--x0", "4", "--y0", "3", "--w", "2", "--h", "1",
                "--k", "2", "--out_dir", str(tmp_path / "out")]  # fmt: skip
        dry = cli(repo_root, env, *args, "--dry_run")
        assert dry.returncode == 0, dry.stderr
        assert "dry run: 4 calls" in dry.stdout and "nothing was called" in dry.stdout and fake.calls() == 0
        run = cli(repo_root, env, *args)
        assert run.returncode == 0, run.stderr
        assert fake.calls() == 4 and "calls      4" in run.stdout
        assert all(r["headers"]["x-goog-api-key"] == "cli-secret-77" for r in fake.requests)
        report = (tmp_path / "out" / "report_nb_pro.json").read_text()
        assert json.loads(report)["config"]["backend"] == "gemini" and "cli-secret-77" not in report
        assert "cli-secret-77" not in run.stdout + run.stderr


def test_vertex_without_a_project_is_a_one_line_error(repo_root, helsinki_tiles, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT")}
    proc = cli(repo_root, env, "generate", "--backend", "vertex", "--tiles_dir", str(helsinki_tiles), "--x0", "4",
               "--y0", "3", "--w", "1", "--h", "1", "--out_dir", str(tmp_path / "v"))  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: PROJECT:")
    assert not (tmp_path / "v").exists()


def test_no_key_or_token_in_any_output(repo_root, helsinki_tiles, tmp_path):
    """Every file a run writes, and everything it prints, is free of the key and the token."""
    key, token = "gk-secret-0192", "ya29.secret-token-3344"
    with FakeGemini(known_models={"gemini-3-pro-image"}) as fake:
        fake.accept_tokens = {token}
        base = {**os.environ, "GOOGLE_API_KEY": key, "VERTEX_PROJECT": "proj", "VERTEX_ACCESS_TOKEN": token,
                "GOOGLE_GEMINI_BASE_URL": fake.base_url, "GOOGLE_VERTEX_BASE_URL": fake.base_url,
                "ISOTILES_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip
        printed = ""
        for backend in ("gemini", "vertex"):
            env = {**base, "ISOTILES_CACHE_DIR": str(tmp_path / f"cache-{backend}")}  # the cache would answer twice
            proc = cli(repo_root, env, "generate", "--backend", backend, "--tiles_dir", str(helsinki_tiles),
                       "--x0", "4", "--y0", "3", "--w", "1", "--h", "1", "--k", "1",
                       "--out_dir", str(tmp_path / backend))  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            printed += proc.stdout + proc.stderr
        assert fake.calls() == 2
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 20
    for p in written:
        data = p.read_bytes()
        assert key.encode() not in data and token.encode() not in data, p
    assert key not in printed and token not in printed
