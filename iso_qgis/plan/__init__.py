"""What a run is asked to do and in which order: its configuration, prompt presets and tile types, its
cells, schedules, phases (online and batch), the drift stages it uses.

May import util, backends, grid, render, imaging and outputs.
"""
