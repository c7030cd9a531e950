"""The fault matrix in docs/fault_matrix.md is produced by this test, so it cannot drift from the code.

Each injected fault of the fake service goes through the real google-genai client and the gemini
backend; the table says what the backend did. Regenerate: ISOTILES_UPDATE_DOCS=1 pytest this file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from fake_gemini import FakeGemini

from iso_tile_stylizer.iso_qgis.backends import make_backend
from iso_tile_stylizer.iso_qgis.backends.base import ImageRequest

MODEL, FALLBACK = "gemini-3-pro-image", "gemini-2.5-flash-image"
DOC = Path(__file__).resolve().parents[2] / "docs" / "fault_matrix.md"

FAULTS = [
    ("429 storm, then an answer", {MODEL: ["429"] * 3 + ["ok"]}),
    ("429 without RetryInfo, then an answer", {MODEL: ["429_bare", "ok"]}),
    ("429 until the retries run out, no fallback set", {MODEL: ["429"] * 10}, {"fallback_model": ""}),
    ("429 until the fallback model", {MODEL: ["429"] * 10, FALLBACK: ["ok"]}),
    ("503, then an answer", {MODEL: ["503", "ok"]}),
    ("500 with an HTML body, then an answer", {MODEL: ["500_html", "ok"]}),
    ("slow answer past the timeout, then an answer", {MODEL: [{"kind": "ok", "slow": 3.0}, "ok"]}),
    ("dropped connection, then an answer", {MODEL: ["drop", "ok"]}),
    ("prompt blocked (promptFeedback)", {MODEL: ["blocked_prompt"], FALLBACK: ["ok"]}),
    ("IMAGE_SAFETY", {MODEL: ["image_safety"]}),
    ("IMAGE_PROHIBITED_CONTENT", {MODEL: ["prohibited"]}),
    ("NO_IMAGE", {MODEL: ["no_image"]}),
    ("text only", {MODEL: ["text_only"]}),
    ("other finish reason", {MODEL: ["other_finish"]}),
    ("candidate without parts", {MODEL: ["missing_parts"]}),
    ("corrupt base64", {MODEL: ["corrupt_b64"]}),
    ("base64 of a non-image", {MODEL: [{"kind": "corrupt_b64", "mode": "not_png"}]}),
    # 48 MB of pixels to encode and send: more than 2 s on a busy machine, so this row waits longer
    ("4096 px answer for a 64 px canvas", {MODEL: [{"kind": "ok", "size": [4096, 4096]}]}, {"timeout_s": 60.0}),
    ("401 (token expired), then a fresh token", "refresh"),
    ("404 model", "unknown_model"),
]


def run_fault(name, script, extra=None):
    rng = np.random.default_rng(0)
    req = ImageRequest(prompt="p", whitebox=rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), seed=1, model=MODEL)
    with FakeGemini(known_models={MODEL, FALLBACK}) as fake:
        opts = {"base_url": fake.base_url, "use_cache": False, "retry_base_ms": 1, "retry_max_ms": 20,
                "retry_max": 4, "timeout_s": 2.0, "fallback_model": FALLBACK, **(extra or {})}  # fmt: skip
        if script == "refresh":
            fake.accept_tokens = {"fresh"}
            tokens = iter(["fresh"])
            backend = make_backend(
                "vertex", project="p", access_token="old", token_provider=lambda: next(tokens), **opts
            )
        else:
            backend = make_backend("gemini", api_key="k", **opts)
            if script == "unknown_model":
                req.model = "gemini-9-imaginary"
            else:
                for model, scenarios in script.items():
                    fake.script(model, scenarios)
        res = backend.generate(req)
        outcome = "image" if res.ok else f"failure: {res.failure.kind.value}"
        if res.ok and res.image.shape[:2] != (64, 64):
            outcome += f" ({res.image.shape[1]} px: the run resizes it to the canvas and notes it)"
        return f"| {name} | {fake.calls()} | {res.retries} | {'yes' if res.fallback else 'no'} | {outcome} |"


def test_fault_matrix_matches_the_docs():
    rows = [run_fault(*fault) for fault in FAULTS]
    text = "\n".join(
        [
            "# Fault matrix",
            "",
            "What the gemini backend does with each fault the fake service injects (real `google-genai` client).",
            "Written by `tests/unit/test_fault_matrix.py`; a change in behaviour fails that test until this file",
            "is regenerated (`ISOTILES_UPDATE_DOCS=1`). Retries: up to 4 here; timeout 2 s (60 s for the 4096 px",
            "answer); a fallback model is set unless the row says otherwise.",
            "A run stops at the first 404 or refused credentials ([backends.md](backends.md)).",
            "",
            "| fault | calls | retries | fallback | outcome |",
            "| --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )
    if os.environ.get("ISOTILES_UPDATE_DOCS"):
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(text)
    assert DOC.read_text() == text, "behaviour changed: regenerate docs/fault_matrix.md (ISOTILES_UPDATE_DOCS=1)"
