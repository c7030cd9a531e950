"""Run engine work on a thread that Python created, whatever thread asks.

QGIS runs algorithms and tasks on threads of Qt's pool. Python sees such a thread
only while a call from Qt is under way: its thread state, and with it every
``threading.local``, is made when the call starts and dropped when it returns,
while the thread itself lives on to serve the next task. A library that keeps
native per-thread state beside a ``threading.local`` is left holding freed memory
the next time the same pooled thread comes back. pyproj 3.7 does exactly that
with its PROJ context, and QGIS crashes the second time an algorithm runs in the
background (pyproj issues #1509, #1541).

A thread started here lives and dies with its Python thread state, so such
per-thread state is made and freed together with it. The main thread is safe as
it is; a call from any other thread pays for one short-lived thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def on_python_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, run on a thread Python started; its result returned, its exception raised."""
    if threading.get_ident() == threading.main_thread().ident:
        return fn(*args, **kwargs)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 (handed back to the caller as is)
            box["error"] = exc

    worker = threading.Thread(target=target, name=f"isotiles-{getattr(fn, '__name__', 'engine')}", daemon=True)
    worker.start()
    worker.join()
    if "error" in box:
        raise box.pop("error")
    return box["result"]
