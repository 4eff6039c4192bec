"""marts.fct_transactions_live: the charge fact as of now, by the same formulas as marts.fct_transactions.

Right after a build it is the table; after a micro-batch (and a forex fetch) it already shows what
the next build will write, computed at query time by the dashboards' read-only login.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from psycopg import sql
from psycopg.rows import dict_row

from dbt_helpers import build_marts, charge, declined, dispute, empty_warehouse, refund, rows, utc, write_rates
from stream_helpers import land_objects
from txstream_dagster.db.logins import Login

pytestmark = pytest.mark.slow

FRIDAY, MONDAY = date(2024, 6, 14), date(2024, 6, 17)
USD_FRIDAY, EUR_FRIDAY, JPY_MONDAY = Decimal("1.2731"), Decimal("1.1842"), Decimal("201.0055")
# Who computed a row, and when: a build, or the query reading the view. Every other column is the fact.
LINEAGE = {"transformed_at", "transformed_xid", "source_snapshot_xmin"}

REFUNDED = charge("ch_refunded", 8000, "usd", utc(2024, 6, 14, 11), customer="cus_a")
DISPUTED = charge("ch_disputed", 5000, "usd", utc(2024, 6, 14, 10), customer="cus_b")


def build_scenario(postgres) -> None:
    """Five charges (one without a GBP rate yet, one declined) built from scratch."""
    empty_warehouse(postgres)
    write_rates(postgres, [(FRIDAY, "usd", USD_FRIDAY, FRIDAY), (FRIDAY, "eur", EUR_FRIDAY, FRIDAY)])
    land_objects(
        postgres,
        [
            REFUNDED,
            DISPUTED,
            charge("ch_gbp_guest", 1200, "gbp", utc(2024, 6, 14, 12)),
            charge("ch_jpy_monday", 1000, "jpy", utc(2024, 6, 17, 9), customer="cus_a"),
            declined(charge("ch_declined", 700, "usd", utc(2024, 6, 14, 13), customer="cus_b"), "do_not_honor"),
        ],
    )
    assert build_marts(postgres, full_refresh=True).success


def facts(rows_: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """charge_id → every column but the lineage ones."""
    return {row["charge_id"]: {k: v for k, v in row.items() if k not in LINEAGE} for row in rows_}


def read(postgres, relation: str) -> list[dict[str, Any]]:
    return rows(postgres, sql.SQL("SELECT * FROM {} ORDER BY charge_id").format(sql.Identifier("marts", relation)))


def read_live_as_the_dashboards(postgres) -> list[dict[str, Any]]:
    """As Grafana's login, in a read-only transaction."""
    with postgres.connect(login=Login.READER) as conn:
        conn.read_only = True
        with conn.cursor(row_factory=dict_row) as cur:
            assert cur.execute("SHOW transaction_read_only").fetchone() == {"transaction_read_only": "on"}
            live = cur.execute(
                sql.SQL("SELECT * FROM {} ORDER BY charge_id").format(sql.Identifier("marts", "fct_transactions_live"))
            ).fetchall()
            # No transaction id taken: one per dashboard query would burn xids, and fail on a standby.
            assert cur.execute("SELECT pg_current_xact_id_if_assigned() AS xid").fetchone() == {"xid": None}
            return live


@pytest.fixture(scope="module")
def built(postgres):
    build_scenario(postgres)
    return postgres


def test_right_after_a_build_the_live_view_is_the_table(built):
    table, live = read(built, "fct_transactions"), read(built, "fct_transactions_live")
    assert len(table) == 5
    assert [list(row) for row in live] == [list(row) for row in table]  # the same columns, in the same order
    assert facts(live) == facts(table)


def test_the_view_holds_the_tables_watermark_as_a_literal(built):
    # A literal, so PostgreSQL estimates `landed_xid >= …` from its statistics: see the model's comment.
    [row] = rows(
        built,
        """SELECT (SELECT max(source_snapshot_xmin)::text FROM marts.fct_transactions) AS watermark,
                  pg_get_viewdef('marts.fct_transactions_live'::regclass) AS definition""",
    )
    assert row["watermark"] and f"'{row['watermark']}'::xid8" in row["definition"]
    assert "pg_current_xact_id" not in row["definition"]


