"""The command line: ``python -m iso_qgis <command> ...`` (no QGIS needed).

May import every wing.
"""
