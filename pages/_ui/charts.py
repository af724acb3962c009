"""Plotly figures for Search, Security and the Dashboard: each titled, with axis units and fixed,
readable colours (BIAS by rank, DIFF_STATUS red/blue, a colour-blind-safe palette otherwise).
Builders take core's frames and return a figure; `show` draws one, or says why there is none."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from core.schema import (
    BIAS,
    BIAS_RANK,
    COV_PRICE,
    CUSIP,
    DATE,
    PX,
    RANK,
    SECTOR,
    SIGNIFICANT,
    SMALL,
    SOURCE,
)

PRICE = "price (% of par)"
PALETTE = px.colors.qualitative.Safe + px.colors.qualitative.Dark24
BIAS_COLORS = {  # best ranks dark green, bids blue, offers red, talk orange, valuations grey
    "TRADE CONFIRM": "#1b7837", "TRADE": "#1b7837", "BWIC COVER": "#5aae61",
    "BID": "#2166ac", "BWIC REO": "#4393c3", "COLOR": "#92c5de", "DNT": "#053061",
    "DNT BEST": "#6a51a3", "MARKET": "#2166ac", "BUYER": "#2166ac",
    "OFFER": "#d6604d", "BWIC TALK": "#f4a582", "VALUATION": "#878787",
}
BIAS_ORDER = sorted(BIAS_RANK, key=lambda b: (BIAS_RANK[b], b))
SIDE_COLORS = {"trade": "#1b7837", "cover": "#5aae61", "bid": "#2166ac", "offer": "#d6604d",
               "talk": "#f4a582", "valuation": "#878787"}
SIDE_ORDER = list(SIDE_COLORS)
DIFF_COLORS = {SIGNIFICANT: "#d62728", SMALL: "#1f77b4"}
RANGE_BUTTONS = [
    {"count": 1, "label": "1m", "step": "month", "stepmode": "backward"},
    {"count": 3, "label": "3m", "step": "month", "stepmode": "backward"},
    {"count": 6, "label": "6m", "step": "month", "stepmode": "backward"},
    {"count": 1, "label": "YTD", "step": "year", "stepmode": "todate"},
    {"count": 1, "label": "1y", "step": "year", "stepmode": "backward"},
    {"step": "all", "label": "all"},
]


def _fingerprint(frame: pd.DataFrame) -> str:
    """The frame's whole content as a key (Streamlit's own hashing samples big frames)."""
    digest = hashlib.sha256(repr((list(frame.columns), [str(t) for t in frame.dtypes])).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return digest.hexdigest()


@st.cache_resource(max_entries=128, show_spinner=False)
def _built(name: str, fingerprint: str, args: tuple[Any, ...], _build: Callable[..., Any],
           _frame: pd.DataFrame) -> go.Figure | None:
    return _build(_frame, *args)


def _memoized(builder: Callable[..., go.Figure | None]) -> Callable[..., go.Figure | None]:
    """Keep each built figure per builder, frame content and arguments: plotly express takes
    10-150 ms a figure, which every rerun of a page would pay again. The figure is shared, not
    copied (st.plotly_chart only reads it), and a user only gets a figure of a frame they hold."""

    @functools.wraps(builder)
    def memoized(frame: pd.DataFrame, *args: Any) -> go.Figure | None:
        return _built(builder.__name__, _fingerprint(frame), args, builder, frame)

    return memoized


def show(figure: go.Figure | None, key: str, empty: str, *, toolbar: bool = True) -> None:
    """Draw a figure, or an st.info saying there is nothing to chart. toolbar=False leaves out
    Plotly's mode bar (its icons are built per chart even when hidden: with six charts, a
    quarter of the Dashboard's time to draw); hover, drag to zoom and double-click to reset
    work without it."""
    if figure is None:
        st.info(empty)
    elif toolbar:
        st.plotly_chart(figure, key=key, width="stretch")
    else:
        st.plotly_chart(figure, key=key, width="stretch", config={"displayModeBar": False})


def _layout(figure: go.Figure, title: str, x: str, y: str, legend: str | None = None
            ) -> go.Figure:
    """Titles and margins; no Plotly template: the page draws every chart in Streamlit's theme
    (which looks the same), and a figure still holding Plotly's own template (Plotly Express
    puts it in each) costs the browser ~20 ms a chart (the Dashboard, click to its charts:
    p50 524 → 414 ms over 30 rounds)."""
    figure.update_layout(title={"text": title}, xaxis_title=x, yaxis_title=y,
                         legend_title_text=legend, margin={"t": 60, "b": 40}, template=None)
    return figure


DAY_MS = 86_400_000  # plotly's dtick for a day, in milliseconds
# (longest span in days, dtick, tick format), first fit wins: ticks a person can read at any range
DAY_TICKS = ((14, DAY_MS, "%d %b"), (62, 7 * DAY_MS, "%d %b"), (400, "M1", "%b %Y"),
             (1100, "M3", "%b %Y"), (None, "M12", "%Y"))
MONTH_TICKS = ((400, "M1", "%b %Y"), (1130, "M3", "%b %Y"), (None, "M12", "%Y"))


def time_ticks(days: pd.Series, steps: tuple = DAY_TICKS) -> dict[str, Any]:
    """The x axis ticks for dates spanning `days`: one a day over two weeks, a week over two
    months, then months, quarters and years; never hours (the data are days). A single day
    still reads as a day."""
    dates = pd.to_datetime(days.dropna())
    span = (dates.max() - dates.min()).days if len(dates) else 0
    for longest, dtick, tickformat in steps:
        if longest is None or span <= longest:
            return {"type": "date", "dtick": dtick, "tickformat": tickformat}
    raise AssertionError("the last step has no limit")


def _biases(frame: pd.DataFrame) -> list[str]:
    seen = set(frame[BIAS].dropna().astype(str))
    return [b for b in BIAS_ORDER if b in seen] + sorted(seen - set(BIAS_ORDER))


# -- the security page ------------------------------------------------------------------------
@_memoized
def price_history(history: pd.DataFrame, cusip: str) -> go.Figure | None:
    """Every color's PX by DATE (colour = SOURCE, marker = BIAS), the COV_PRICE line (median of
    a day's coverage prices) and a range selector."""
    if history.empty or not {DATE, PX}.issubset(history.columns):
        return None
    points = history[history[PX].notna()].sort_values(DATE, kind="stable")
    if points.empty:
        return None
    color = SOURCE if SOURCE in points.columns else None
    symbol = BIAS if BIAS in points.columns else None
    figure = px.scatter(
        points, x=DATE, y=PX, color=color, symbol=symbol,
        color_discrete_sequence=PALETTE,
        category_orders={BIAS: _biases(points)} if symbol else None,
        hover_data=[c for c in (BIAS, RANK, "RUN_ID", "MESSAGE_ID") if c in points.columns])
    figure.update_traces(marker={"size": 9, "opacity": 0.85})
    if COV_PRICE in points.columns:
        cov = (history[history[COV_PRICE].notna()].groupby(DATE, as_index=False)[COV_PRICE]
               .median().sort_values(DATE))
        if len(cov):
            figure.add_trace(go.Scatter(x=cov[DATE], y=cov[COV_PRICE], mode="lines",
                                        name=COV_PRICE, line={"color": "#444", "dash": "dash"}))
    figure.update_xaxes(rangeselector={"buttons": RANGE_BUTTONS},
                        rangeslider={"visible": True}, type="date")
    return _layout(figure, f"{cusip}: price history", "date", PRICE, "SOURCE, BIAS")


