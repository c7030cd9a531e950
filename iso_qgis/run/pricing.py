"""What a dry run calls instead of a model: the price table and the model's limits, no SDK, no credentials."""

from __future__ import annotations

from typing import Any

from ..backends.cost import load_prices


class PricingBackend:
    """What a dry run needs of a Gemini backend, without google-genai and without credentials:
    the model, the price table and the model's limits. It never calls anything."""

    def __init__(self, api: str, options: dict[str, Any]) -> None:
        from ..backends.genai_backend import GenAISettings

        self.name = api
        self.s = GenAISettings(api=api, **{k: v for k, v in options.items() if k in ("model", "fallback_model") and v})
        self.prices = load_prices(options.get("prices_file"))

    def preflight(self, max_images: int) -> None:
        from ..backends.genai_backend import GenAIBackend

        GenAIBackend.preflight(self, max_images)  # type: ignore[arg-type]  # reads only self.s

    def generate(self, request: Any) -> Any:
        raise RuntimeError("a dry run calls no model")


def dry_run_backend(cfg: Any) -> PricingBackend | None:
    """The backend a dry run of ``cfg`` uses: none of its own for offline (free), else a pricing stand-in."""
    if not cfg.dry_run or cfg.backend == "offline":
        return None
    options = {**cfg.backend_options, "model": cfg.model, "fallback_model": cfg.fallback_model}
    return PricingBackend(cfg.backend, options)
