"""Seam QA of any tile set: every seam between two existing neighbor tiles, scored and ranked.

A seam joins tile ``a`` and its neighbor ``b`` to the right or below. Two modes,
chosen by the grid (the same for every seam of a set, so scores rank):

- ``band`` (the grid has padding): the two tiles both cover the padded overlap,
  the same ground, so that band is compared pixel by pixel (as in
  ``iso_qgis.imaging.seams``): ``score = band_rms + 0.5*offset + 0.5*gradient`` with the
  RMS deltaE over the band, the deltaE of the band means, and the gradient
  disagreement of L*.
- ``edge`` (no padding: cores meet edge to edge): only the boundary itself can be
  judged. ``across_de`` is the mean deltaE between the last core column of ``a``
  and the first of ``b``; ``within_de`` the same between same-tile neighbor pixels
  8, 16, 24 and 32 px from the boundary (pixel-art blocks keep their phase);
  ``offset`` the deltaE between the means of the 8 px strips on each side, and
  ``offset_trend`` the same between the two 8 px strips just inside each tile (what
  a smooth gradient gives anyway).
  ``score = max(0, across_de - within_de) + 0.5*max(0, offset - offset_trend)``.

Both modes also report ``step_ratio`` (mean |dL*| across the boundary over mean
|dL*| within, as ``seams.seam_step_ratio``; 1.0 = invisible), and the summary
gives that ratio over the whole set. Scores are deltaE units; 0 is a perfect seam.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..grid.sources import TileSource
from ..grid.tilejson import TileGrid, load_tilejson
from ..imaging.seams import SeamWeights, delta_e, rgb_to_lab, score_seam
from ..util.errors import IsoInputError
from ..util.feedback import Feedback
from ..util.fsutil import atomic_write, atomic_write_json
from .geotiff import write_geotiff

NODATA = -9999.0
HEAT_HALF_PX = 2  # the heatmap draws each seam 2 px either side of the boundary
STRIP_PX = 8
WITHIN_OFFSETS = (8, 16, 24, 32)
WORST_N = 20
MAX_TILES = 250_000
MAX_HEATMAP_PIXELS = 1 << 28
SCORE_FORMULA = {
    "band": "band_rms + 0.5*offset + 0.5*gradient",
    "edge": "max(0, across_de - within_de) + 0.5*max(0, offset - offset_trend)",
}
METRICS = ("step_ratio", "across_de", "within_de", "offset", "offset_trend", "band_rms", "cut_rms", "gradient")


@dataclass
class SeamReportResult:
    seams: list[dict]
    worst: list[dict]
    outputs: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Sums:
    """|dL*| sums and counts over the whole set, for its seam-step ratio."""

    across: float = 0.0
    n_across: int = 0
    within: float = 0.0
    n_within: int = 0


def _oriented(grid: TileGrid, z: int, a: tuple[int, int], b: tuple[int, int], side: str) -> dict[str, int]:
    """Global pixel positions of a seam seen as ``a | b`` (bottom seams transposed): across, then along."""
    ta, tb = grid.tile_origin_px(*a, z), grid.tile_origin_px(*b, z)
    ka, kb = grid.core_px(*a, z), grid.core_px(*b, z)
    i, j = (0, 1) if side == "right" else (1, 0)
    return {"oa": round(ta[i]), "ob": round(tb[i]), "bc": round(ka[i + 2]), "a0": round(ka[i]),
            "b1": round(kb[i + 2]), "o_al": round(ta[j]), "al0": round(ka[j]), "al1": round(ka[j + 2])}  # fmt: skip


def _offset(lab_a: np.ndarray, lab_b: np.ndarray) -> float:
    """deltaE between the mean colors of two strips."""
    return float(np.linalg.norm(lab_a.reshape(-1, 3).mean(0) - lab_b.reshape(-1, 3).mean(0)))


def _score(
    img_a: np.ndarray, img_b: np.ndarray, g: dict[str, int], padded: bool, sums: _Sums
) -> tuple[dict[str, float], np.ndarray, int]:
    """Metrics of one oriented seam, its heat patch (along x across) and the patch's first global across px."""
    la, lb, ca0, cb1 = g["bc"] - g["oa"], g["bc"] - g["ob"], g["a0"] - g["oa"], g["b1"] - g["ob"]
    r0, r1 = g["al0"] - g["o_al"], g["al1"] - g["o_al"]
    reach = max(WITHIN_OFFSETS) + 1
    sa0 = max(ca0, la - reach)  # the slabs near the boundary, inside each core
    lab_a = rgb_to_lab(img_a[r0:r1, sa0:la])
    lab_b = rgb_to_lab(img_b[r0:r1, lb : min(cb1, lb + reach)])
    n_a, n_b = lab_a.shape[1], lab_b.shape[1]
    across = np.abs(lab_a[:, -1, 0] - lab_b[:, 0, 0])
    across_de = delta_e(lab_a[:, -1], lab_b[:, 0])
    dl, de = [], []
    for k in WITHIN_OFFSETS:
        if k + 1 <= n_a:  # pixels la-1-k and la-k of a
            dl.append(np.abs(lab_a[:, -1 - k, 0] - lab_a[:, -k, 0]))
            de.append(delta_e(lab_a[:, -1 - k], lab_a[:, -k]))
        if k + 1 <= n_b:  # pixels lb-1+k and lb+k of b
            dl.append(np.abs(lab_b[:, k - 1, 0] - lab_b[:, k, 0]))
            de.append(delta_e(lab_b[:, k - 1], lab_b[:, k]))
    within = np.concatenate(dl) if dl else np.zeros(0)
    sums.across += float(across.sum())
    sums.n_across += across.size
    sums.within += float(within.sum())
    sums.n_within += within.size
    m_across, m_within = float(across.mean()), float(within.mean()) if within.size else 0.0
    m = {
        "step_ratio": (m_across + 0.01) / (m_within + 0.01),  # finite on flat tiles
        "across_de": float(across_de.mean()),
        "within_de": float(np.concatenate(de).mean()) if de else 0.0,
    }
    hw = HEAT_HALF_PX
    if padded:
        band_a, band_b = img_a[:, g["ob"] - g["oa"] :], img_b[:, : g["oa"] + img_a.shape[1] - g["ob"]]
        s, _, err = score_seam(band_a, band_b, "right", (0, 0), SeamWeights())
        m.update(offset=s.offset, band_rms=float(np.sqrt(np.mean(err**2))), cut_rms=s.cut_rms, gradient=s.gradient)
        m["score"] = m["band_rms"] + 0.5 * m["offset"] + 0.5 * m["gradient"]
        j0, j1 = max(g["bc"] - g["ob"] - hw, 0), min(g["bc"] - g["ob"] + hw, err.shape[1])
        return m, err[r0:r1, j0:j1], g["ob"] + j0
    w = min(STRIP_PX, n_a, n_b)
    m["offset"] = _offset(lab_a[:, n_a - w :], lab_b[:, :w])
    trend = []
    if n_a >= 2 * w:
        trend.append(_offset(lab_a[:, n_a - 2 * w : n_a - w], lab_a[:, n_a - w :]))
    if n_b >= 2 * w:
        trend.append(_offset(lab_b[:, w : 2 * w], lab_b[:, :w]))
    m["offset_trend"] = float(np.mean(trend)) if trend else 0.0
    m["score"] = max(0.0, m["across_de"] - m["within_de"]) + 0.5 * max(0.0, m["offset"] - m["offset_trend"])
    return m, np.repeat(across_de[:, None], 2 * hw, axis=1), g["bc"] - hw


