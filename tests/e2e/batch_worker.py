"""A process that sends one phase as a batch job, or resumes its jobs, against the fake service.

``python batch_worker.py submit|resume BASE_URL STATE.json CACHE_DIR`` (the plugin importable as
``iso_tile_stylizer``). ``submit`` keeps the job records in STATE.json as soon as the job exists, as a run
state would, then polls; ``resume`` polls the jobs STATE.json holds. Prints one JSON line: how many
requests have an image, and the outcome's summary.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from iso_tile_stylizer.iso_qgis.backends import make_backend
from iso_tile_stylizer.iso_qgis.backends.base import ImageRequest
from iso_tile_stylizer.iso_qgis.backends.batch_records import BatchSettings
from iso_tile_stylizer.iso_qgis.backends.genai_batch import BatchRunner
from iso_tile_stylizer.iso_qgis.util.fsutil import atomic_write_json

MODEL = "gemini-3-pro-image"


def phase() -> dict[str, ImageRequest]:
    rng = np.random.default_rng(7)
    anchors = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)]
    out = {}
    for t in range(2):
        wb = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        for c in range(2):
            out[f"{t}_c{c}"] = ImageRequest(prompt="style it", whitebox=wb, seed=10 * t + c, model=MODEL,
                                            anchors=anchors)  # fmt: skip
    return out


def main() -> None:
    mode, base_url, state, cache = sys.argv[1:5]
    backend = make_backend("gemini", api_key="k", base_url=base_url, cache_dir=cache, timeout_s=10)

    def keep(records):
        atomic_write_json(state, {"batch_jobs": [r.as_dict() for r in records]})

    runner = BatchRunner(backend, BatchSettings(poll_s=0.05), on_jobs=keep)
    reqs = phase()
    if mode == "submit":
        out = runner.run(reqs)
    else:
        with open(state, encoding="utf-8") as fh:
            out = runner.resume(json.load(fh)["batch_jobs"], reqs)
    print(json.dumps({"images": sum(1 for r in out.results.values() if r.ok), "summary": out.summary()}))


if __name__ == "__main__":
    main()
