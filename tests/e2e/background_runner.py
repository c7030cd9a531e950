"""Run the plugin's work the way the QGIS desktop does: in background tasks, again and again, in one session.

``python background_runner.py PLAN.json`` starts one QgsApplication, registers the
plugin's provider and then, for every step of the plan, runs it ``repeat`` times in
a row, each time in a task on Qt's thread pool:

- ``{"alg": ID, "params": {...}}``: a Processing algorithm through
  ``QgsProcessingAlgRunnerTask``, as the toolbox, the batch dialog and the modeler's
  Run dialog do (prepared on the main thread, run on a pooled thread);
- ``{"review": "regenerate", "folder": DIR, "tile": [x, y]}``: the review dock's
  *Regenerate* action in its ``ReviewTask``.

``{run}`` in a parameter's string becomes the repetition's number. One JSON line is
printed per run; a crash of QGIS ends the process with a signal, which the caller sees.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def wait(app, done: list, timeout: float = 300.0) -> None:
    end = time.monotonic() + timeout
    while not done:
        if time.monotonic() > end:
            raise TimeoutError("the task did not finish")
        app.processEvents()
        time.sleep(0.005)


def run_algorithm(app, step: dict, run: int) -> dict:
    from qgis.core import (
        QgsApplication,
        QgsProcessingAlgRunnerTask,
        QgsProcessingContext,
        QgsProcessingFeedback,
        QgsProject,
    )

    params = {k: v.replace("{run}", str(run)) if isinstance(v, str) else v for k, v in step["params"].items()}
    alg = QgsApplication.processingRegistry().createAlgorithmById(step["alg"])
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())  # QGIS's default invalid-geometry check, as a new user has it
    feedback = QgsProcessingFeedback()
    task = QgsProcessingAlgRunnerTask(alg, params, context, feedback)
    done: list = []
    task.executed.connect(lambda ok, results: done.append((ok, dict(results))))
    QgsApplication.taskManager().addTask(task)
    wait(app, done)
    ok, results = done[0]
    return {"ok": ok, "results": {k: v for k, v in results.items() if isinstance(v, (str, int, float))},
            "log": feedback.textLog()[-2000:]}  # fmt: skip


def run_review(app, step: dict, run: int) -> dict:
    from qgis.core import QgsApplication

    from iso_tile_stylizer.iso_qgis.run import review
    from iso_tile_stylizer.ui.review_dock import ReviewTask

    x, y = step["tile"]
    done: list = []
    task = ReviewTask(
        f"regenerate {x},{y}",
        lambda fb: review.regenerate_tile(step["folder"], x, y, k=1, feedback=fb, backend="offline"),
        lambda result, error: done.append((result, error)),
    )
    QgsApplication.taskManager().addTask(task)
    wait(app, done)
    result, error = done[0]
    return {"ok": error is None, "results": {"accepted": bool(result)}, "log": repr(error) if error else ""}


def main(plan_path: str) -> int:
    plan = json.loads(Path(plan_path).read_text())
    sys.path.insert(0, plan["plugins_dir"])
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    sys.path.append(str(Path(QgsApplication.pkgDataPath()) / "python" / "plugins"))  # QGIS's own processing
    from processing.core.Processing import Processing

    Processing.initialize()
    from iso_tile_stylizer.processing.provider import IsoTilesProvider

    provider = IsoTilesProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    import pyproj
    from qgis.core import Qgis

    print(json.dumps({"session": {"pyproj": pyproj.__version__, "qgis": Qgis.QGIS_VERSION}}), flush=True)
    for step in plan["steps"]:
        for run in range(plan.get("repeat", 3)):
            out = run_algorithm(app, step, run) if "alg" in step else run_review(app, step, run)
            print(json.dumps({"step": step.get("alg") or step.get("review"), "run": run, **out}), flush=True)
    QgsApplication.processingRegistry().removeProvider(provider)
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