def _paint(heat: np.ndarray, box: tuple[int, int], side: str, g: dict[str, int], patch: np.ndarray, c0: int) -> None:
    """Put a heat patch (oriented: along x across) into the range's global pixel array, keeping maxima."""
    if side == "right":
        r, c, p = g["al0"] - box[1], c0 - box[0], patch
    else:
        r, c, p = c0 - box[1], g["al0"] - box[0], patch.T
    view = heat[r : r + p.shape[0], c : c + p.shape[1]]
    view[...] = np.fmax(view, p[: view.shape[0], : view.shape[1]])


def select_tiles(grid: TileGrid, z: int, tiles: list[tuple[int, int]] | None) -> list[tuple[int, int]]:
    """The tiles to look at: those given, else every tile of the grid's tile range."""
    lv = grid.level(z)
    if tiles is None and lv.tile_range is None:
        raise IsoInputError(
            "REGION", "the tile set states no tile range, so 'every tile' is unknown", "Give a REGION or EXTENT"
        )
    x0, y0, x1, y1 = lv.tile_range or (0, 0, 0, 0)
    count = (x1 - x0 + 1) * (y1 - y0 + 1) if tiles is None else len(tiles)
    if count > MAX_TILES:  # checked before listing them: a world-wide XYZ range is astronomically large
        raise IsoInputError(
            "REGION", f"{count:,} tiles selected at zoom {z}, more than {MAX_TILES:,}", "Choose a smaller region"
        )
    if tiles is None:
        tiles = grid.range_tiles(x0, y0, x1 - x0 + 1, y1 - y0 + 1)
    picked = sorted({(int(x), int(y)) for x, y in tiles}, key=lambda t: (lv.row_index(t[1]), t[0]))
    if not picked:
        raise IsoInputError("REGION", "no tiles selected", "Choose a region over the tile set")
    return picked


