"""Pure pieces of the dbt stage: connection env, automation policies, the fx-rate check's arithmetic."""

from __future__ import annotations

import os
from datetime import date

import dagster as dg
import pytest

from txstream_dagster.defs.dbt.checks import MissingRates, missing_rates_table, overdue
from txstream_dagster.defs.dbt.resources import dbt_connection, dbt_connection_env
from txstream_dagster.defs.dbt.translator import automation_condition_named, dagster_meta, layer_of


def test_connection_env_comes_from_the_warehouse_url():
    env = dbt_connection_env("postgresql://txstream:s%40cret@db.internal:6543/payments?sslmode=require")
    assert env == {
        "DBT_PG_HOST": "db.internal",
        "DBT_PG_PORT": "6543",
        "DBT_PG_USER": "txstream",
        # Percent-decoded, and under DBT_ENV_SECRET_ so dbt scrubs it from its logs.
        "DBT_ENV_SECRET_PG_PASSWORD": "s@cret",
        "DBT_PG_DATABASE": "payments",
        "DBT_PG_SSLMODE": "require",
    }


def test_connection_env_defaults_the_port_and_leaves_sslmode_to_the_profile():
    env = dbt_connection_env("postgresql://u:p@localhost/db")
    assert env["DBT_PG_PORT"] == "5432"
    assert "DBT_PG_SSLMODE" not in env


def test_url_parameters_dbt_would_silently_drop_are_refused_naming_the_setting():
    # Guards against connecting without the client certificate the URL asked for.
    with pytest.raises(ValueError, match=r"TXSTREAM_POSTGRES_URL=.*sslrootcert"):
        dbt_connection_env("postgresql://u:p@db/x?sslmode=verify-full&sslrootcert=/ca.pem")


def test_a_url_without_a_database_is_refused_without_showing_the_password():
    with pytest.raises(ValueError) as error:
        dbt_connection_env("postgresql://u:topsecret@db:5432")
    assert "dbname" in str(error.value)
    assert "topsecret" not in str(error.value)


def test_connection_env_is_set_only_inside_the_block(monkeypatch):
    monkeypatch.setenv("DBT_PG_HOST", "previous-host")
    monkeypatch.delenv("DBT_PG_DATABASE", raising=False)

    with dbt_connection("postgresql://u:p@inside:5432/db"):
        assert os.environ["DBT_PG_HOST"] == "inside"
        assert os.environ["DBT_PG_DATABASE"] == "db"
    assert os.environ["DBT_PG_HOST"] == "previous-host"
    assert "DBT_PG_DATABASE" not in os.environ


@pytest.mark.parametrize("policy", ["on_upstream_update", "on_definition_change"])
def test_every_automation_policy_explains_itself_in_the_ui(policy):
    condition = automation_condition_named(policy)
    assert isinstance(condition, dg.AutomationCondition)
    assert condition.get_label()


def test_an_unknown_automation_policy_names_the_yaml_key_and_the_choices():
    with pytest.raises(ValueError, match=r"meta\.dagster\.automation='eagerly'.*on_upstream_update"):
        automation_condition_named("eagerly")


def test_model_meta_is_read_from_config_meta_over_legacy_meta():
    props = {"meta": {"dagster": {"automation": "on_upstream_update"}},
             "config": {"meta": {"dagster": {"automation": "on_definition_change"}}}}
    assert dagster_meta(props) == {"automation": "on_definition_change"}


def test_the_layer_is_the_models_top_folder():
    assert layer_of({"resource_type": "model", "fqn": ["txstream", "marts", "fct_transactions"]}) == "marts"
    assert layer_of({"resource_type": "seed", "fqn": ["txstream", "currencies"]}) == "seeds"


def test_charges_waiting_for_todays_rate_are_not_overdue_but_last_weeks_are():
    today = date(2024, 6, 20)
    waiting = MissingRates("usd", 10, date(2024, 6, 19))
    stuck = MissingRates("aed", 3, date(2024, 6, 12))
    assert overdue([waiting, stuck], today) == [stuck]


def test_missing_rates_table_lists_each_currency():
    table = missing_rates_table([MissingRates("aed", 3, date(2024, 6, 12))])
    assert "| AED | 3 | 2024-06-12 |" in table
