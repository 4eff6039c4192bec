"""Pure pieces of the dbt stage: its connection profile, automation policies, the fx-rate check's arithmetic."""

from __future__ import annotations

import stat
from datetime import date

import dagster as dg
import pytest
import yaml

from txstream_dagster.defs.dbt.checks import (
    FlaggedRecord,
    MissingRates,
    flagged_records_table,
    missing_rates_table,
    overdue,
)
from txstream_dagster.defs.dbt.resources import dbt_profile, write_profiles_dir
from txstream_dagster.defs.dbt.translator import automation_condition_named, dagster_meta, layer_of
from txstream_dagster.resources.build import dbt_profiles_dir
from txstream_dagster.settings import load_settings


def test_the_profile_signs_in_as_the_transformer_at_the_warehouse_urls_address():
    profile = dbt_profile("postgresql://txstream:s%40cret@db.internal:6543/payments?sslmode=require", "pw")
    [target] = {id(t): t for t in profile["txstream"]["outputs"].values()}.values()  # full and dev: one target
    assert target == {
        "type": "postgres",
        "host": "db.internal",
        "port": 6543,
        "user": "txstream_transformer",
        "password": "pw",
        "dbname": "payments",
        "schema": "staging",
        "threads": 2,
        "connect_timeout": 10,
        "sslmode": "require",
    }
    assert profile["txstream"]["target"] == "full"


def test_the_profile_defaults_the_port_and_reads_no_password_from_the_url():
    target = dbt_profile("postgresql://owner:owner-pw@localhost/db?passfile=/x/pgpass", "{{ env_var('P') }}")[
        "txstream"
    ]["outputs"]["full"]
    assert target["port"] == 5432 and "sslmode" not in target
    assert target["password"] == "{{ env_var('P') }}"  # the owner's password never reaches dbt


def test_url_parameters_dbt_would_silently_drop_are_refused_naming_the_setting():
    # Guards against connecting without the client certificate the URL asked for.
    with pytest.raises(ValueError, match=r"TXSTREAM_POSTGRES_URL=.*sslrootcert"):
        dbt_profile("postgresql://u:p@db/x?sslmode=verify-full&sslrootcert=/ca.pem", "pw")


def test_a_url_without_a_database_is_refused_without_showing_the_password():
    with pytest.raises(ValueError) as error:
        dbt_profile("postgresql://u:topsecret@db:5432", "pw")
    assert "dbname" in str(error.value)
    assert "topsecret" not in str(error.value)


def test_the_profile_is_written_for_this_user_only_and_dbt_reads_it(tmp_path):
    directory = write_profiles_dir(tmp_path / "dbt", dbt_profile("postgresql://u@db.internal/payments", "pw"))
    written = directory / "profiles.yml"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert yaml.safe_load(written.read_text())["txstream"]["outputs"]["dev"]["host"] == "db.internal"


@pytest.mark.parametrize("policy", ["on_upstream_update", "on_definition_change"])
def test_every_automation_policy_explains_itself_in_the_ui(policy):
    condition = automation_condition_named(policy)
    assert isinstance(condition, dg.AutomationCondition)
    assert condition.get_label()


def test_an_unknown_automation_policy_names_the_yaml_key_and_the_choices():
    with pytest.raises(ValueError, match=r"meta\.dagster\.automation='eagerly'.*on_upstream_update"):
        automation_condition_named("eagerly")


def test_model_meta_is_read_from_config_meta_over_legacy_meta():
    props = {
        "meta": {"dagster": {"automation": "on_upstream_update"}},
        "config": {"meta": {"dagster": {"automation": "on_definition_change"}}},
    }
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


def test_an_external_warehouses_profile_names_the_password_variable_and_never_holds_it(monkeypatch, tmp_path):
    # Every process sharing the data dir writes this file; only the dbt runs hold the transformer's secret.
    monkeypatch.setenv("TXSTREAM_POSTGRES_URL", "postgresql://db.internal:5432/payments")
    monkeypatch.setenv("TXSTREAM_TRANSFORMER_PASSWORD", "s3cret-of-the-transformer")
    monkeypatch.setenv("TXSTREAM_DATA_DIR", str(tmp_path))
    written = (dbt_profiles_dir(load_settings()) / "profiles.yml").read_text()
    assert "s3cret-of-the-transformer" not in written
    target = yaml.safe_load(written)["txstream"]["outputs"]["full"]
    assert target["password"] == "{{ env_var('TXSTREAM_TRANSFORMER_PASSWORD', '') }}"


def test_flagged_records_of_objects_without_a_charge_render_an_empty_cell():
    table = flagged_records_table(
        [
            FlaggedRecord("txn_1", "balance_transaction", None, "status_unknown", "status 'x'"),
            FlaggedRecord("re_1", "refund", "ch_a|b", "charge_missing", "no\ncharge"),
        ]
    )
    assert table.splitlines()[2:] == [
        "| txn_1 | balance_transaction |  | status_unknown | status 'x' |",
        "| re_1 | refund | ch_a\\|b | charge_missing | no charge |",
    ]