def seam_report(
    tilejson: str | Path | TileGrid,
    *,
    layer: str | None = None,
    tiles: list[tuple[int, int]] | None = None,
    z: int | None = None,
    max_height_m: float | None = None,
    heatmap_path: str | os.PathLike[str] | None = None,
    lines_path: str | os.PathLike[str] | None = None,
    report_path: str | os.PathLike[str] | None = None,
    feedback: Feedback | None = None,
) -> SeamReportResult:
    """Score every seam between two existing neighbor tiles of ``tiles`` (default: the grid's tile range)."""
    fb = feedback or Feedback()
    grid = tilejson if isinstance(tilejson, TileGrid) else load_tilejson(tilejson, max_height_m=max_height_m)
    lv = grid.level(z)
    z = lv.z
    source = TileSource.for_layer(grid, layer)
    picked = select_tiles(grid, z, tiles)
    chosen = {(x, lv.row_index(y)) for x, y in picked}
    by_row: dict[int, list[int]] = {}
    for c, r in sorted(chosen):
        by_row.setdefault(r, []).append(c)
    row_ids = sorted(by_row)
    padded = lv.pad > 0
    mode = "band" if padded else "edge"
    images: dict[tuple[int, int], np.ndarray | None] = {}
    raw: list[tuple[dict, dict[str, int], np.ndarray, int]] = []
    sums, missing, skipped = _Sums(), [], 0

    def load_row(r: int) -> None:
        for c in by_row.get(r, []):
            if (c, r) not in images:
                xy = (c, lv.tile_y(r))
                img = source.read(*xy, z)
                if img is None:
                    missing.append(xy)
                elif img.shape[:2] != (lv.tile_size, lv.tile_size):
                    raise IsoInputError(
                        "TILE",
                        f"{source.location(*xy, z)} is {img.shape[1]}x{img.shape[0]} px, the tile set says "
                        f"{lv.tile_size}",
                        "Re-render the tile set or fix tileSize in its tilejson",
                    )
                images[(c, r)] = img

    fb.info(f"seam report: {len(picked)} tiles at zoom {z}, {mode} mode ({'padded' if padded else 'no'} overlap)")
    for i, r in enumerate(row_ids):
        fb.check_canceled()
        load_row(r)
        load_row(r + 1)
        for c in by_row[r]:
            for side, nb in (("right", (c + 1, r)), ("bottom", (c, r + 1))):
                if nb not in chosen:
                    continue
                img_a, img_b = images[(c, r)], images[nb]
                if img_a is None or img_b is None:
                    skipped += 1
                    continue
                a, b = (c, lv.tile_y(r)), (nb[0], lv.tile_y(nb[1]))
                g = _oriented(grid, z, a, b, side)
                oa, ob = (img_a, img_b) if side == "right" else (img_a.transpose(1, 0, 2), img_b.transpose(1, 0, 2))
                m, patch, c0 = _score(oa, ob, g, padded, sums)
                seam = {"a": a, "b": b, "side": side, "score": round(m.pop("score"), 4)}
                seam.update({k: round(float(v), 4) for k, v in m.items()})
                raw.append((seam, g, patch, c0))
        for key in [k for k in images if k[1] <= r]:
            del images[key]  # a row is done once its bottom seams are scored
        fb.progress(100.0 * (i + 1) / len(row_ids))
    gone = set(missing)
    present = [t for t in picked if t not in gone]
    if not present:
        raise IsoInputError(
            "LAYER",
            f"none of the {len(picked)} selected tiles exist under {source.template}",
            "Check LAYER (the tile folder inside the tile set) and the region",
        )
    if not raw:
        raise IsoInputError(
            "REGION",
            f"no two of the {len(present)} tiles present are neighbors, so there is no seam to score",
            "Choose a region covering at least two neighboring tiles",
        )
    seams = [s for s, *_ in raw]
    worst = sorted(seams, key=lambda s: -s["score"])[:WORST_N]
    scores = np.array([s["score"] for s in seams])
    ratio = (sums.across / sums.n_across) / (sums.within / sums.n_within) if sums.within > 0 else None
    x0, y0, w, h = TileGrid.tile_range(present)
    summary = {
        "seam_count": len(seams),
        "mode": mode,
        "score_formula": SCORE_FORMULA[mode],
        "mean_score": round(float(scores.mean()), 4),
        "median_score": round(float(np.median(scores)), 4),
        "max_score": round(float(scores.max()), 4),
        "seam_step_ratio": None if ratio is None else round(ratio, 4),
        "z": z,
        "tile_range": [x0, y0, w, h],
        "tiles_selected": len(picked),
        "tiles_present": len(present),
        "tiles_missing": len(missing),
        "seams_skipped": skipped,
    }
    fb.info(f"{len(seams)} seams, mean score {summary['mean_score']}, worst {summary['max_score']}")
    outputs: dict[str, str] = {}
    if heatmap_path:
        c0, r0, c1, r1 = (round(v) for v in grid.range_box_px(x0, y0, w, h, z))
        if (c1 - c0) * (r1 - r0) > MAX_HEATMAP_PIXELS:
            raise IsoInputError(
                "HEATMAP", f"the tile range is {c1 - c0}x{r1 - r0} px, too large for one heatmap", "Choose less"
            )
        heat = np.full((r1 - r0, c1 - c0), np.nan, np.float32)
        for seam, g, patch, pc0 in raw:
            _paint(heat, (c0, r0), seam["side"], g, patch, pc0)
        gt = grid.range_geotransform(x0, y0, w, h, z)
        heat = np.nan_to_num(heat, nan=NODATA)
        outputs["heatmap"] = str(write_geotiff(heatmap_path, heat, gt, grid.crs_wkt(), NODATA))
    if lines_path:
        outputs["lines"] = str(write_seam_lines(grid, z, seams, lines_path))
    if report_path:
        source_name = tilejson if not isinstance(tilejson, TileGrid) else grid.base_dir
        report = {"tilejson": str(source_name), "layer": source.layer, "template": source.template,
                  "summary": summary, "worst": worst, "missing_tiles": missing, "seams": seams}  # fmt: skip
        outputs["report"] = str(atomic_write_json(report_path, report))
    return SeamReportResult(seams, worst, outputs, summary)


