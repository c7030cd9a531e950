"""Both sides of a cut brought to one color: what is left of two tiles' color difference, split between them.

Color compensation matches a new tile to its accepted neighbors, but only as well as a gain and offsets per
band can: where the neighbor's own correction still varies over the band (a wavefront tile's far side fades
to none at its canvas's edge), or its colors were themselves fitted with an error, some difference is left,
and the cut shows it as a step. Where both canvases are known, in the mosaic, the low-frequency difference
(a box of ``LOWPASS`` px: a cast, not texture or edges) where the cut runs is split between them linearly
across the band: at the cut the two meet at one color, and each correction fades to none at the band's far
side, where the tile's own pixels go on unchanged. Only that step is spread: a difference that changes
across the band (one tile's correction still fading there) is zero where the cut runs and is left alone,
since a cross-fade of it would add its slope to both tiles. Texture and edges keep the sharp cut.
"""

from __future__ import annotations

import numpy as np

#: size (px) of the box the difference is averaged over: wider than texture, narrower than a band
LOWPASS = 32


def box_mean(a: np.ndarray, valid: np.ndarray, n: int) -> np.ndarray:
    """Mean of ``a`` (h, w, 3) over the valid pixels of the n x n box centered on each pixel (0: none)."""
    r = n // 2
    pad = [(r, n - r), (r, n - r)]
    s = np.pad(np.where(valid[..., None], a, 0.0), [*pad, (0, 0)]).cumsum(0).cumsum(1)
    c = np.pad(valid.astype(np.float64), pad).cumsum(0).cumsum(1)
    h, w = valid.shape

    def window(t: np.ndarray) -> np.ndarray:
        t = np.pad(t, [(1, 0), (1, 0)] + [(0, 0)] * (t.ndim - 2))
        return t[n : n + h, n : n + w] - t[:h, n : n + w] - t[n : n + h, :w] + t[:h, :w]

    count = window(c)
    return np.where(count[..., None] > 0, window(s) / np.maximum(count, 1)[..., None], 0.0)


def meet_at_cut(
    new: np.ndarray, old: np.ndarray, filled: np.ndarray, path: np.ndarray, vertical: bool, new_after: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Corrections (float32, h x w x 3) to add to ``new`` and to ``old`` over one band, cut along ``path``
    (``min_error_path``): the low-passed difference ``d = old - new`` at the cut, line by line, split linearly
    across the band, ``new + a d`` and ``old - (1 - a) d`` with ``a`` from 1 at the old tile's far side to 0 at
    the new tile's. Only the step the cut would show is spread (a difference that changes across the band,
    as where one tile's correction still fades, is left to the cut, which runs where it is least)."""
    if not vertical:  # worked as a vertical band: across the band is along rows of the transposed arrays
        dn, do = meet_at_cut(new.swapaxes(0, 1), old.swapaxes(0, 1), filled.T, path, True, new_after)
        return dn.swapaxes(0, 1), do.swapaxes(0, 1)
    h, w = filled.shape
    diff = box_mean(old.astype(np.float64) - new.astype(np.float64), filled, LOWPASS) * filled[..., None]
    at_cut = diff[np.arange(h), np.clip(path, 0, w - 1)]  # (h, 3)
    # the cut wanders from line to line: the step it shows, averaged over LOWPASS lines
    c = np.cumsum(np.pad(at_cut, [(LOWPASS // 2 + 1, LOWPASS - LOWPASS // 2), (0, 0)], mode="edge"), axis=0)
    at_cut = (c[LOWPASS:-1] - c[: -LOWPASS - 1]) / LOWPASS
    u = (np.arange(w) + 0.5) / w  # 0..1 across the band
    share = (1.0 - u) if new_after else u  # the new tile's: 1 at the old tile's far side
    to_new = (at_cut[:, None, :] * share[None, :, None]).astype(np.float32)
    to_old = (-at_cut[:, None, :] * (1.0 - share)[None, :, None]).astype(np.float32)
    return to_new, to_old
