"""Reading the row of a query that always returns exactly one (an aggregate, `SELECT EXISTS`, `to_regclass`)."""

from __future__ import annotations


def one_row(row: tuple | None) -> tuple:
    """`row`, from such a query: psycopg types every `fetchone()` as possibly None."""
    assert row is not None, "the query returned no row"
    return row
