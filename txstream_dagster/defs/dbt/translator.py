"""dbt nodes → Dagster assets: keys and groups from the model's folder, automation from its YAML.

Per-model settings live in the dbt YAML, not in Python lists of model names:

    +meta:
      dagster:
        automation: on_upstream_update   # or on_definition_change

(set per folder in dbt_project.yml, overridable per model). Sources carry their
upstream asset key in `meta.dagster.asset_key` (models/staging/_sources.yml), so
raw.transactions is the `raw_transactions` asset the stream lands and
raw.forex_rates the `forex_rates` asset: the lineage runs unbroken from Kafka to
the marts.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings


def _not_busy() -> dg.AutomationCondition:
    return (~dg.AutomationCondition.in_progress() & ~dg.AutomationCondition.any_deps_in_progress()).with_label(
        "neither it nor an upstream asset is being built"
    )


def _upstream_models_exist() -> dg.AutomationCondition:
    # A model whose upstream dbt model was never built and is not being built now would fail: e.g. the
    # dimensions on a first tick that holds back the staging views because the stream is landing
    # raw.transactions. Only dbt deps count (see _upstream_updated for why not every dep).
    missing_now = dg.AutomationCondition.missing() & ~dg.AutomationCondition.will_be_requested()
    return (~dg.AutomationCondition.any_deps_match(missing_now).allow(dg.AssetSelection.kind("dbt"))).with_label(
        "every upstream dbt model exists or is being built with it"
    )


def _never_built() -> dg.AutomationCondition:
    # A failed first build is not retried on every tick: it waits for the next change. A first build does
    # not wait for upstream assets being updated (the stream landing, forex backfilling): it would be
    # requested without its upstream dbt models, whose relationship tests would then fail in the same run.
    return (
        dg.AutomationCondition.missing()
        & ~dg.AutomationCondition.execution_failed()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("never built")


def _definition_changed() -> dg.AutomationCondition:
    return (
        dg.AutomationCondition.code_version_changed()
        .since_last_handled()  # type: ignore[misc]  # dagster types its self as the wider key union
        .with_label("its SQL changed since it was built")
    )


def _upstream_updated() -> dg.AutomationCondition:
    # Unlike AutomationCondition.eager(), no `~any_deps_missing`: the monitoring
    # views read bookkeeping tables that no Dagster asset materialises, and the
    # daily-partitioned forex_rates always has old partitions nobody backfilled;
    # either would otherwise block the models for ever.
    #
    # Since it was last *requested*, not since it was last built (`since_last_handled`): the stream lands
    # every few seconds, so upstream assets update while a dbt run is in progress. A build that began
    # before such an update may not hold it; counted as handled, it would leave the marts behind what
    # landed last until the next event. Counted from the request, that update asks for one more build.
    return (
        dg.AutomationCondition.any_deps_updated()
        .since(dg.AutomationCondition.newly_requested())
        .with_label("an upstream asset updated since it was last requested")
    )


def automation_condition_named(policy: str) -> dg.AutomationCondition:
    """The automation condition a model's `meta.dagster.automation` names."""
    if policy == "on_upstream_update":
        return (
            (_never_built() | ((_upstream_updated() | _definition_changed()) & _not_busy())) & _upstream_models_exist()
        ).with_label("rebuild when upstream data or the model changes")
    if policy == "on_definition_change":
        return ((_never_built() | (_definition_changed() & _not_busy())) & _upstream_models_exist()).with_label(
            "rebuild only when the model changes"
        )
    raise ValueError(
        f"meta.dagster.automation={policy!r} is not a txstream automation policy: "
        "use on_upstream_update or on_definition_change (txstream_dagster/defs/dbt/translator.py)."
    )


def check_automation_condition() -> dg.AutomationCondition:
    """dbt tests run whenever the model they check (or another parent) is built."""
    return (
        dg.AutomationCondition.any_deps_updated().since_last_handled()
        & ~dg.AutomationCondition.in_progress()
        & _upstream_models_exist()
    ).with_label("run when the checked model is rebuilt")


def freshness_policy_of(freshness: Mapping[str, Any]) -> dg.FreshnessPolicy:
    """`meta.dagster.freshness: {warn_after_minutes: W, fail_after_minutes: F}` → Dagster's freshness policy:
    the UI shows the model as late after W minutes without a build and as failing after F."""
    return dg.FreshnessPolicy.time_window(
        fail_window=timedelta(minutes=freshness["fail_after_minutes"]),
        warn_window=timedelta(minutes=freshness["warn_after_minutes"]),
    )


def dagster_meta(dbt_resource_props: Mapping[str, Any]) -> Mapping[str, Any]:
    config_meta = (dbt_resource_props.get("config") or {}).get("meta") or {}
    return {**(dbt_resource_props.get("meta") or {}), **config_meta}.get("dagster") or {}


def layer_of(dbt_resource_props: Mapping[str, Any]) -> str:
    """The model's top folder under models/ (staging, marts, monitoring); `seeds` for seeds."""
    if dbt_resource_props["resource_type"] == "seed":
        return "seeds"
    fqn = dbt_resource_props["fqn"]  # [project, folder…, name]
    return fqn[1] if len(fqn) > 2 else "models"


class TxstreamDbtTranslator(DagsterDbtTranslator):
    def __init__(self):
        super().__init__(DagsterDbtTranslatorSettings(enable_asset_checks=True, enable_code_references=True))

    def get_asset_spec(self, manifest, unique_id, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        freshness = dagster_meta(self.get_resource_props(manifest, unique_id)).get("freshness")
        return spec.replace_attributes(freshness_policy=freshness_policy_of(freshness)) if freshness else spec

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)  # meta.dagster.asset_key
        return dg.AssetKey([layer_of(dbt_resource_props), dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return None
        return layer_of(dbt_resource_props)

    def get_code_version(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        # A seed has no SQL: its CSV's checksum says when it changed.
        if dbt_resource_props["resource_type"] == "seed":
            return (dbt_resource_props.get("checksum") or {}).get("checksum")
        return super().get_code_version(dbt_resource_props)

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> dg.AutomationCondition | None:
        if dbt_resource_props["resource_type"] not in ("model", "seed", "snapshot"):
            return None
        return automation_condition_named(dagster_meta(dbt_resource_props).get("automation", "on_upstream_update"))

    def get_asset_check_spec(self, asset_spec, manifest, unique_id, project) -> dg.AssetCheckSpec | None:
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        if spec is None:
            return None
        return dg.AssetCheckSpec(
            name=spec.name,
            asset=spec.asset_key,
            description=spec.description,
            additional_deps=spec.additional_deps,
            blocking=spec.blocking,
            metadata=spec.metadata,
            automation_condition=check_automation_condition(),
        )
