"""isotiles:generatetiles: K candidates per tile, seams scored, best kept, outputs loaded in a group."""

from __future__ import annotations

import os
from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterAuthConfig,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..iso_qgis.cli.generate import anchor_files
from ..iso_qgis.grid.resolve import resolve
from ..iso_qgis.plan.stages import DRIFT_STAGES, MODES
from ..iso_qgis.run.neighbors import AUTO, NEIGHBOR_CHOICES, SCHEDULE_CHOICES, resolve_neighbor_mode, resolve_schedule
from ..iso_qgis.util.pythread import on_python_thread
from .alg_resolve import add_region_params, add_tilejson_params, region_kwargs, zoom_and_height
from .common import EngineFeedback, IsoAlgorithm, engine_errors, labelled
from .postprocess import load_output
from .settings import backend_options, read_settings

BACKENDS = ["offline", "vertex", "gemini", "endpoint"]
CONTEXT_CHOICES = ["auto", "images", "template"]
TEMPLATE_SIZES = ["1024", "2048"]
GOOD_ENOUGH_HELP = (
    "Suggested: 12.5 with the default weights. On the Helsinki sample with the offline backend and K=4 the "
    "best of 4 had a median of 12.3 and a quarter of all candidates scored below 12.5; with 12.5 the run made "
    "116 calls instead of 180 with the same seam-step ratio (0.98). A tile's candidates are then asked one "
    "after another, so a slow model takes longer per tile. Scores depend on the model and the weights: read a "
    "run's report (tiles, candidates, score, total) before choosing."
)


def _text(alg: IsoAlgorithm, parameters: dict, context, text_key: str, file_key: str) -> str:
    text = alg.parameterAsString(parameters, text_key, context)
    path = alg.parameterAsFile(parameters, file_key, context)
    if path:
        if not os.path.isfile(path):
            raise QgsProcessingException(
                labelled(alg, f"{file_key}: {path} does not exist. Give an existing text file")
            )
        return Path(path).read_text(encoding="utf-8").strip()
    return text.strip()


def _context(backend: str, choice: str) -> str:
    """CONTEXT auto: templates for a self-hosted infill model, labeled images for the others."""
    if choice != "auto":
        return choice
    return "template" if backend == "endpoint" else "images"


#: map variants (iso_qgis.plan.presets); "": the prompt as it is
PRESET_CHOICES = ["", "night", "winter"]
PRESET_LABELS = ["none", "night", "winter"]


