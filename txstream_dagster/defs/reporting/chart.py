"""The KPI chart: daily GBP revenue as bars, success rate as a line, rendered to PNG bytes.

Drawn on a bare `Figure` with the Agg canvas, not pyplot: no global figure state,
no GUI backend, safe in a run worker.
"""

from __future__ import annotations

import io

import matplotlib.dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from txstream_dagster.defs.reporting.kpis import KpiWindow

WIDTH_IN, HEIGHT_IN, DPI = 10, 4.8, 100  # 1000 × 480 px
REVENUE_COLOUR, PARTIAL_COLOUR, RATE_COLOUR = "#3274d9", "#9bbcec", "#e0752d"


def chart_title(window: KpiWindow) -> str:
    return f"Daily revenue (GBP) and success rate, {window.first_day:%d %b %Y} – {window.last_day.day:%d %b %Y} (UTC)"


def footnote(window: KpiWindow) -> str:
    notes = []
    if not window.last_day_complete:
        notes.append(f"{window.last_day.day:%d %b} is today: its figures are so far.")
    if window.charges_without_gbp_rate:
        notes.append(
            f"Revenue leaves out {window.charges_without_gbp_rate:,} charges without a GBP rate for their date."
        )
    return " ".join(notes)


def render_kpi_chart(window: KpiWindow) -> bytes:
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    revenue_axis = figure.add_subplot()
    days = [kpi.day for kpi in window.days]
    colours = [REVENUE_COLOUR] * len(days)
    if not window.last_day_complete:
        colours[-1] = PARTIAL_COLOUR
    revenue_axis.bar(
        days,  # type: ignore[arg-type]  # matplotlib converts dates through its units registry
        [float(kpi.revenue_gbp) for kpi in window.days],
        width=0.8,
        color=colours,
        label="Revenue (GBP)",
    )
    revenue_axis.set_ylabel("Revenue (GBP)")
    revenue_axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"£{value:,.0f}"))
    revenue_axis.xaxis.set_major_locator(mdates.AutoDateLocator(maxticks=12))
    revenue_axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(revenue_axis.xaxis.get_major_locator()))
    revenue_axis.grid(axis="y", alpha=0.3)

    rate_axis = revenue_axis.twinx()
    rated = [(kpi.day, kpi.success_rate) for kpi in window.days if kpi.success_rate is not None]
    rate_axis.plot(
        [day for day, _ in rated],  # type: ignore[arg-type]  # matplotlib converts dates through its units registry
        [rate for _, rate in rated],
        color=RATE_COLOUR,
        marker="o",
        markersize=3,
        linewidth=1.5,
        label="Success rate",
    )
    lowest = min((rate for _, rate in rated), default=1.0)
    rate_axis.set_ylim(max(0.0, lowest - 0.05), 1.0)
    rate_axis.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    rate_axis.set_ylabel("Success rate")

    handles = revenue_axis.get_legend_handles_labels()[0] + rate_axis.get_legend_handles_labels()[0]
    revenue_axis.legend(handles=handles, loc="upper left", fontsize="small")
    revenue_axis.set_title(chart_title(window), fontsize="medium")
    if note := footnote(window):
        figure.supxlabel(note, fontsize="small", color="#555555")

    png = io.BytesIO()
    figure.savefig(png, format="png")
    return png.getvalue()