@_memoized
def dispersion(quotes: pd.DataFrame, cusip: str, day: str) -> go.Figure | None:
    """A dot per dealer quote of one day: PX across, dealer down, colour by side."""
    if quotes.empty or not {PX, SOURCE, "SIDE"}.issubset(quotes.columns):
        return None
    figure = px.scatter(quotes, x=PX, y=SOURCE, color="SIDE", symbol="SIDE",
                        color_discrete_map=SIDE_COLORS, category_orders={"SIDE": SIDE_ORDER},
                        hover_data=[c for c in (BIAS, "BID", "ASK", "MESSAGE_ID")
                                    if c in quotes.columns])
    figure.update_traces(marker={"size": 12})
    figure.update_layout(height=160 + 40 * quotes[SOURCE].nunique())
    return _layout(figure, f"{cusip}: dealer quotes on {day}", PRICE, "dealer", "side")


# -- the dashboard ----------------------------------------------------------------------------
@_memoized
def colors_by_month_bias(frame: pd.DataFrame) -> go.Figure | None:
    if frame.empty:
        return None
    figure = px.bar(frame, x="MONTH", y="COLORS", color=BIAS, barmode="stack",
                    color_discrete_map=BIAS_COLORS, category_orders={BIAS: _biases(frame)})
    figure.update_xaxes(**time_ticks(frame["MONTH"], MONTH_TICKS))
    return _layout(figure, "Colors by month and BIAS", "month", "colors (rows)", "BIAS")