class GenerateTilesAlgorithm(IsoAlgorithm):
    HELP = (
        "Generates stylized isometric tiles for a region of a whitebox tile set. For every tile, in dependency "
        "order, the image model is asked for K candidates (style anchors, prompt, the whitebox tile, the color "
        "reference tile, accepted neighbors as context); each candidate's seams are scored in CIELAB against the "
        "accepted neighbors on the same ground, and the best is kept. Tiles are composited with minimum-error cuts "
        "and written as tiles/{z}/{x}/{y}.png with a tilejson, a georeferenced mosaic GeoTIFF, a seam heatmap, a "
        "VRT of the tiles, footprints and a JSON report.\n\n"
        "Which tiles: one of REGION, EXTENT, or the tile range X0, Y0, W, H.\n\n"
        "A rerun into the same folder resumes; other settings are refused unless OVERWRITE is set (the old run is "
        "moved aside, never deleted). Patches written into one folder (batch rows, say) make one seamless tile "
        "set: NEIGHBOR_MODE auto (advanced, the default) scores a patch's border tiles against the tiles other "
        "patches accepted there, and says so in the log. The offline backend is embedded and free; vertex and "
        "gemini call Gemini image models.\n\n"
        "A model's drift (advanced; auto: registration and color match on for vertex and gemini, multi-band "
        "blending off, all off for offline, as measured): image models "
        "move, scale and recolor what they draw. Each answer is registered to the whitebox by its edges and put "
        "back on the input grid (an answer that cannot be is a failed candidate, 'drifted', and asked again); each "
        "tile's colors are matched to its accepted neighbors over the shared bands, fading out across the tile; "
        "seams can be blended band by band.\n\n"
        "Adaptive K (GOOD_ENOUGH, advanced; empty: off): A tile's candidates are asked one after another and "
        "no more are asked once one has a score total below this number (lower is better; at most K calls). "
        f"{GOOD_ENOUGH_HELP}"
    )

    def name(self) -> str:
        return "generatetiles"

    def displayName(self) -> str:
        return "Generate stylized tiles"

    def initAlgorithm(self, config=None) -> None:
        add_tilejson_params(self)
        self.addParameter(
            QgsProcessingParameterFile(
                "REF_TILEJSON",
                "Color reference tile set (default: the same)",
                optional=True,
                fileFilter="TileJSON (*.json)",
            )
        )
        self.addParameter(
            QgsProcessingParameterString("REF_LAYER", "Color reference layer (default: raw_satellite)", optional=True)
        )
        add_region_params(self, "Region: polygons (or the extent, or the tile range below)")
        num = QgsProcessingParameterNumber
        for key, desc in (
            ("X0", "Or: first tile x"),
            ("Y0", "first tile y"),
            ("W", "tiles across"),
            ("H", "tiles down"),
        ):
            self.addParameter(num(key, desc, num.Integer, optional=True))
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                "ANCHORS", "Style anchor images", QgsProcessing.SourceType.TypeFile, optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                "ANCHORS_DIR",
                "Or: folder of style anchor images",
                QgsProcessingParameterFile.Behavior.Folder,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterString("PROMPT", "Prompt (empty: the built-in one)", multiLine=True, optional=True)
        )
        preset = QgsProcessingParameterEnum("PRESET", "Map variant (added to the prompt)", PRESET_LABELS, False, 0)
        preset.setHelp("night or winter: the same map in another light or season, geometry kept")
        self.addParameter(preset)
        self.addParameter(
            QgsProcessingParameterFile("PROMPT_FILE", "Or: prompt file", optional=True, fileFilter="Text (*.txt *.md)")
        )
        self.addParameter(
            QgsProcessingParameterString("NEGATIVE_PROMPT", "Negative prompt", multiLine=True, optional=True)
        )
        self.addParameter(QgsProcessingParameterFile("NEGATIVE_PROMPT_FILE", "Or: negative prompt file", optional=True))
        self.addParameter(QgsProcessingParameterEnum("BACKEND", "Image model backend", BACKENDS, defaultValue=0))
        self.addParameter(num("K", "Candidates per tile (K)", num.Integer, 4, minValue=1, maxValue=16))
        self.addParameter(
            QgsProcessingParameterBoolean("DRY_RUN", "Dry run: count calls and estimate the cost, call nothing", False)
        )
        good_enough = num(
            "GOOD_ENOUGH", "Adaptive K: stop asking a tile at a score total below (empty: off)", num.Double,
            optional=True, minValue=0.0,
        )  # fmt: skip
        good_enough.setHelp(f"Off when empty. {GOOD_ENOUGH_HELP}")
        neighbor_mode = QgsProcessingParameterEnum(
            "NEIGHBOR_MODE", "Neighbors scored against (auto: all, or the folder's own)", list(NEIGHBOR_CHOICES),
            False, NEIGHBOR_CHOICES.index(AUTO),
        )  # fmt: skip
        neighbor_mode.setHelp(
            "auto: all in a new folder (for one patch the same neighbors as left+top: a run makes a tile's right "
            "and bottom neighbors after it), so patches written into the folder later are scored and composited "
            "against its tiles on every side; in a folder that holds a run, that run's mode, so a rerun resumes."
        )
        schedule = QgsProcessingParameterEnum(
            "SCHEDULE", "Schedule (auto: lattice, or the folder's own)", list(SCHEDULE_CHOICES), False,
            SCHEDULE_CHOICES.index(AUTO),
        )  # fmt: skip
        schedule.setHelp(
            "wavefront: a tile waits for its left and top neighbors, W + H - 1 waves for a W x H patch. lattice: 3 "
            "phases whatever the size: tiles that do not touch first, then the tiles between them with context on "
            "two sides (left and right, or top and bottom), then the rest with context on all four."
        )
        batch = QgsProcessingParameterBoolean("BATCH", "Batch API: each phase as one batch job (half price)", False)
        batch.setHelp(
            "With the lattice schedule and the gemini or vertex backend: the K requests of every tile of a phase go "
            "to Google's Batch API together, at half the online price; the run waits for each phase's job (minutes "
            "to hours), a stopped run polls the same jobs again when started again, and requests that fail inside "
            "a batch are asked online."
        )
        batch_bucket = QgsProcessingParameterString(
            "BATCH_BUCKET", "Batch API bucket (vertex: gs://BUCKET/PREFIX)", optional=True
        )
        batch_bucket.setHelp(
            "Vertex AI reads a batch's requests from Cloud Storage and writes its answers there: a bucket in the "
            "project's region. Not needed with the gemini backend."
        )
        context_mode = QgsProcessingParameterEnum("CONTEXT", "Context: how a model is asked", CONTEXT_CHOICES, False, 0)
        context_mode.setHelp(
            "images: each accepted neighbor as a labeled image beside the tile's input; the model imagines the "
            "joins. template: one image of the model's input size, the tile's input outlined in red among the "
            "accepted neighbors' pixels (what infill models fine-tuned on isometric tiles expect); the answer's "
            "drift and color change are measured on the neighbors it redraws. auto: template for the endpoint "
            "backend, images otherwise. Part of an output folder's settings."
        )
        template_px = QgsProcessingParameterEnum("TEMPLATE_PX", "Template size, px", TEMPLATE_SIZES, False, 0)
        defaults = read_settings()
        endpoint_url = QgsProcessingParameterString(
            "ENDPOINT_URL", "Endpoint URL (endpoint backend; from the plugin settings unless changed)",
            defaultValue=defaults["endpoint_url"] or None, optional=True,
        )  # fmt: skip
        advanced = [
            context_mode,
            template_px,
            endpoint_url,
            QgsProcessingParameterString("MODEL", "Model id (empty: the backend's default)", optional=True),
            QgsProcessingParameterString("FALLBACK_MODEL", "Fallback model id", optional=True),
            good_enough,
            num("OVERLAP_PX", "Canvas overlap per side, px (grids without padding)", num.Integer, 64, minValue=0),
            neighbor_mode,
            schedule,
            batch,
            batch_bucket,
            num("SEED", "Base seed", num.Integer, 1234),
            num("CONCURRENCY", "Concurrent model calls", num.Integer, 4, minValue=1, maxValue=64),
            QgsProcessingParameterBoolean("KEEP_CANDIDATES", "Keep every candidate on disk", True),
            QgsProcessingParameterBoolean("HARMONIZE", "Harmonize colors with neighbors (Lab gain/offset)", False),
            QgsProcessingParameterBoolean(
                "FILL_UNIFORM", "Fill tiles of one ground class with no building from the style (no model call)", True
            ),
            QgsProcessingParameterEnum(
                "HOLD_WATER",
                "Hold water's color across the map (auto: where the ground has water)",
                list(MODES),
                False,
                0,
            ),
            QgsProcessingParameterFile(
                "TILE_TYPES",
                "Tile types by ground shares (JSON rows; default: water, park, rail ...)",
                optional=True,
                fileFilter="JSON (*.json)",
            ),
            QgsProcessingParameterBoolean("OVERWRITE", "Start again in a used folder (old run moved aside)", False),
            *(
                QgsProcessingParameterEnum(key, label, list(MODES), False, 0)
                for key, label in (
                    ("REGISTER", "A model's drift: put each answer back on the input grid"),
                    ("COLOR_MATCH", "A model's drift: match each tile's colors to its neighbors"),
                    ("MULTIBAND", "A model's drift: blend seams band by band"),
                )
            ),
            # the defaults are what the plugin settings hold now, so the dialog shows what a run will use
            QgsProcessingParameterAuthConfig(
                "AUTHCFG",
                "API key / access token (from the plugin settings unless changed)",
                defaultValue=defaults["authcfg"] or None,
                optional=True,
            ),
            QgsProcessingParameterString(
                "PROJECT",
                "Vertex AI project (from the plugin settings unless changed)",
                defaultValue=defaults["project"] or None,
                optional=True,
            ),
            QgsProcessingParameterString(
                "LOCATION",
                "Vertex AI location (from the plugin settings unless changed)",
                defaultValue=defaults["location"] or None,
                optional=True,
            ),
        ]
        for p in advanced:
            p.setFlags(p.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(p)
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_DIR", "Output folder"))
        self.addOutput(QgsProcessingOutputRasterLayer("MOSAIC", "Mosaic (GeoTIFF)"))
        self.addOutput(QgsProcessingOutputRasterLayer("HEATMAP", "Seam heatmap (GeoTIFF, ΔE)"))
        self.addOutput(QgsProcessingOutputRasterLayer("TILES", "Selected tiles (VRT)"))
        self.addOutput(QgsProcessingOutputVectorLayer("FOOTPRINTS", "Tile footprints"))
        self.addOutput(QgsProcessingOutputFile("REPORT", "Report (JSON)"))
        self.addOutput(QgsProcessingOutputFile("TILES_TILEJSON", "Stylized tile set (tilejson.json)"))
        self.addOutput(QgsProcessingOutputNumber("TILE_COUNT", "Tiles accepted"))
        self.addOutput(QgsProcessingOutputNumber("FAILED_COUNT", "Tiles failed"))
        self.addOutput(QgsProcessingOutputNumber("CALLS", "Model calls"))
        self.addOutput(QgsProcessingOutputNumber("ESTIMATED_COST_USD", "Estimated cost (USD)"))

    def _tile_range(self, parameters: dict, context) -> tuple[int, int, int, int] | None:
        keys = ("X0", "Y0", "W", "H")
        given = [parameters.get(k) not in (None, "") for k in keys]
        if not any(given):
            return None
        if not all(given):
            raise QgsProcessingException(labelled(self, "X0/Y0/W/H: a tile range needs all four. Give X0, Y0, W and H"))
        return tuple(self.parameterAsInt(parameters, k, context) for k in keys)  # type: ignore[return-value]

    def checkParameterValues(self, parameters, context):
        """One of the three ways to say which tiles is needed (each is optional on its own)."""
        ok, message = super().checkParameterValues(parameters, context)
        if ok and all(parameters.get(k) in (None, "") for k in ("REGION", "EXTENT", "X0", "Y0", "W", "H")):
            why = "REGION: no tiles chosen. "
            why += "Choose a polygon layer as REGION, or give EXTENT, or a tile range X0, Y0, W, H"
            return False, labelled(self, why)
        return ok, message

    def prepareAlgorithm(self, parameters, context, feedback):
        # on the main thread: the settings and the authentication database
        backend = BACKENDS[self.parameterAsEnum(parameters, "BACKEND", context)]
        overrides = {
            key.lower(): self.parameterAsString(parameters, key, context)
            for key in ("AUTHCFG", "PROJECT", "LOCATION", "ENDPOINT_URL")
        }
        dry_run = self.parameterAsBool(parameters, "DRY_RUN", context)  # prices only: no key, no master password
        try:
            self._backend_options = backend_options(backend, overrides, with_secret=not dry_run)
        except QgsProcessingException as exc:  # the key's configuration: named as the dialog names it
            raise QgsProcessingException(labelled(self, str(exc))) from exc
        self._defaults = read_settings()
        return True

    def processAlgorithm(self, parameters, context, feedback):
        from ..iso_qgis.plan.presets import with_preset
        from ..iso_qgis.plan.runconfig import DEFAULT_PROMPT
        from ..iso_qgis.plan.tiletypes import load_table, settings_table
        from ..iso_qgis.run.generation import RunConfig, run_generation

        tilejson = self.parameterAsFile(parameters, "TILEJSON", context)
        zoom, height = zoom_and_height(self, parameters, context)
        out_dir = self.parameterAsString(parameters, "OUTPUT_DIR", context)
        with engine_errors(self):
            kw = region_kwargs(self, parameters, context)
            tile_range = self._tile_range(parameters, context)
            if tile_range is not None:
                if kw:
                    raise QgsProcessingException("REGION: give a region or a tile range, not both")
                kw = {"tile_range": tile_range}
            layer = self.parameterAsString(parameters, "LAYER", context) or "raw_whitebox"
            res = on_python_thread(resolve, tilejson, z=zoom, max_height_m=height, layer=layer, **kw)
            anchors = anchor_files(
                self.parameterAsFile(parameters, "ANCHORS_DIR", context) or None,
                [p for p in self.parameterAsFileList(parameters, "ANCHORS", context) if p],
            )
            backend = BACKENDS[self.parameterAsEnum(parameters, "BACKEND", context)]
            overwrite = self.parameterAsBool(parameters, "OVERWRITE", context)
            requested = NEIGHBOR_CHOICES[self.parameterAsEnum(parameters, "NEIGHBOR_MODE", context)]
            neighbor_mode, why = resolve_neighbor_mode(requested, out_dir, res.tiles, overwrite)
            requested_schedule = SCHEDULE_CHOICES[self.parameterAsEnum(parameters, "SCHEDULE", context)]
            schedule, why_schedule = resolve_schedule(requested_schedule, out_dir, overwrite)
            for line in (why, why_schedule):
                if line:
                    feedback.pushInfo(line)
            options = dict(self._backend_options)
            if bucket := self.parameterAsString(parameters, "BATCH_BUCKET", context):
                options["batch_bucket"] = bucket
            types_file = self.parameterAsFile(parameters, "TILE_TYPES", context)
            cfg = RunConfig(
                tilejson=tilejson,
                out_dir=out_dir,
                tiles=res.tiles,
                z=res.z,
                layer=layer,
                ref_tilejson=self.parameterAsFile(parameters, "REF_TILEJSON", context) or None,
                ref_layer=self.parameterAsString(parameters, "REF_LAYER", context) or None,
                anchors=anchors,
                prompt=with_preset(
                    _text(self, parameters, context, "PROMPT", "PROMPT_FILE"),
                    PRESET_CHOICES[self.parameterAsEnum(parameters, "PRESET", context)] or None,
                    DEFAULT_PROMPT,
                ),
                negative_prompt=_text(self, parameters, context, "NEGATIVE_PROMPT", "NEGATIVE_PROMPT_FILE"),
                backend=backend,
                model=self.parameterAsString(parameters, "MODEL", context) or self._defaults["model"],
                fallback_model=self.parameterAsString(parameters, "FALLBACK_MODEL", context)
                or self._defaults["fallback_model"],
                backend_options=options,
                batch=self.parameterAsBool(parameters, "BATCH", context),
                dry_run=self.parameterAsBool(parameters, "DRY_RUN", context),
                k=self.parameterAsInt(parameters, "K", context),
                good_enough=None
                if parameters.get("GOOD_ENOUGH") in (None, "")
                else self.parameterAsDouble(parameters, "GOOD_ENOUGH", context),
                overlap_px=self.parameterAsInt(parameters, "OVERLAP_PX", context),
                neighbor_mode=neighbor_mode,
                schedule=schedule,
                seed=self.parameterAsInt(parameters, "SEED", context),
                concurrency=self.parameterAsInt(parameters, "CONCURRENCY", context),
                keep_candidates=self.parameterAsBool(parameters, "KEEP_CANDIDATES", context),
                harmonize=self.parameterAsBool(parameters, "HARMONIZE", context),
                fill_uniform=self.parameterAsBool(parameters, "FILL_UNIFORM", context),
                hold_water=MODES[self.parameterAsEnum(parameters, "HOLD_WATER", context)],
                tile_types=load_table(types_file) if types_file else settings_table(self._defaults["tile_types"]),
                overwrite=overwrite,
                max_height_m=height,
                **{stage: MODES[self.parameterAsEnum(parameters, stage.upper(), context)] for stage in DRIFT_STAGES},
                context=_context(backend, CONTEXT_CHOICES[self.parameterAsEnum(parameters, "CONTEXT", context)]),
                template_px=int(TEMPLATE_SIZES[self.parameterAsEnum(parameters, "TEMPLATE_PX", context)]),
                region={"source": "qgis", **{k: str(v) for k, v in kw.items() if k != "region"}},
            )
            adaptive = "" if cfg.good_enough is None else f" (at most; stop below score {cfg.good_enough:g})"
            feedback.pushInfo(f"{len(res.tiles)} tiles at zoom {res.z}, backend {backend}, K={cfg.k}{adaptive}")
            result = on_python_thread(run_generation, cfg, EngineFeedback(feedback))
        if cfg.dry_run:  # the run logged its summary (iso_qgis.run.dryrun.dry_run_summary)
            t = result.totals
            return {"OUTPUT_DIR": out_dir, "REPORT": result.outputs["report"], "TILE_COUNT": 0, "FAILED_COUNT": 0,
                    "CALLS": t["calls"], "ESTIMATED_COST_USD": t["estimated_cost_usd"]}  # fmt: skip
        if result.canceled:
            feedback.reportError(
                "Canceled: accepted tiles are kept; run again with the same settings to continue", False
            )
        elif result.nothing_made:  # a run that made nothing fails, in a model or a batch too
            raise QgsProcessingException(
                f"No tile could be made: all {result.failed_count} failed. Each tile's error is in "
                f"{result.outputs.get('report')}; a rerun retries them"
            )
        elif result.failed_count:
            feedback.reportError(f"{result.failed_count} of {result.tile_count} tiles failed: see the report", False)
        o = result.outputs
        group = f"Iso tiles: {Path(out_dir).name}"
        results = {
            "OUTPUT_DIR": out_dir,
            "REPORT": o.get("report"),
            "TILES_TILEJSON": o.get("tilejson"),
            "TILE_COUNT": result.accepted_count,
            "FAILED_COUNT": result.failed_count,
            "MOSAIC": o.get("mosaic"),
            "HEATMAP": o.get("heatmap"),
            "TILES": o.get("tiles_vrt"),
            "FOOTPRINTS": o.get("footprints"),
            "CALLS": result.totals["this_run"]["calls"],
            "ESTIMATED_COST_USD": result.totals["this_run"]["estimated_cost_usd"],
        }
        loads = [
            ("MOSAIC", "Mosaic", "mosaic"),
            ("TILES", "Tiles", "tiles"),
            ("HEATMAP", "Seam heatmap (ΔE)", "heatmap"),
            ("FOOTPRINTS", "Tile footprints", "footprints"),
        ]
        for key, name, kind in loads:
            if results[key]:
                load_output(context, results[key], name, key, group, kind)
        return results
