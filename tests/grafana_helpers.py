"""Grafana dashboards as tests see them: the JSON files, their panels, and panel SQL expanded
exactly as Grafana 12's PostgreSQL datasource expands it before it reaches the database.

Grafana expands a panel's `rawSql` in three steps, reproduced here in order:

1. the browser's template service replaces dashboard variables (`$currency`, `${currency}`)
   and `$__interval` / `$__interval_ms`. A variable that is multi-value or has an "All"
   option becomes single-quoted literals joined by commas (`'gbp','usd'`, quotes doubled),
   whatever is selected; "All" without a custom all-value means every option
   (SqlDatasource.interpolateVariable, TemplateSrv);
2. the backend replaces `$__interval_ms` and `$__interval` (sqleng.Interpolate);
3. the PostgreSQL macro engine expands `$__name(args)`; arguments are split at commas and
   cannot contain `)` (pkg/tsdb/grafana-postgresql-datasource/macros.go).

An interval variable (`$interval`) is a single value in step 1: the chosen option, or for
"auto" what rangeUtil.calculateInterval makes of the time range, the variable's step count
and minimum (`interval_selection`; scenes' IntervalVariable.getValue).

Only what txstream's dashboards use is here ($__timeFilter, $__timeFrom, $__timeTo,
$__timeGroup, $__timeGroupAlias, $__interval, $__interval_ms, interval variables); anything
else fails loudly rather than reaching PostgreSQL half-expanded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DASHBOARDS_DIR = REPO / "grafana" / "dashboards"
DATASOURCES_DIR = REPO / "grafana" / "provisioning" / "datasources"

# Grafana's TemplateSrv variable syntax: $name, [[name:format]], ${name.field:format}.
_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")
# macros.go: sExpr
_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^)]*)\)")
# gtime.ParseInterval for the units a dashboard bucket can have (M and y are calendar-relative: unused).
_INTERVAL = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
_UNIT = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}


class ExpansionError(ValueError):
    pass


# --- the dashboards --------------------------------------------------------------------------------


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def load_dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def provisioned_datasource() -> dict[str, Any]:
    """The one datasource grafana/provisioning/datasources declares (name, uid, type, …)."""
    [path] = sorted(DATASOURCES_DIR.glob("*.yaml"))
    [datasource] = yaml.safe_load(path.read_text())["datasources"]
    return datasource


def all_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and the panels folded inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def query_panels(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in all_panels(dashboard) if panel.get("type") != "row"]


def datasource_refs(node: Any) -> Iterator[Any]:
    """Every value of a `datasource` key anywhere in the dashboard JSON."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            yield from datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasource_refs(item)


def referenced_variables(sql: str) -> set[str]:
    """Names of the dashboard variables an SQL text refers to (Grafana's own `$__…` excluded)."""
    names = set()
    for match in _VARIABLE.finditer(sql):
        name = match.group(1) or match.group(2) or match.group(4)
        if not name.startswith("__"):
            names.add(name)
    return names


# --- expansion -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime
    interval: timedelta  # what Grafana computed for the panel (never below the datasource's 1m)


@dataclass(frozen=True)
class Selection:
    """What a dashboard variable holds: the chosen values, and how the variable is declared."""

    values: Sequence[str]
    multi: bool
    include_all: bool


def go_rfc3339_nano(moment: datetime) -> str:
    """Go's time.RFC3339Nano of the UTC instant: fraction without trailing zeros, `Z`."""
    utc = moment.astimezone(UTC)
    fraction = f"{utc.microsecond:06d}".rstrip("0")
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def go_float(value: float) -> str:
    """Go's `%v` of a float64: the shortest digits that round-trip, exponent form at 1e+06 and up."""
    number = Decimal(repr(float(value))).normalize()  # Python's repr is the shortest round-trip too
    sign, digits, exponent = number.as_tuple()
    decimal_exponent = len(digits) + exponent - 1
    if -4 <= decimal_exponent < 6:
        return format(number, "f")
    shown = "".join(map(str, digits))
    mantissa = shown[0] + (f".{shown[1:]}" if len(shown) > 1 else "")
    return f"{'-' if sign else ''}{mantissa}e{'+' if decimal_exponent >= 0 else '-'}{abs(decimal_exponent):02d}"


def format_interval(interval: timedelta) -> str:
    """gtime.FormatInterval: the largest whole unit, e.g. 1m, 30s, 2h, 1d."""
    for unit, size in (
        ("y", timedelta(days=365)),
        ("d", timedelta(days=1)),
        ("h", timedelta(hours=1)),
        ("m", timedelta(minutes=1)),
        ("s", timedelta(seconds=1)),
        ("ms", timedelta(milliseconds=1)),
    ):
        if interval >= size:
            return f"{interval // size}{unit}"
    return "1ms"


def parse_interval(text: str) -> timedelta:
    match = _INTERVAL.match(text.strip().strip("'"))
    if not match:
        raise ExpansionError(f"error parsing interval {text}")
    return int(match.group(1)) * _UNIT[match.group(2)]


# rangeUtil.roundInterval: (below this many ms, round to this many ms), in order.
_ROUNDED_INTERVALS_MS = (
    (10, 1),
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1_500, 1_000),
    (3_500, 2_000),
    (7_500, 5_000),
    (12_500, 10_000),
    (17_500, 15_000),
    (25_000, 20_000),
    (45_000, 30_000),
    (90_000, 60_000),
    (210_000, 120_000),
    (450_000, 300_000),
    (750_000, 600_000),
    (1_050_000, 900_000),
    (1_500_000, 1_200_000),
    (2_700_000, 1_800_000),
    (5_400_000, 3_600_000),
    (9_000_000, 7_200_000),
    (16_200_000, 10_800_000),
    (32_400_000, 21_600_000),
    (86_400_000, 43_200_000),
    (604_800_000, 86_400_000),
    (1_814_400_000, 604_800_000),
    (3_628_800_000, 2_592_000_000),
)
_YEAR_MS = 31_536_000_000


