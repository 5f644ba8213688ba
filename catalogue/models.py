from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from infra.db import MINOR_UNITS, UTCDateTime
from infra.ids import new_id


class Product(SQLModel, table=True):
    __tablename__ = "product"
    __table_args__ = (
        UniqueConstraint("vendor_id", "sku"),
        CheckConstraint("list_price_minor >= 0", name="list_price_not_negative"),
        CheckConstraint("margin_rate_bp BETWEEN -10000 AND 10000", name="margin_rate_range"),
        CheckConstraint(
            "subscription_term_months IS NULL OR subscription_term_months BETWEEN 1 AND 120",
            name="subscription_term_range",
        ),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id", index=True)
    sku: str = Field(max_length=64)
    name: str = Field(max_length=200)
    category: str = Field(default="", max_length=64)
    list_price_minor: int = Field(sa_column=Column(MINOR_UNITS, nullable=False))
    currency: str = Field(max_length=3)
    # Vendor-internal: contribution margin in basis points of list price. Never shown to
    # partner roles.
    margin_rate_bp: int = 0
    active: bool = True
    # Set for a subscription product: the length of one term. An approved sale or a won deal
    # of it starts (or extends) a subscription of this term (subscriptions/).
    subscription_term_months: int | None = None
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
