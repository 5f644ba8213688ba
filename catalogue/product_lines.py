"""Product lines: a product's line is its catalogue ``category`` (the family the vendor files
it under); products without one, and sales or deals that name no product, are in ``OTHER``.
Forecasts are per product line, and ``earningsMetrics`` segments revenue by it."""

from __future__ import annotations

OTHER = "Other"


def line_of(category: str) -> str:
    return category.strip() or OTHER
