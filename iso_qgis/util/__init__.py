"""The engine's small tools: user-facing errors, feedback, atomic files, threads, package installs, the heap,
network settings.

Imports no other wing.
"""
