"""The lattice schedule: at most four phases whatever the size, no tile waiting for one of its own
phase, every candidate seeing and scored against all the accepted neighbors it has; and a run through
it resumes, cancels, stops early (GOOD_ENOUGH) and goes phase by phase through a phase runner."""

from __future__ import annotations

import hashlib
import json
import threading

import pytest
from isotiles_testing import Counting, patch

from iso_tile_stylizer.iso_qgis.backends.genai_backend import request_layout
from iso_tile_stylizer.iso_qgis.backends.offline import OfflineBackend
from iso_tile_stylizer.iso_qgis.plan.phases import OnlinePhaseRunner
from iso_tile_stylizer.iso_qgis.plan.schedule import NEIGHBOR_MODES, Lattice, Wavefront, waves
from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, run_generation
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError
from iso_tile_stylizer.iso_qgis.util.feedback import Feedback

OPPOSITE = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}
OFFSET = {"left": (-1, 0), "right": (1, 0), "top": (0, -1), "bottom": (0, 1)}


def grid(w, h, x0=0, y0=0):
    return [(x, y) for y in range(y0, y0 + h) for x in range(x0, x0 + w)]


# ------------------------------------------------------------------ the schedule
@pytest.mark.parametrize("size", [(1, 1), (2, 1), (3, 3), (16, 16), (64, 64), (7, 40)])
@pytest.mark.parametrize("origin", [(0, 0), (3, 5)])  # odd origins: the parity, not the patch corner, decides
def test_at_most_three_phases_whatever_the_size(size, origin):
    tiles = grid(*size, *origin)
    lattice = Lattice("left+top")
    deps = lattice.dependencies(tiles)
    assert len(waves(tiles, deps)) <= 3  # row and column gaps wait for even-even tiles only: one phase
    assert len(lattice.phases(tiles)) <= 3
    assert sorted(t for p in lattice.phases(tiles) for t in p) == sorted(tiles)
    for t, ds in deps.items():
        assert all(lattice.phase(d) < lattice.phase(t) for d in ds), "a tile waits for one of its own phase"


def test_the_wavefront_grows_with_the_patch_and_the_lattice_does_not():
    for n in (4, 16, 64):
        tiles = grid(n, n)
        assert len(waves(tiles, Wavefront("left+top").dependencies(tiles))) == 2 * n - 1
        assert len(waves(tiles, Lattice("left+top").dependencies(tiles))) == 3


def test_phases_are_even_tiles_then_rows_then_columns_then_the_rest():
    lattice = Lattice("left+top")
    tiles = grid(5, 5)
    deps = lattice.dependencies(tiles)
    sides = {t: {s for s in OFFSET if (t[0] + OFFSET[s][0], t[1] + OFFSET[s][1]) in deps[t]} for t in tiles}
    assert sides[(2, 2)] == set()  # even-even: alone
    assert sides[(1, 2)] == {"left", "right"}  # between two in a row
    assert sides[(2, 1)] == {"top", "bottom"}  # in a column
    assert sides[(1, 1)] == {"left", "right", "top", "bottom"}  # the rest
    assert sides[(4, 1)] == {"top", "bottom"} and sides[(3, 4)] == {"left", "right"}  # on the patch's edge
    holes = [t for t in tiles if t not in ((2, 2), (2, 3))]
    assert lattice.dependencies(holes)[(1, 2)] == {(0, 2)}  # a neighbor not in the run is not waited for


@pytest.mark.parametrize(("mode", "phases", "sides"), [
    ("left+top", 3, {"left", "right", "top", "bottom"}), ("all", 3, {"left", "right", "top", "bottom"}),
    ("left", 2, {"left", "right"}), ("top", 2, {"top", "bottom"}), ("none", 1, set()),
])  # fmt: skip
def test_neighbor_mode_names_the_axes(mode, phases, sides):
    lattice = Lattice(mode)
    assert set(lattice.sides) == sides
    assert len(lattice.phases(grid(6, 6))) == phases
    assert len({lattice.phase(t) for t in grid(6, 6)}) == {3: 4}.get(phases, phases)
    assert set(NEIGHBOR_MODES) == {"left+top", "all", "left", "top", "none"}


# ------------------------------------------------------------------ runs
def config(city, out, **kw):
    base = {"tiles": patch(city, 5, 3), "k": 2, "overlap_px": 16, "concurrency": 4, "schedule": "lattice"}
    return RunConfig(tilejson=str(city), out_dir=str(out), **{**base, **kw})


