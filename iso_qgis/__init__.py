"""The engine of Iso Tile Stylizer: pure Python, no QGIS import anywhere in it.

Its wings, lowest first; a wing imports only the wings before it (``tests/unit/test_engine_imports.py``):

- ``util``: errors, feedback, atomic files, threads, package installs, network settings
- ``backends``: the image models behind one interface, and what a call costs
- ``grid``: where a tile is (TileGrid, tilejson, tile sources, regions)
- ``render``: inputs from the world (whitebox, ground, reference, building footprints)
- ``imaging``: seams, registration, color field, water hold, compositing, infill templates
- ``outputs``: GeoTIFF, web pyramids, PMTiles, viewer folders, the seam report
- ``plan``: a run's configuration, prompt presets, tile types, cells, schedules and phases
- ``run``: tile jobs, state, the engine, the dry run, the mosaic pass, finalize, review
- ``cli``: the command line (``python -m iso_qgis``)
"""

__version__ = "0.1.0"
