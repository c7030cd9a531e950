"""Pixels against pixels: CIELAB and seam scores, registration, the color field, water held across the
map, compositing, infill templates.

May import util, backends, grid and render.
"""