def round_interval_ms(interval: float) -> int:
    return next((rounded for below, rounded in _ROUNDED_INTERVALS_MS if interval < below), _YEAR_MS)


def seconds_to_hms(seconds: float) -> str:
    """rangeUtil.secondsToHms: the largest unit with a non-zero count (1y, 2d, 15m, 500ms)."""
    for unit, size in (("y", 31_536_000), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds * 1000)}ms"


def auto_interval(time_range: TimeRange, step_count: int, min_interval: str) -> str:
    """rangeUtil.calculateInterval(range, step_count, min_interval).interval: an interval variable's "auto"."""
    span_ms = (time_range.end - time_range.start) / timedelta(milliseconds=1)
    interval = max(round_interval_ms(span_ms / step_count), parse_interval(min_interval) / timedelta(milliseconds=1))
    return seconds_to_hms(interval / 1000)


def interval_options(variable: Mapping[str, Any]) -> list[str]:
    """The fixed choices of an interval variable, "auto" aside (getIntervalsFromQueryString)."""
    texts = [re.sub(r"[\"']+", "", match.group(0)) for match in re.finditer(r"([\"'])(.*?)\1|\w+", variable["query"])]
    return list(dict.fromkeys(text for text in texts if not text.startswith("$__auto_interval_")))


def interval_selection(variable: Mapping[str, Any], time_range: TimeRange, choice: str | None = None) -> Selection:
    """What `$<name>` of an interval variable holds: `choice` (default: the dashboard's current value)."""
    if variable["type"] != "interval":
        raise ExpansionError(f"${variable['name']} is a {variable['type']} variable, not an interval")
    choice = choice if choice is not None else variable["current"]["value"]
    if choice in ("auto", f"$__auto_interval_{variable['name']}"):
        if not variable.get("auto"):
            raise ExpansionError(f"${variable['name']} has no auto option")
        value = auto_interval(time_range, variable["auto_count"], variable["auto_min"])
    elif choice in interval_options(variable):
        value = choice
    else:
        raise ExpansionError(f"{choice!r} is not an option of ${variable['name']}: {interval_options(variable)}")
    return Selection([value], multi=False, include_all=False)


def interval_ms(time_range: TimeRange) -> str:
    return str(int(time_range.interval / timedelta(milliseconds=1)))


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def interpolate_variables(sql: str, time_range: TimeRange, variables: Mapping[str, Selection]) -> str:
    """Step 1, the browser: dashboard variables, `$__interval` and `$__interval_ms`."""
    builtins = {"__interval": format_interval(time_range.interval), "__interval_ms": interval_ms(time_range)}

    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        if name in builtins:
            return builtins[name]
        if name not in variables:
            return match.group(0)  # TemplateSrv leaves unknown names (and macros) untouched
        if match.group(3) or match.group(5) or match.group(6):
            raise ExpansionError(f"{match.group(0)}: variable formats and fields are not used by txstream dashboards")
        selection = variables[name]
        if selection.multi or selection.include_all:
            return ",".join(quote_literal(value) for value in selection.values)
        [value] = selection.values
        return value.replace("'", "''")

    return _VARIABLE.sub(replace, sql)


def interpolate_globals(sql: str, time_range: TimeRange) -> str:
    """Step 2, the backend's sqleng.Interpolate (only the interval: `$__unixEpochFrom()` and co are not used)."""
    sql = sql.replace("$__interval_ms", interval_ms(time_range))
    return sql.replace("$__interval", format_interval(time_range.interval))


def _macro(name: str, args: list[str], time_range: TimeRange) -> str:
    start, end = go_rfc3339_nano(time_range.start), go_rfc3339_nano(time_range.end)
    if name == "__timeFilter":
        if not args[0]:
            raise ExpansionError(f"missing time column argument for macro {name}")
        return f"{args[0]} BETWEEN '{start}' AND '{end}'"
    if name in ("__timeFrom", "__timeTo"):
        return f"'{start if name == '__timeFrom' else end}'"
    if name in ("__timeGroup", "__timeGroupAlias"):
        if len(args) != 2:
            # A third argument sets Grafana's fill mode, applied after the query; not used here.
            raise ExpansionError(f"macro {name} needs a time column and an interval (fill modes are not used)")
        seconds = go_float(parse_interval(args[1]).total_seconds())
        group = f"floor(extract(epoch from {args[0]})/{seconds})*{seconds}"
        return group + (' AS "time"' if name == "__timeGroupAlias" else "")
    raise ExpansionError(f'unknown macro "{name}"')


def expand_macros(sql: str, time_range: TimeRange) -> str:
    """Step 3, the PostgreSQL macro engine."""

    def replace(match: re.Match) -> str:
        name = match.group(1)
        # Pre-5.3 compatibility: `$__timeGroup(…),` in a select list gets the alias too.
        if name == "__timeGroup":
            after = sql.find(match.group(0)) + len(match.group(0))
            if sql[after : after + 1] == ",":
                name = "__timeGroupAlias"
        args = [arg.strip(" ") for arg in match.group(2).split(",")]
        return _macro(name, args, time_range)

    return _MACRO.sub(replace, sql)


def expand(sql: str, time_range: TimeRange, variables: Mapping[str, Selection] | None = None) -> str:
    """The SQL Grafana would send to PostgreSQL for this panel, time range and variable selection."""
    sql = interpolate_variables(sql, time_range, variables or {})
    return expand_macros(interpolate_globals(sql, time_range), time_range)