def seam_edge(grid: TileGrid, z: int, seam: dict) -> list[tuple[float, float]]:
    """The shared core edge of a seam in the grid CRS: two points."""
    c0, r0, c1, r1 = grid.core_px(*seam["a"], z)
    cols, rows = ((c1, c1), (r0, r1)) if seam["side"] == "right" else ((c0, c1), (r1, r1))
    xs, ys = grid.pixel_to_crs(np.array(cols), np.array(rows), z)
    return [(float(x), float(y)) for x, y in zip(xs, ys)]


def write_seam_lines(grid: TileGrid, z: int, seams: list[dict], out_path: str | os.PathLike[str]) -> Path:
    """One LineString per seam along the shared core edge, worst first (``rank`` 1), atomically."""
    from osgeo import ogr, osr

    ogr.UseExceptions()
    osr.UseExceptions()  # stated per module: newer GDAL warns about each module left unstated
    out = Path(out_path)
    driver = {".geojson": "GeoJSON", ".json": "GeoJSON"}.get(out.suffix.lower(), "GPKG")
    ordered = sorted(seams, key=lambda s: -s["score"])

    def write(tmp: str) -> None:
        os.unlink(tmp)  # OGR wants to create the file itself
        ds = ogr.GetDriverByName(driver).CreateDataSource(tmp)
        srs = osr.SpatialReference()
        srs.SetFromUserInput(grid.crs_wkt())
        lyr = ds.CreateLayer("seams", srs, ogr.wkbLineString)
        for name in ("rank", "a_x", "a_y", "b_x", "b_y", "z"):
            lyr.CreateField(ogr.FieldDefn(name, ogr.OFTInteger))
        lyr.CreateField(ogr.FieldDefn("side", ogr.OFTString))
        for name in ("score", *METRICS):
            lyr.CreateField(ogr.FieldDefn(name, ogr.OFTReal))
        defn = lyr.GetLayerDefn()
        lyr.StartTransaction()
        for rank, s in enumerate(ordered, start=1):
            f = ogr.Feature(defn)
            values = {"rank": rank, "a_x": s["a"][0], "a_y": s["a"][1], "b_x": s["b"][0], "b_y": s["b"][1], "z": z}
            for k, v in {**values, "side": s["side"], "score": s["score"]}.items():
                f.SetField(k, v)
            for k in METRICS:
                if s.get(k) is not None:
                    f.SetField(k, s[k])
            line = ogr.Geometry(ogr.wkbLineString)
            for x, y in seam_edge(grid, z, s):
                line.AddPoint_2D(x, y)
            f.SetGeometry(line)
            lyr.CreateFeature(f)
        lyr.CommitTransaction()
        ds = None

    return atomic_write(out, write)
