"""The command line's messages stay one per line while tiles finish on several threads at once."""

from __future__ import annotations

import io
import re
import sys
import threading
import time

import pytest

from iso_tile_stylizer.iso_qgis.cli.generate import TerminalFeedback

CLEAR = "\r\033[K"
STATUS = re.compile(r"^tiles \d+/\d+ \| .*remaining ~\d+:\d\d:\d\d$")
WARNING = re.compile(r"^warning: tile \d+,\d+: failed \(whitebox tile missing\)$")


class SlowStream(io.StringIO):
    """A stream that gives other threads a chance inside every write, as a terminal under load does."""

    def write(self, s: str) -> int:
        n = super().write(s)
        time.sleep(0.0002)
        return n

    def isatty(self) -> bool:
        return self.tty

    tty = False


def hammer(fb: TerminalFeedback, threads: int = 6, each: int = 40) -> None:
    total = threads * each
    done = [0]
    lock = threading.Lock()

    def work(t: int) -> None:
        for i in range(each):
            fb.warning(f"tile {t},{i}: failed (whitebox tile missing)")
            with lock:  # as the run's coordinating thread: one status at a time, in order
                done[0] += 1
                counters = {"accepted": 0, "failed": done[0], "calls": 0, "failures": 0, "elapsed_s": 1.0}
                fb.status(done[0], total, counters)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()


@pytest.mark.parametrize("tty", [False, True])
def test_warnings_and_the_progress_line_are_never_written_over_each_other(monkeypatch, tty):
    stream = SlowStream()
    stream.tty = tty
    monkeypatch.setattr(sys, "stderr", stream)
    hammer(TerminalFeedback())
    text = stream.getvalue()
    assert text.endswith("\n")  # the last status line is ended too
    lines = text[:-1].split("\n")
    # what a terminal shows of each line: the text after its last clear (a redrawn progress line is cleared)
    shown = [line.rsplit(CLEAR, 1)[-1] for line in lines]
    bad = [line for line in shown if not (STATUS.match(line) or WARNING.match(line))]
    assert not bad, bad[:3]
    assert sum(1 for line in shown if WARNING.match(line)) == 240
    if not tty:
        assert CLEAR not in text and len(lines) == 480


def test_a_run_that_stops_early_ends_the_progress_line_before_the_next_message(monkeypatch):
    stream = SlowStream()
    stream.tty = True
    monkeypatch.setattr(sys, "stderr", stream)
    fb = TerminalFeedback()
    fb.status(1, 3, {"accepted": 1, "failed": 0, "calls": 1, "failures": 0, "elapsed_s": 1.0})
    fb.end_line()
    fb.end_line()  # once is enough
    assert stream.getvalue().endswith("remaining ~0:00:02\n") and not stream.getvalue().endswith("\n\n")
