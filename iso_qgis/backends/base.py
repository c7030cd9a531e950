"""The one small interface every image model backend implements.

A backend takes an :class:`ImageRequest` and returns an :class:`ImageResult`:
an image, or a typed failure. It never raises for a model's answer; only for
programming errors.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

#: Sides of a tile, for neighbor context images.
SIDES = ("left", "top", "right", "bottom")


class FailureKind(str, enum.Enum):
    BLOCKED = "blocked"  # the prompt or the image was refused (safety, prohibited content)
    NO_IMAGE = "no_image"  # the answer had no image (text only, NO_IMAGE, empty)
    QUOTA = "quota"  # 429 / RESOURCE_EXHAUSTED after all retries
    TRANSPORT = "transport"  # connection, timeout, 5xx after all retries
    BAD_RESPONSE = "bad_response"  # corrupt image bytes, unparseable answer
    NOT_FOUND = "not_found"  # the model id does not exist or is not accessible
    AUTH = "auth"  # credentials refused
    DRIFTED = "drifted"  # the answer's content cannot be put back on the input (moved, scaled or not the input)
    CANCELED = "canceled"


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    message: str
    retryable: bool = False

    def as_dict(self) -> dict:
        return {"kind": self.kind.value, "message": self.message}


#: see ``ImageRequest.check``
Check = Callable[[np.ndarray], "tuple[Failure | None, np.ndarray | None, dict[str, Any]]"]


@dataclass
class ImageRequest:
    """Everything a model is asked with for one candidate of one tile.

    Images are RGB uint8 arrays (H, W, 3). ``whitebox`` and ``reference`` are the
    candidate canvas (the tile grown by its overlap); ``origin_px`` is the canvas's
    top-left corner in global grid pixels, so deterministic backends can align
    their pixel grid across tiles.
    """

    prompt: str
    whitebox: np.ndarray
    seed: int
    model: str
    negative_prompt: str = ""
    anchors: list[np.ndarray] = field(default_factory=list)
    reference: np.ndarray | None = None
    neighbors: dict[str, np.ndarray] = field(default_factory=dict)
    origin_px: tuple[int, int] = (0, 0)
    tile: tuple[int, int, int] = (0, 0, 0)  # x, y, z
    candidate: int = 0
    temperature: float | None = None
    top_p: float | None = None
    #: CONTEXT template: the one image sent (the neighbors' pixels around the outlined area to fill) and the
    #: area in its pixels (x0, y0, x1, y1); the answer is a redrawn template (see ``iso_qgis.imaging.infill``)
    template: np.ndarray | None = None
    template_area: tuple[int, int, int, int] | None = None
    #: what the caller checks every answer with, before it is kept or cached: ``check(image)`` returns
    #: ``(failure or None, the image to keep, a record)``. A backend that retries runs it on each answer and
    #: treats a failure like any other (retries, then the fallback model); see :class:`ImageResult` ``checked``.
    check: Check | None = field(default=None, repr=False, compare=False)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the canvas the answer must have."""
        h, w = self.whitebox.shape[:2]
        return (w, h)

    @property
    def answer_size(self) -> tuple[int, int]:
        """(width, height) of the image the model is asked for: the template's, else the canvas's."""
        if self.template is not None:
            return (self.template.shape[1], self.template.shape[0])
        return self.size


@dataclass
class ImageResult:
    image: np.ndarray | None
    model: str
    failure: Failure | None = None
    latency_s: float = 0.0
    retries: int = 0
    cached: bool = False
    fallback: bool = False  # produced by the fallback model
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    notes: list[str] = field(default_factory=list)
    checked: dict[str, Any] | None = None  # the record of the request's ``check`` when the backend ran it
    #: a file holding the answer's image as the service sent it (the answer cache's entry), when there is one; a
    #: run copies it as the candidate's file instead of encoding the checked image again (``tilejob.candidate_image``
    #: rebuilds that). A path, not the bytes: megabytes held per answer in flight fragment the heap.
    answer: Path | None = None

    @property
    def ok(self) -> bool:
        return self.image is not None and self.failure is None


class Backend(Protocol):
    name: str

    def generate(self, request: ImageRequest) -> ImageResult: ...
