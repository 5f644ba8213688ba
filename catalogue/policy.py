"""Who may do what with the product catalogue (every user of a vendor reads it)."""

from __future__ import annotations

from enum import StrEnum

from partners.policy import VENDOR_ADMIN, Policy


class CatalogueOp(StrEnum):
    UPSERT_PRODUCT = "productUpsert"


CATALOGUE = Policy[CatalogueOp]({CatalogueOp.UPSERT_PRODUCT: VENDOR_ADMIN})
