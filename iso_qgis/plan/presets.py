"""Prompt presets for map variants (night, winter): the same map in another light or season.

A preset is added to the run's prompt (the built-in one when none is given). It asks for a
change of look only, so a variant run over a finished run's tile set, or over the whitebox,
keeps every building and street where the first run has it: the variants line up as layers.
"""

from __future__ import annotations

from ..util.errors import IsoInputError

_KEEP = "Keep the geometry exactly: every building, roof, street, shoreline and tree where the input has it."
PRESETS: dict[str, str] = {
    "night": "Night variant: the same map at night, deep blue shadows, warm lit windows and street lights, "
    "dark water reflecting the lights. " + _KEEP,
    "winter": "Winter variant: the same map in winter, snow on roofs, lawns and trees, frozen pale water, "
    "cleared dark streets. " + _KEEP,
}


def with_preset(prompt: str, preset: str | None, default_prompt: str) -> str:
    """The run's prompt with a preset's request added (to the built-in prompt when ``prompt`` is empty)."""
    if not preset:
        return prompt
    if preset not in PRESETS:
        raise IsoInputError("PRESET", f"unknown preset {preset!r}", f"Use one of {', '.join(PRESETS)}, or none")
    return f"{prompt or default_prompt}\n{PRESETS[preset]}"
