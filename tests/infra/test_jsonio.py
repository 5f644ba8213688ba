"""JSON columns' text (``infra.jsonio``): every value reads back as the json module reads
it, orjson or not, and a JSON column round-trips those values through the database."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, Table, select

from infra import jsonio
from infra.db import Database

VALUES: list[Any] = [
    {"a": 1, "b": [1.5, "é", None, True], "c": {"d": -(2**63)}},
    2**63,  # beyond what orjson reads exactly
    -(2**63) - 1,
    10**30,
    [2**64, 1],
    {"n": 12345678901234567890123},
    0.12345678901234567891,  # a long float: json reads it too
    {1: "a non-string key"},  # orjson refuses it; json writes "1"
    "a lone surrogate \ud800",
    "emoji 😀 and U+2028 \u2028",
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_values_read_back_as_json_reads_them(value: Any) -> None:
    text = jsonio.dumps(value)
    assert jsonio.loads(text) == json.loads(json.dumps(value))
    assert jsonio.loads(text.encode("utf-8", "surrogatepass")) == json.loads(text)


def test_text_json_wrote_reads_the_same() -> None:
    """Text stored before (json.dumps): NaN and Infinity, escapes, big numbers."""
    for value in ({"x": math.inf, "y": -math.inf}, [1e308, 2**70], {"s": "\u00e9\ud83d\ude00"}):
        text = json.dumps(value)
        assert jsonio.loads(text) == json.loads(text)
    assert math.isnan(jsonio.loads(json.dumps(math.nan)))


def test_an_integer_is_never_read_as_a_float() -> None:
    for n in (2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**19, 10**40):
        read = jsonio.loads(json.dumps({"n": n}))["n"]
        assert type(read) is int
        assert read == n


async def test_a_json_column_round_trips(db: Database) -> None:
    table = Table(
        "jsonio_probe", MetaData(), Column("id", Integer, primary_key=True), Column("v", JSON)
    )
    async with db.engine.begin() as connection:
        await connection.run_sync(table.create)
    try:
        # (in a list: SQLite's column affinity makes a lone number text a REAL; PostgreSQL
        # refuses \ud800 in JSON)
        stored = [[v] for v in VALUES if "\ud800" not in json.dumps(v)]
        async with db.engine.begin() as connection:
            await connection.execute(
                table.insert(), [{"id": i, "v": v} for i, v in enumerate(stored)]
            )
        async with db.engine.connect() as connection:
            read = await connection.execute(select(table.c.v).order_by(table.c.id))
            rows = read.scalars().all()
        assert rows == [json.loads(json.dumps(v)) for v in stored]
    finally:
        async with db.engine.begin() as connection:
            await connection.run_sync(table.drop)