@_memoized
def volume_by_day(frame: pd.DataFrame, column: str) -> go.Figure | None:
    """Colors per DATE stacked by SECTOR or SOURCE."""
    if frame.empty:
        return None
    figure = px.bar(frame, x="DAY", y="COLORS", color=column, barmode="stack",
                    color_discrete_sequence=PALETTE,
                    category_orders={column: sorted(frame[column].dropna().astype(str).unique())})
    figure.update_xaxes(**time_ticks(frame["DAY"]))
    return _layout(figure, f"Daily volume by {column.lower()}", "date", "colors (rows)", column)


@_memoized
def price_trend(frame: pd.DataFrame) -> go.Figure | None:
    """Each chosen CUSIP's parent PX by DATE (solid) and its COV_PRICE (dashed)."""
    if frame.empty:
        return None
    figure = go.Figure()
    for i, (cusip, rows) in enumerate(frame.groupby(CUSIP, sort=True)):
        colour = PALETTE[i % len(PALETTE)]
        figure.add_trace(go.Scatter(x=rows[DATE], y=rows[PX], mode="lines+markers", name=cusip,
                                    line={"color": colour}))
        cov = rows[rows[COV_PRICE].notna()]
        if len(cov):
            figure.add_trace(go.Scatter(x=cov[DATE], y=cov[COV_PRICE], mode="lines",
                                        name=f"{cusip} COV_PRICE",
                                        line={"color": colour, "dash": "dash"}))
    figure.update_xaxes(**time_ticks(frame[DATE]))
    return _layout(figure, "Price trends (parent colors)", "date", PRICE, "CUSIP")


@_memoized
def diff_distribution(frame: pd.DataFrame) -> go.Figure | None:
    """The PX − COV_PRICE histogram (core's bins) with one colour per DIFF_STATUS."""
    if frame.empty:
        return None
    bins = frame.assign(MID=(frame["BIN_LOW"] + frame["BIN_HIGH"]) / 2,
                        WIDTH=frame["BIN_HIGH"] - frame["BIN_LOW"])
    figure = go.Figure()
    for status, rows in bins.groupby("DIFF_STATUS", sort=True):
        figure.add_trace(go.Bar(x=rows["MID"], y=rows["COLORS"], width=rows["WIDTH"],
                                name=str(status), marker_color=DIFF_COLORS.get(str(status))))
    figure.update_layout(barmode="stack", bargap=0)
    return _layout(figure, "PX − COV_PRICE distribution by DIFF_STATUS",
                   "PX − COV_PRICE (points of par)", "colors (rows)", "DIFF_STATUS")


@_memoized
def run_performance(frame: pd.DataFrame, throughput: bool = True) -> go.Figure | None:
    """Duration per run (bars) and, when shown, rows read per second (line, right axis)."""
    done = frame[frame["DURATION_S"].fillna(0) > 0] if len(frame) else frame
    if done.empty:
        return None
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    runs = done["RUN_ID"].astype(str)
    figure.add_trace(go.Bar(x=runs, y=done["DURATION_S"], name="duration (s)",
                            marker_color="#4393c3"), secondary_y=False)
    if throughput:
        figure.add_trace(go.Scatter(x=runs, y=done["ROWS_PER_S"], name="rows/s",
                                    mode="lines+markers", line={"color": "#d6604d"}),
                         secondary_y=True)
        figure.update_yaxes(title_text="rows read per second", rangemode="tozero",
                            secondary_y=True)
    figure.update_xaxes(type="category")
    figure.update_layout(legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0})
    title = "Run duration and throughput" if throughput else "Run duration"
    return _layout(figure, title, "run", "duration (seconds)")


@_memoized
def quality(frame: pd.DataFrame) -> go.Figure | None:
    """The data quality score (0–100) of each run's input."""
    scored = frame[frame["QUALITY"].notna()] if len(frame) else frame
    if scored.empty:
        return None
    figure = go.Figure(go.Bar(x=scored["RUN_ID"].astype(str), y=scored["QUALITY"],
                              marker_color="#5aae61", name="quality"))
    figure.update_xaxes(type="category")
    figure.update_yaxes(range=[0, 100])
    return _layout(figure, "Data quality score per run", "run", "score (0–100)")


# -- the dashboard ----------------------------------------------------------------------------
def dashboard_figures(data: Any) -> dict[str, go.Figure | None]:
    """Every chart of the Dashboard from its data (core.reads.dashboard.DashboardData), by name:
    month_bias, source, runs, sector, diff, quality, trend."""
    return {
        "month_bias": colors_by_month_bias(data.colors_by_month_bias),
        "source": volume_by_day(data.volume_by_source, "SOURCE"),
        "runs": run_performance(data.runs, "ROWS_PER_S" in data.runs),
        "sector": volume_by_day(data.volume_by_sector, SECTOR),
        "diff": diff_distribution(data.diff_distribution),
        "quality": quality(data.runs),
        "trend": price_trend(data.price_trend),
    }
