"""Errors a user can act on: each names the input that was wrong and the fix."""

from __future__ import annotations


class IsoInputError(ValueError):
    """Bad user input. ``str()`` reads: ``<input>: <problem>. <fix>``."""

    def __init__(self, input_name: str, problem: str, fix: str = "") -> None:
        self.input_name = input_name
        self.problem = problem
        self.fix = fix
        message = f"{input_name}: {problem}"
        if fix:
            message += f". {fix}"
        super().__init__(message)
