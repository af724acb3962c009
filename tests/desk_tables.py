"""A desk's own colors table for the SQL source's tests: SQLite or a PostgreSQL schema."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

COLUMN_MAP = {"msg_id": "MESSAGE_ID", "ticker": "TICKER", "sector": "SECTOR", "cusip": "CUSIP",
              "trade_date": "DATE", "bid": "BID", "ask": "ASK", "px": "PX", "Dealer": "SOURCE",
              "bias": "BIAS", "received_at": "DATE_1"}


def row(n: int, minute: int, *, cusip: str = "97988RBL5", bias: str = "BID",
        dealer: str = "JPM") -> dict[str, Any]:
    px = Decimal("99.5") - n
    return {"msg_id": 17734072432755600 + n, "ticker": f"DEAL {n}A A",
            "sector": "2.0_Mezz", "cusip": cusip, "trade_date": date(2026, 3, 13),
            "bid": Decimal(0) if bias == "OFFER" else px, "ask": px if bias == "OFFER" else 0,
            "px": px, "Dealer": dealer, "bias": bias,
            "received_at": datetime(2026, 3, 13, 8, minute, tzinfo=UTC)}


class Desk:
    """A colors table in a database of the desk's (SQLite file or a PostgreSQL schema)."""

    def __init__(self, url: str, schema: str | None) -> None:
        self.url, self.schema = url, schema
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        self.colors = sa.Table(
            "colors", sa.MetaData(schema=schema),
            # SQLite keeps NUMERIC as a float: a 17-digit id there is an INTEGER.
            sa.Column("msg_id", sa.Numeric(17, 0).with_variant(sa.BigInteger, "sqlite")),
            sa.Column("ticker", sa.Text),
            sa.Column("sector", sa.Text), sa.Column("cusip", sa.String(9)),
            sa.Column("trade_date", sa.Date), sa.Column("bid", sa.Numeric(10, 4)),
            sa.Column("ask", sa.Numeric(10, 4)), sa.Column("px", sa.Numeric(10, 4)),
            sa.Column("Dealer", sa.Text),  # a mixed-case name: quoted by the statements
            sa.Column("bias", sa.Text), sa.Column("received_at", sa.DateTime(timezone=True)))
        with self.engine.begin() as connection:
            if schema:
                connection.execute(sa.schema.CreateSchema(schema))
            self.colors.create(connection)

    @property
    def table(self) -> str:
        return f"{self.schema}.colors" if self.schema else "colors"

    def add(self, *rows: dict[str, Any]) -> None:
        with self.engine.begin() as connection:
            connection.execute(self.colors.insert(), list(rows))

    def stamp(self, minute: int) -> str:
        """A received_at watermark as run records show it (SQLite keeps no timezone)."""
        at = datetime(2026, 3, 13, 8, minute, tzinfo=UTC)
        return str(at if self.schema else at.replace(tzinfo=None))
