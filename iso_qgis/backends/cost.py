"""What calls cost: an editable price table, token estimates for dry runs."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from ..util.errors import IsoInputError

#: USD per million tokens. Edit with a JSON file of the same shape (PRICES / --prices / ISOTILES_PRICES).
DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "gemini-3-pro-image": {"input": 2.0, "output_text": 12.0, "output_image": 120.0},
    "gemini-3-pro-image-preview": {"input": 2.0, "output_text": 12.0, "output_image": 120.0},
    "gemini-2.5-flash-image": {"input": 0.30, "output_text": 2.5, "output_image": 30.0},
    "gemini-2.5-flash-image-preview": {"input": 0.30, "output_text": 2.5, "output_image": 30.0},
}
#: tokens per 768 px square of an input image, and per generated image by size
TOKENS_PER_IMAGE_TILE = 258
OUTPUT_IMAGE_TOKENS = {"1K": 1120, "2K": 1120, "4K": 2000}


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    output_tokens: int = 0  # candidates (the image)
    thought_tokens: int = 0


def load_prices(path: str | os.PathLike[str] | None = None) -> dict[str, dict[str, float]]:
    """The default table, updated with the user's JSON file if one is given (or ISOTILES_PRICES)."""
    prices = {k: dict(v) for k, v in DEFAULT_PRICES.items()}
    path = path or os.environ.get("ISOTILES_PRICES")
    if path:
        try:
            user = json.loads(Path(path).read_text(encoding="utf-8"))
            for model, row in user.items():
                prices[model] = {k: float(v) for k, v in row.items()}
        except (OSError, ValueError, AttributeError) as exc:
            example = '{"model": {"input": 2.0, "output_image": 120.0}}'
            raise IsoInputError("PRICES", f"{path} is not a price table ({exc})", f"Write {example}") from None
    return prices


#: Google's Batch API (Gemini API batch mode, Vertex AI batch prediction) bills half the online price
BATCH_PRICE_FACTOR = 0.5


def cost_usd(prices: dict[str, dict[str, float]], model: str, usage: Usage, batch: bool = False) -> float | None:
    """Estimated cost of one call, or None when the model has no price.

    ``batch``: the call went through the Batch API. A price row may state its own batch prices
    (``batch_input``, ``batch_output_text``, ``batch_output_image``); otherwise they are
    :data:`BATCH_PRICE_FACTOR` times the online ones.
    """
    row = prices.get(model) or prices.get(model.split("/")[-1])
    if row is None:
        return None

    def price(name: str) -> float:
        online = row.get(name, 0.0)
        return row.get(f"batch_{name}", online * BATCH_PRICE_FACTOR) if batch else online

    return (
        usage.prompt_tokens * price("input")
        + usage.output_tokens * price("output_image")
        + usage.thought_tokens * price("output_text")
    ) / 1e6


def online_and_batch_usd(prices: dict[str, dict[str, float]], model: str, usage: Usage, calls: int = 1
                         ) -> dict[str, float | None]:  # fmt: skip
    """A dry run's two prices for ``calls`` calls of ``usage`` each: ``{"online_usd", "batch_usd"}`` (None
    when the model has no price)."""
    online = cost_usd(prices, model, usage)
    batch = cost_usd(prices, model, usage, batch=True)
    return {
        "online_usd": None if online is None else round(online * calls, 4),
        "batch_usd": None if batch is None else round(batch * calls, 4),
    }


def both_prices_line(online_usd: float, batch_usd: float) -> str:
    """How a report or a dry run says both prices, e.g. ``$12.40 online, $6.20 with BATCH``."""
    return f"${online_usd:.2f} online, ${batch_usd:.2f} with BATCH (the Batch API, half price)"


def estimate_note(adaptive: bool) -> str:
    """What a dry run's figures mean; with adaptive K (GOOD_ENOUGH) they are the most the run can take."""
    note = "an estimate: the K candidates of a tile, no retries; tokens from image sizes"
    if adaptive:
        note += (
            "; GOOD_ENOUGH is set: a tile stops asking once a candidate scores below it, so the calls, tokens "
            "and cost are upper bounds (K per tile)"
        )
    return note


def image_input_tokens(width: int, height: int) -> int:
    return TOKENS_PER_IMAGE_TILE * math.ceil(width / 768) * math.ceil(height / 768)


def estimate_usage(text_chars: int, image_sizes: list[tuple[int, int]], image_size: str) -> Usage:
    """A dry run's guess of one call's tokens (text at ~4 characters per token)."""
    prompt = math.ceil(text_chars / 4) + sum(image_input_tokens(w, h) for w, h in image_sizes)
    return Usage(prompt_tokens=prompt, output_tokens=OUTPUT_IMAGE_TOKENS.get(image_size, 1120))
