"""Progress, messages and cancel: the engine's side of QgsProcessingFeedback."""

from __future__ import annotations

import sys
import threading


class Canceled(Exception):
    """The user asked to stop. Work done so far is kept."""


class Feedback:
    """Quiet by default; the CLI and the Processing algorithms subclass it."""

    def progress(self, percent: float) -> None:  # 0..100
        pass

    def info(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        pass

    def is_canceled(self) -> bool:
        return False

    def status(self, done: int, total: int, counters: dict[str, float]) -> None:
        """A tile finished: ``counters`` has calls, failures, accepted, failed, elapsed_s."""

    def check_canceled(self) -> None:
        if self.is_canceled():
            raise Canceled("canceled by the user")


class StderrFeedback(Feedback):
    """Messages to stderr, for the command line: one whole line each, whichever thread writes it."""

    #: one for every writer: tiles finish on several threads, and all share one stderr
    lock = threading.Lock()

    def __init__(self, verbose: bool = True) -> None:
        self.verbose = verbose

    def info(self, message: str) -> None:
        if self.verbose:
            self.write_line(message)

    def warning(self, message: str) -> None:
        self.write_line(f"warning: {message}")

    def write_line(self, line: str) -> None:
        # one write of text and newline together: print() writes them apart, and another thread's line
        # can land between the two
        with self.lock:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
