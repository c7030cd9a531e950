"""on_python_thread: engine work away from threads Python did not start, results and errors handed back."""

from __future__ import annotations

import threading

import pytest

from iso_tile_stylizer.iso_qgis.util.pythread import on_python_thread


def where() -> tuple[int, str]:
    return threading.get_ident(), threading.current_thread().name


def test_the_main_thread_runs_the_call_itself():
    assert on_python_thread(where) == where()


def test_another_thread_hands_the_call_to_a_new_python_thread_and_gets_its_result():
    seen: list = []
    caller = threading.Thread(target=lambda: seen.append((where(), on_python_thread(where))))
    caller.start()
    caller.join()
    (caller_id, _), (worker_id, worker_name) = seen[0]
    assert worker_id != caller_id and worker_name == "isotiles-where"


def test_an_error_reaches_the_caller_as_it_was_raised():
    class Boom(Exception):
        pass

    def fail(x, *, y):
        raise Boom(f"{x} {y}")

    errors: list = []

    def call() -> None:
        try:
            on_python_thread(fail, 1, y=2)
        except Boom as exc:
            errors.append(str(exc))

    caller = threading.Thread(target=call)
    caller.start()
    caller.join()
    assert errors == ["1 2"]
    with pytest.raises(Boom, match="3 4"):
        on_python_thread(fail, 3, y=4)