class Recording(Counting):
    """Counts calls and keeps, per tile, the sides of the neighbors each request carried."""

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.sides: dict[tuple[int, int], set[frozenset]] = {}

    def generate(self, req):
        with self.lock:
            self.sides.setdefault(req.tile[:2], set()).add(frozenset(req.neighbors))
        return super().generate(req)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_lattice_run_gives_every_tile_its_accepted_neighbors_on_every_side(city, tmp_path):
    backend = Recording(OfflineBackend())
    tiles = [(x, y - 1) for x, y in patch(city, 5, 3)]  # from (1, 0): (3, 1) has a neighbor on each side
    res = run_generation(config(city, tmp_path, tiles=tiles), backend=backend)
    assert res.accepted_count == len(tiles) and backend.calls == 2 * len(tiles)
    report = json.loads((tmp_path / "report_nb_pro.json").read_text())
    assert report["config"]["schedule"] == "lattice"
    lattice = Lattice("left+top")
    for x, y in tiles:
        rec = report["tiles"][f"{x}_{y}"]
        near = {s: (x + dx, y + dy) for s, (dx, dy) in OFFSET.items()}
        earlier = {s for s, n in near.items() if n in tiles and lattice.phase(n) < lattice.phase((x, y))}
        assert backend.sides[(x, y)] == {frozenset(earlier)}  # every request: the earlier neighbors, by side
        chosen = next(c for c in rec["candidates"] if c["index"] == rec["chosen"])
        assert {s["side"] for s in chosen["seams"]} == earlier  # scored against each of them
    assert backend.sides[(3, 1)] == {frozenset(OFFSET)}


def test_requests_label_the_neighbors_by_side():
    import numpy as np

    from iso_tile_stylizer.iso_qgis.backends.base import ImageRequest

    img = np.zeros((4, 4, 3), np.uint8)
    req = ImageRequest(
        prompt="p", whitebox=img, seed=1, model="m", neighbors={s: img for s in ("bottom", "right", "top", "left")}
    )
    labels = [p for p in request_layout(req) if isinstance(p, str) and p.startswith("NEIGHBOR")]
    assert [lab.split()[1] for lab in labels] == ["LEFT", "TOP", "RIGHT", "BOTTOM"]


def test_phase_by_phase_through_a_runner_gives_the_same_tiles_as_the_ready_queue(city, tmp_path):
    run_generation(config(city, tmp_path / "queue"))

    class Batchlike(OnlinePhaseRunner):
        """Sends each phase's requests itself and completes the jobs with the answers, as a batch would."""

        def __init__(self) -> None:
            super().__init__(4)
            self.phases: list[int] = []
            self.backend = OfflineBackend()

        def run_phase(self, index, jobs, is_canceled):
            self.phases.append(len(jobs))
            requests = {job.key: job.request for job in jobs}
            assert len(requests) == len(jobs)  # keys name the jobs
            return [job.complete(self.backend.generate(requests[job.key])) for job in jobs]

    runner = Batchlike()
    res = run_generation(config(city, tmp_path / "phases"), phase_runner=runner)
    assert res.accepted_count == 15 and not res.canceled
    phases = Lattice("left+top").phases(patch(city, 5, 3))
    assert runner.phases == [2 * len(p) for p in phases] and len(phases) == 3  # K jobs per tile
    online = run_generation(config(city, tmp_path / "online"), phase_runner=OnlinePhaseRunner(3))
    assert online.accepted_count == 15
    for name in ("mosaic.tif", "seam_heatmap.tif"):
        assert _digest(tmp_path / "phases" / name) == _digest(tmp_path / "queue" / name)
        assert _digest(tmp_path / "online" / name) == _digest(tmp_path / "queue" / name)


class CancelAfter(Feedback):
    def __init__(self, n) -> None:
        super().__init__()
        self.n, self.done = n, 0
        self.lock = threading.Lock()

    def status(self, done, total, counters):
        self.done = done

    def is_canceled(self):
        return self.done >= self.n


@pytest.mark.parametrize("phased", [False, True])
def test_a_canceled_lattice_run_resumes_to_the_same_tiles(city, tmp_path, phased):
    runner = OnlinePhaseRunner(1) if phased else None
    cut = run_generation(config(city, tmp_path / "cut", concurrency=1), CancelAfter(4), phase_runner=runner)
    assert cut.canceled and 4 <= cut.accepted_count < 15
    done = run_generation(config(city, tmp_path / "cut", concurrency=1), phase_runner=runner)
    assert done.accepted_count == 15 and not done.canceled
    assert done.totals["this_run"]["calls"] <= 2 * (15 - cut.accepted_count)  # accepted tiles were kept
    run_generation(config(city, tmp_path / "whole"))  # the same patch, never stopped
    for x, y in patch(city, 5, 3):
        name = f"accepted/0/{x}_{y}.png"
        assert _digest(tmp_path / "cut" / name) == _digest(tmp_path / "whole" / name), name


