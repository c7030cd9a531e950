"""Which of the stages that undo a model's drift a run uses: registration, color match, multi-band blending.

Each is "auto", "on" or "off". What "auto" means was decided by measurement
(``benchmarks/bench_drift.py``, figures in docs/performance.md):

- image models (vertex, gemini) move and recolor what they draw: registration and color match on.
  Multi-band blending off: on top of the color match it lowered the largest seam step a little
  (1.35 to 1.04 ΔE) but smoothed the texture along every seam (texture ratio 0.99 to 0.92,
  seam-step ratio 1.04 to 0.91), a soft band where the tiles meet;
- the offline stylizer paints on the input's pixel grid with no cast of its own per call: all off
  (on, none moved its seam-step ratio towards 1.0: 0.982 off, 0.974 with the color match).
"""

from __future__ import annotations

from ..util.errors import IsoInputError

DRIFT_STAGES = ("register", "color_match", "multiband")
MODES = ("auto", "on", "off")
#: what "auto" means, for the offline stylizer and for image models
AUTO = {
    "offline": {"register": False, "color_match": False, "multiband": False},
    "model": {"register": True, "color_match": True, "multiband": False},
}


def resolve_stages(backend: str, modes: dict[str, str]) -> dict[str, bool]:
    """``{stage: on}`` for a backend name and the modes asked for (a missing stage is "auto")."""
    out = {}
    for name in DRIFT_STAGES:
        mode = modes.get(name, "auto")
        if mode not in MODES:
            raise IsoInputError(name.upper(), f"unknown mode {mode!r}", f"Choose {', '.join(MODES)}")
        out[name] = mode == "on" or (mode == "auto" and AUTO["offline" if backend == "offline" else "model"][name])
    return out