def test_what_lands_after_a_build_shows_at_once_as_the_next_build_computes_it(postgres):
    build_scenario(postgres)
    before_build = facts(read(postgres, "fct_transactions"))

    # A micro-batch — a new charge by a new customer, a refund and a chargeback on older charges — and
    # a forex fetch: Monday's JPY rate (the charge waiting for one) and a corrected Friday USD rate.
    land_objects(
        postgres,
        [
            charge("ch_eur_new", 2599, "eur", utc(2024, 6, 14, 18), customer="cus_new"),
            refund("re_partial", REFUNDED, 3000, utc(2024, 6, 18, 9)),
            dispute("dp_lost", DISPUTED, 5000, utc(2024, 6, 20, 9), status="lost"),
        ],
    )
    write_rates(postgres, [(MONDAY, "jpy", JPY_MONDAY, MONDAY), (FRIDAY, "usd", "1.2744", FRIDAY)])

    live_rows = read_live_as_the_dashboards(postgres)
    live = facts(live_rows)
    assert facts(read(postgres, "fct_transactions")) == before_build  # no build ran
    assert set(live) == set(before_build) | {"ch_eur_new"}
    new = live["ch_eur_new"]
    assert (new["amount"], new["fx_rate"], new["customer_id"]) == (Decimal("25.99"), EUR_FRIDAY, "cus_new")
    assert new["amount_gbp"] == pytest.approx(Decimal("25.99") / EUR_FRIDAY)
    assert (live["ch_refunded"]["refunded_amount"], live["ch_refunded"]["net_amount"]) == (30, 50)
    assert live["ch_refunded"]["refunded_amount_gbp"] == pytest.approx(Decimal("30.00") / Decimal("1.2744"))
    assert (live["ch_disputed"]["disputed_amount"], live["ch_disputed"]["net_amount"]) == (50, 0)
    assert live["ch_declined"]["fx_rate"] == Decimal("1.2744")  # the refetched rate, though nothing else changed
    assert live["ch_jpy_monday"]["fx_rate_missing"] is False
    assert live["ch_jpy_monday"]["amount_gbp"] == pytest.approx(Decimal(1000) / JPY_MONDAY)
    assert live["ch_gbp_guest"] == before_build["ch_gbp_guest"]
    # Computed by the query, not written by a build: no build's lineage.
    computed_now = {row["charge_id"] for row in live_rows if row["transformed_xid"] is None}
    assert computed_now >= {"ch_eur_new", "ch_refunded", "ch_disputed", "ch_declined", "ch_jpy_monday"}
    assert all(row["source_snapshot_xmin"] is None for row in live_rows if row["charge_id"] in computed_now)

    assert build_marts(postgres).success  # incremental
    assert facts(read(postgres, "fct_transactions")) == live  # what the dashboards showed before it
    assert facts(read(postgres, "fct_transactions_live")) == live


def test_the_fresh_part_reads_raw_transactions_through_the_landed_xid_index(postgres):
    empty_warehouse(postgres)
    write_rates(postgres, [(FRIDAY, "usd", USD_FRIDAY, FRIDAY)])
    land_objects(postgres, [charge(f"ch_{n:04d}", 1000 + n, "usd", utc(2024, 6, 14, 10)) for n in range(2000)])
    assert build_marts(postgres, full_refresh=True).success
    with postgres.connect(login=Login.OWNER, autocommit=True) as conn:
        conn.execute("ANALYZE raw.transactions")
    land_objects(postgres, [charge("ch_new", 999, "usd", utc(2024, 6, 14, 12))])

    plan = "\n".join(row["QUERY PLAN"] for row in rows(postgres, "EXPLAIN SELECT * FROM marts.fct_transactions_live"))
    assert "Index Scan using transactions_landed_xid_idx on transactions" in plan
    assert not re.search(r"Seq Scan on transactions\b", plan), plan
    assert "ch_new" in {row["charge_id"] for row in read_live_as_the_dashboards(postgres)}
