"""Doing a run: tile jobs, the canvas store, the folder's state and its recorder, the engine and the
generation loop, the dry run and its pricing, the streaming mosaic pass, finalizing and the report,
candidate review, the neighbor mode a folder asks for.

May import every wing but cli.
"""
