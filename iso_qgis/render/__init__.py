"""Inputs from the world: building footprints and the ground's classes, the whitebox renderer, color
reference tiles.

May import util and grid.
"""
