"""File formats a tile set is written to: GeoTIFFs, VRTs and footprint layers, web pyramids, PMTiles,
viewer folders, the seam report, the local web server.

May import util, backends, grid, render and imaging.
"""