def test_good_enough_stops_lattice_tiles_early(city, tmp_path):
    backend = Counting(OfflineBackend())
    res = run_generation(config(city, tmp_path, k=3, good_enough=1e9), backend=backend)
    assert res.accepted_count == 15 and backend.calls == 15  # the first candidate of each is enough


def test_a_folder_keeps_its_schedule(city, tmp_path):
    run_generation(config(city, tmp_path, schedule="wavefront", tiles=patch(city, 2, 1)))
    with pytest.raises(IsoInputError, match="schedule"):
        run_generation(config(city, tmp_path, tiles=patch(city, 2, 1)))
    settings = json.loads((tmp_path / "run_state.json").read_text())["settings"]
    assert "schedule" not in settings  # wavefront folders keep the settings they had before lattices


def test_an_unknown_schedule_is_refused_by_name(city, tmp_path):
    with pytest.raises(IsoInputError, match=r"SCHEDULE.*spiral.*wavefront, lattice"):
        run_generation(config(city, tmp_path, schedule="spiral"))
    assert not tmp_path.joinpath("run_state.json").exists()


def test_review_of_a_lattice_folder_rebuilds_it_and_the_dry_run_counts_its_context(city, tmp_path):
    from iso_tile_stylizer.iso_qgis.run.review import folder_run, regenerate_tile

    run_generation(config(city, tmp_path / "run", tiles=patch(city, 3, 3)))
    assert folder_run(tmp_path / "run").config.schedule == "lattice"
    x, y = patch(city, 3, 3)[4]
    assert regenerate_tile(tmp_path / "run", x, y, k=1)["changed"]
    dry = run_generation(config(city, tmp_path / "dry", tiles=patch(city, 3, 3), backend="gemini", dry_run=True))
    per_tile = {k: t["images_per_call"] for k, t in dry.report["tiles"].items()}
    lattice = Lattice("left+top")
    for tx, ty in patch(city, 3, 3):
        earlier = [n for n in ((tx - 1, ty), (tx + 1, ty), (tx, ty - 1), (tx, ty + 1))
                   if n in patch(city, 3, 3) and lattice.phase(n) < lattice.phase((tx, ty))]  # fmt: skip
        assert per_tile[f"{tx}_{ty}"] == len(earlier) + 1  # the neighbors and the whitebox (no reference)


def test_the_command_line_takes_a_schedule(city, tmp_path, capsys):
    from iso_tile_stylizer.iso_qgis.cli.main import main

    (x0, y0), *_ = patch(city, 3, 1)
    base = ["generate", "--tilejson", str(city), "--x0", str(x0), "--y0", str(y0), "--w", "3", "--h", "1", "--k", "1"]
    assert main([*base, "--out_dir", str(tmp_path / "l"), "--schedule", "lattice"]) == 0
    assert json.loads((tmp_path / "l" / "run_state.json").read_text())["settings"]["schedule"] == "lattice"
    with pytest.raises(SystemExit):
        main([*base, "--out_dir", str(tmp_path / "s"), "--schedule", "spiral"])
    assert "invalid choice: 'spiral'" in capsys.readouterr().err


@pytest.mark.parametrize(("mode", "sides"), [("left", {"left", "right"}), ("top", {"top", "bottom"}), ("none", set())])
def test_neighbor_mode_limits_a_lattice_runs_context_to_its_axes(city, tmp_path, mode, sides):
    backend = Recording(OfflineBackend())
    tiles = [(x, y - 1) for x, y in patch(city, 3, 3)]
    res = run_generation(config(city, tmp_path, tiles=tiles, k=1, neighbor_mode=mode), backend=backend)
    assert res.accepted_count == 9
    seen = set().union(*(s for per_tile in backend.sides.values() for s in per_tile))
    assert seen == sides


@pytest.mark.parametrize("schedule", ["wavefront", "lattice"])
@pytest.mark.parametrize("mode", ["left+top", "all"])
def test_the_dry_run_counts_the_neighbors_a_run_sends(city, tmp_path, schedule, mode):
    """A dry run's images per call are those of the run's own requests (under NEIGHBOR_MODE all a wavefront
    tile's right and bottom neighbors of the same run come after it: never sent)."""
    tiles = patch(city, 3, 2)
    backend = Recording(OfflineBackend())
    run_generation(config(city, tmp_path / "run", tiles=tiles, k=1, neighbor_mode=mode, schedule=schedule),
                   backend=backend)  # fmt: skip
    dry = run_generation(config(city, tmp_path / "dry", tiles=tiles, k=1, neighbor_mode=mode, schedule=schedule,
                                backend="gemini", dry_run=True))  # fmt: skip
    for tx, ty in tiles:
        (sent,) = backend.sides[(tx, ty)]
        assert dry.report["tiles"][f"{tx}_{ty}"]["images_per_call"] == len(sent) + 1, (tx, ty, sorted(sent))
