"""Which of the stages that undo a model's drift a run uses: registration, color match, multi-band blending.

Each is "auto", "on" or "off". "auto" is on for image models, which move and recolor what they
draw, and for the offline stylizer what measured best (``benchmarks/bench_drift.py --offline``):
it paints on the input's pixel grid, with no cast of its own per call.
"""

from __future__ import annotations

from .errors import IsoInputError

DRIFT_STAGES = ("register", "color_match", "multiband")
MODES = ("auto", "on", "off")
#: what "auto" means for the offline stylizer
OFFLINE_AUTO = {"register": False, "color_match": False, "multiband": False}


def resolve_stages(backend: str, modes: dict[str, str]) -> dict[str, bool]:
    """``{stage: on}`` for a backend name and the modes asked for (a missing stage is "auto")."""
    out = {}
    for name in DRIFT_STAGES:
        mode = modes.get(name, "auto")
        if mode not in MODES:
            raise IsoInputError(name.upper(), f"unknown mode {mode!r}", f"Choose {', '.join(MODES)}")
        out[name] = mode == "on" or (mode == "auto" and (backend != "offline" or OFFLINE_AUTO[name]))
    return out
