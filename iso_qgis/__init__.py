"""The engine of Iso Tile Stylizer: pure Python, no QGIS import anywhere in it."""

__version__ = "0.1.0"
