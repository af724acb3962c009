"""Search page pieces: the query form (box, bulk ids, filters, order), the page and the access
record of a query, results as parent groups with their children, the bulk report, the export,
saved searches and history. Core parses, searches, checks and records; this draws and collects."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pandas as pd
import streamlit as st

from core.access import Actor
from core.clock import utc_now
from core.compliance.access_log import log_search
from core.reads.dashboard import DashboardFilters
from core.reads.identifiers import (
    CUSIP_ID,
    MANGLED,
    MESSAGE_ID_ID,
    TICKER_ID,
    parse_bulk,
    read_id_file,
)
from core.reads.saved_searches import (
    SavedSearch,
    delete_saved_search,
    list_saved_searches,
    load_search_history,
    record_search_history,
    save_search,
)
from core.reads.search import (
    SearchQuery,
    SearchResult,
    export_search,
    filters_group,
    text_identifier,
)
from core.rules.conditions import (
    AFTER,
    BEFORE,
    BETWEEN,
    EQUAL_TO,
    GREATER_THAN_OR_EQUAL_TO,
    IN_LIST,
    LESS_THAN_OR_EQUAL_TO,
    Condition,
    Group,
)
from core.schema import (
    BIAS,
    BIAS_ALIASES,
    BIAS_RANK,
    COLUMN_TYPE,
    CUSIP,
    DATE,
    IS_PARENT,
    OUTPUT_COLUMNS,
    PROCESSING_TYPE,
    PROCESSING_TYPES,
    PX,
    RANK,
    RUN_ID,
    SECTOR,
    SOURCE,
)
from pages._ui import cached
from pages._ui.automation_views import flash
from pages._ui.form_values import FormValues
from pages._ui.markdown import escape_markdown
from pages._ui.rule_builder import load_builder, render_builder
from pages._ui.services import error_boundary
from pages._ui.tables import CHILD, GROUP_ROWS, ROLE, roles, show_table
from pages._ui.widgets import SUMMARY_COLUMNS
from storage import Store

SECURITY_PAGE = "pages/security.py"
# The query form's values (box, bulk text, filters, order): its widgets' defaults, kept in one
# place, never set on their keys (pages._ui.form_values); a loaded search draws them afresh.
FORM = FormValues("search.form")
BULK_FILE, UPLOADS = "search.bulk_file", "search.uploads_state"
CONDITIONS, PAGE = "search.conditions", "search.page"
PICK = "search.preset_pick_state"  # a preset to pick before the form is drawn (after a save)
RESULTS, OPEN = "search.results", "search.open"
EXPORT_FORMAT, DOWNLOAD = "search.export_format", "search.download"
SHOWN_QUERY = "search.query_state"  # the query (page 1) the page is showing
LOGGED = "search.logged_state"  # the last query recorded in the access log and history
KIND_WORDS = {"auto": "Detect", CUSIP_ID: "CUSIP", TICKER_ID: "Ticker", MESSAGE_ID_ID: "MESSAGE_ID"}
MATCH_WORDS = {"prefix": "starts with", "contains": "contains", "exact": "is exactly"}
PAGE_SIZES = (10, 25, 50, 100, 200)
FORMATS = {"xlsx": "Excel (.xlsx)", "csv": "CSV"}
MIME = {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "csv": "text/csv"}
BIASES = [b for b in sorted(BIAS_RANK, key=lambda b: (BIAS_RANK[b], b)) if b not in BIAS_ALIASES]
# the list filters (widget name → column), in filters_group's argument order
LISTS = {"sectors": SECTOR, "sources": SOURCE, "biases": BIAS, "ranks": RANK,
         "processing_types": PROCESSING_TYPE, "run_ids": RUN_ID}
SCALARS = {"date_from": None, "date_to": None, "px_min": None, "px_max": None,
           "parents_only": False}  # the other filters, empty
BLANK: dict[str, Any] = {  # sort None: RUN_ID where visible
    "text": "", "kind": "auto", "match": "prefix", "bulk_text": "", "sort": None,
    "descending": True, "page_size": PAGE_SIZES[1], **{name: [] for name in LISTS}, **SCALARS,
    "more": False, "preset": "", "drawn": False}  # preset: its id, "" for none (search_presets)


def visible(actor: Actor, column: str) -> bool:
    return actor.columns is None or column in actor.columns


def condition_columns(actor: Actor) -> dict[str, str]:
    """The columns the actor may filter and sort on → core.schema type."""
    return {c: COLUMN_TYPE[c] for c in OUTPUT_COLUMNS if visible(actor, c)}


def describe_query(query: SearchQuery) -> str:
    """A search in a few words (history and saved-search lists)."""
    parts = []
    ident = text_identifier(query)
    if ident is not None:
        how = f" ({MATCH_WORDS[query.match]})" if ident.kind in (TICKER_ID, MESSAGE_ID_ID) else ""
        parts.append(f"{KIND_WORDS.get(ident.kind, 'Mangled id')} {query.text.strip()}{how}")
    if query.bulk:
        parts.append(f"{len(query.bulk)} ids")
    if query.filters is not None and query.filters.items:
        parts.append(f"{len(query.filters.items)} filter(s)")
    if query.preset is not None:
        parts.append(f"preset {query.preset.name}")
    return " · ".join(parts) or "all colors"


# -- the form -----------------------------------------------------------------------------------
def search_form() -> FormValues:
    """The form's values; empty when the page is opened again (its widgets were dropped when it
    was left, as Streamlit drops a page's widgets, and the form started empty)."""
    if not FORM.loaded() or (FORM["drawn"] and FORM.key("text") not in st.session_state):
        FORM.load(BLANK)
    if PICK in st.session_state:  # a preset just saved is picked: the form is drawn afresh
        FORM.load({**FORM.values(), "preset": st.session_state.pop(PICK), "drawn": False})
    return FORM


def _index(options: list[Any], value: Any, default: int = 0) -> int:
    return options.index(value) if value in options else default


def render_box() -> tuple[str, str, str]:
    """The one box: text, how to read it, how to match it."""
    form = search_form()
    box, kind, match = st.columns([4, 1, 1])
    text = box.text_input("CUSIP, ticker or MESSAGE_ID", value=form["text"],
                          key=form.key("text"),
                          placeholder="97988RBL5 · ARES 2025 · 17734072432755618")
    kinds, matches = list(KIND_WORDS), list(MATCH_WORDS)
    how = kind.selectbox("Read as", kinds, index=_index(kinds, form["kind"]),
                         format_func=KIND_WORDS.get, key=form.key("kind"))
    matching = match.selectbox("Tickers and ids", matches, index=_index(matches, form["match"]),
                               format_func=MATCH_WORDS.get, key=form.key("match"))
    form.keep(text=text, kind=how, match=matching, drawn=True)
    return text, how, matching


def render_bulk() -> tuple:
    """Identifiers pasted or uploaded (one per line or cell), parsed by core.reads.identifiers."""
    form = search_form()
    pasted = st.text_area("Paste identifiers (CUSIPs, MESSAGE_IDs or tickers, one per line)",
                          value=form["bulk_text"], key=form.key("bulk_text"), height=120)
    form.keep(bulk_text=pasted)
    upload = st.file_uploader("…or upload a file of them (.xlsx, .csv, .txt)",
                              type=["xlsx", "xls", "csv", "txt"],
                              key=f"{BULK_FILE}.{st.session_state.get(UPLOADS, 0)}")
    found = list(parse_bulk(pasted)) if pasted.strip() else []
    if upload is not None:
        with error_boundary(f"Reading {upload.name}"):
            found += read_id_file(upload.name, upload.getvalue())
    seen, ids = set(), []
    for ident in found:  # pasted and uploaded: each id once
        mark = (ident.kind, ident.value.lower() if ident.kind != MANGLED else ident.text)
        if mark not in seen:
            seen.add(mark)
            ids.append(ident)
    return tuple(ids)


def rank_label(rank: int) -> str:
    return f"{rank} ({', '.join(b for b in BIASES if BIAS_RANK[b] == rank)})"


def _with_current(options: list[Any], held: list[Any]) -> list[Any]:
    """Options plus whatever the widget holds (a loaded search may name other values)."""
    return [*options, *[v for v in held if v not in options]]


def render_filters(actor: Actor, options: dict[str, list[Any]]) -> Group | None:
    """The standard filters (core.reads.search.filters_group) plus, optionally, conditions on any
    visible column (the shared condition builder). None when nothing is set."""
    form, values = search_form(), {}
    left, right = st.columns(2)
    if visible(actor, DATE):
        values["date_from"] = left.date_input("DATE from", value=form["date_from"],
                                              key=form.key("date_from"))
        values["date_to"] = right.date_input("DATE to", value=form["date_to"],
                                             key=form.key("date_to"))
    if visible(actor, PX):
        values["px_min"] = left.number_input("PX at least", value=form["px_min"], step=0.25,
                                             key=form.key("px_min"))
        values["px_max"] = right.number_input("PX at most", value=form["px_max"], step=0.25,
                                              key=form.key("px_max"))
    labels = {"sectors": "Sector", "sources": "Source (dealer)", "biases": "BIAS",
              "ranks": "RANK", "processing_types": "Processing type", "run_ids": "Run"}
    for i, (name, column) in enumerate(LISTS.items()):
        if visible(actor, column):
            column_box = (left, right)[i % 2]
            values[name] = tuple(column_box.multiselect(
                labels[name], _with_current(options[name], form[name]), default=form[name],
                key=form.key(name), format_func=rank_label if name == "ranks" else str))
    if visible(actor, IS_PARENT):
        values["parents_only"] = st.checkbox("Parents only", value=form["parents_only"],
                                             key=form.key("parents_only"))
    more = st.toggle("Conditions on any column", value=form["more"], key=form.key("more"))
    form.keep(**{name: list(value) if name in LISTS else value
                 for name, value in values.items()}, more=more)
    group = filters_group(**values)
    if more:
        extra = render_builder(CONDITIONS, condition_columns(actor))
        if extra.items:
            group = Group("and", [*group.items, extra])
    return group if group.items else None


def render_order(actor: Actor) -> tuple[str, bool, int]:
    form = search_form()
    sort, direction, size = st.columns([2, 1, 1], vertical_alignment="bottom")
    columns = list(condition_columns(actor))
    column = sort.selectbox("Sort by", columns, key=form.key("sort"), index=_index(
        columns, form["sort"], _index(columns, RUN_ID)))
    descending = direction.toggle("Descending", value=form["descending"],
                                  key=form.key("descending"))
    page_size = size.selectbox("Groups per page", PAGE_SIZES, key=form.key("page_size"),
                               index=_index(list(PAGE_SIZES), form["page_size"], 1))
    form.keep(sort=column, descending=descending, page_size=page_size)
    return column, descending, int(page_size)


def filter_options(store: Store, actor: Actor) -> dict[str, list[Any]]:
    """Values to offer in the list filters: the sectors and sources the actor's colors have."""
    overview = cached.dashboard(store, actor, DashboardFilters(latest_limit=0),
                                utc_now())
    return {"sectors": sorted(overview.volume_by_sector[SECTOR].dropna().unique().tolist()),
            "sources": sorted(overview.volume_by_source[SOURCE].dropna().unique().tolist()),
            "biases": BIASES, "ranks": list(range(1, 7)),
            "processing_types": list(PROCESSING_TYPES),
            "run_ids": sorted(cached.visible_run_ids(store), reverse=True)}


# -- loading a saved or earlier search into the form ---------------------------------------------
def _day(value: Any) -> date | None:
    return None if value in (None, "") else pd.Timestamp(value).date()


def _date_side(item: Group) -> tuple[str, date] | None:
    """filters_group's "on or after" / "on or before" a day, read back."""
    conds = [i for i in item.items if isinstance(i, Condition) and i.column == DATE]
    if item.join != "or" or len(conds) != 2 or len(item.items) != 2:
        return None
    ops = {c.operator for c in conds}
    if conds[0].value != conds[1].value or EQUAL_TO not in ops:
        return None
    side = {AFTER: "date_from", BEFORE: "date_to"}.get(next(iter(ops - {EQUAL_TO}), ""))
    return (side, _day(conds[0].value)) if side else None


def split_filters(group: Group | None) -> tuple[dict[str, Any], Group | None]:
    """A query's filters as the standard widgets' values and the rest (for the builder)."""
    values: dict[str, Any] = {}
    rest: list[Condition | Group] = []
    by_column = {column: name for name, column in LISTS.items()}
    for item in group.items if group is not None else []:
        found: dict[str, Any] = {}
        if isinstance(item, Group):
            side = _date_side(item)
            found = dict([side]) if side else {}
        elif item.column == DATE and item.operator == BETWEEN:
            found = {"date_from": _day(item.value), "date_to": _day(item.value2)}
        elif item.operator == IN_LIST and item.column in by_column:
            found = {by_column[item.column]: list(item.value)}
        elif item.column == PX and item.operator == BETWEEN:
            found = {"px_min": float(item.value), "px_max": float(item.value2)}
        elif item.column == PX and item.operator in (GREATER_THAN_OR_EQUAL_TO,
                                                       LESS_THAN_OR_EQUAL_TO):
            found = {"px_min" if item.operator == GREATER_THAN_OR_EQUAL_TO else "px_max":
                     float(item.value)}
        elif item.column == IS_PARENT and item.operator == EQUAL_TO and item.value is True:
            found = {"parents_only": True}
        if found and not set(found) & set(values):
            values.update(found)
        else:
            rest.append(item)
    if not rest:
        return values, None
    return values, rest[0] if len(rest) == 1 and isinstance(rest[0], Group) else Group("and", rest)


def load_query(query: SearchQuery, actor: Actor) -> None:
    """Put a query in the form (an on_click callback: it runs before the widgets are drawn)."""
    state = st.session_state
    values, rest = split_filters(query.filters)
    FORM.load({**BLANK, "text": query.text, "kind": query.kind, "match": query.match,
               "bulk_text": "\n".join(i.text for i in query.bulk), "sort": query.sort,
               "descending": query.descending, "page_size": query.page_size,
               **{name: list(values.get(name, [])) for name in LISTS},
               **{name: values.get(name, empty) for name, empty in SCALARS.items()},
               "more": rest is not None,
               "preset": query.preset.id if query.preset is not None else ""})
    state[PAGE] = 1  # the pagination's own first page
    state[UPLOADS] = state.get(UPLOADS, 0) + 1  # a new, empty uploader
    state.pop(LOGGED, None)  # running a search again is a search: logged again
    load_builder(CONDITIONS, rest, condition_columns(actor))


# -- a query's page and its record ----------------------------------------------------------------
def _page_key(query: SearchQuery) -> str:
    return query.with_page(1).key()


def current_page(query: SearchQuery) -> int:
    """The page to show: page 1 (and no selected row) whenever the query changes."""
    if st.session_state.get(SHOWN_QUERY) != _page_key(query):
        st.session_state[SHOWN_QUERY] = _page_key(query)
        st.session_state[PAGE] = 1
        st.session_state.pop(RESULTS, None)
    return int(st.session_state.get(PAGE) or 1)


def search(store: Store, actor: Actor, query: SearchQuery) -> SearchResult:
    """One page of the result (cached); a page past the end shows the last one."""
    result = cached.search_page(store, actor, query.with_page(current_page(query)))
    if result.total_parents and result.page > result.pages:
        st.session_state[PAGE] = result.pages
        result = cached.search_page(store, actor, query.with_page(result.pages))
    return result


def record(store: Store, actor: Actor, query: SearchQuery, result: SearchResult) -> None:
    """A new query (not a new page of it) goes to the access log and the user's history."""
    if st.session_state.get(LOGGED) != _page_key(query):
        log_search(store, actor, query, result.total_rows)
        record_search_history(store, actor, query)
        st.session_state[LOGGED] = _page_key(query)


# -- results ------------------------------------------------------------------------------------
def render_notes(result: SearchResult) -> None:
    ident = result.text
    if ident is not None and ident.kind == MANGLED:
        st.warning(f"{escape_markdown(repr(ident.text))} cannot match anything: {ident.reason}.")
    for note in result.notes:
        if ident is None or ident.kind != MANGLED:
            st.caption(f"{escape_markdown(ident.text) if ident else ''}: {escape_markdown(note)}")


def render_bulk_report(result: SearchResult) -> None:
    report = result.bulk
    if report is None:
        return
    st.markdown(f"**Bulk lookup:** {len(report.matched)} matched, {len(report.unmatched)} not "
                f"found, {len(report.mangled)} Excel-mangled.")
    if report.mangled:
        st.warning("Excel-mangled ids cannot be matched: " + "; ".join(
            f"{escape_markdown(e.identifier.text)} ({e.reason})"
            for e in report.entries if e.status == "mangled"))
    show_table(report.to_frame())


def render_results(result: SearchResult) -> str | None:
    """Each group (a CUSIP's matching colors in one run) as one row: its parent, or its best
    matching color when the filters leave the parent out; ROLE says which, as published (a
    filter never makes a child a parent). Selecting a row shows the group's other colors.
    Returns the selected CUSIP."""
    frame = result.frame
    st.caption(f"{result.total_parents:,} groups (a CUSIP in a run) · {result.total_rows:,} "
               f"colors · page {result.page} of {result.pages}")
    if frame.empty:
        st.info("No colors match this search.")
        return None
    if not {RUN_ID, CUSIP}.issubset(frame.columns):  # a column profile hides the group keys
        show_table(frame)
        return None
    if IS_PARENT in frame.columns:
        frame = frame.assign(**{ROLE: roles(frame[IS_PARENT])})
    first = ~frame.duplicated([RUN_ID, CUSIP])
    group = first.cumsum()
    heads = frame[first].assign(**{GROUP_ROWS: group.value_counts().sort_index().to_numpy()})
    shown = [c for c in [CUSIP, ROLE, *SUMMARY_COLUMNS] if c in heads.columns] + [GROUP_ROWS]
    shown = list(dict.fromkeys(shown))
    if ROLE in heads.columns and (heads[ROLE] == CHILD).any():
        st.caption("A group whose parent does not match the search shows its best matching "
                   "color, a child (ROLE).")
    event = show_table(heads[shown], key=RESULTS, on_select="rerun",
                       selection_mode="single-row")
    rows = [r for r in (event.selection.rows if event is not None else []) if r < len(heads)]
    if not rows:
        st.caption("Select a row to see its other colors and open the security.")
        return None
    children = frame[(group == rows[0] + 1).to_numpy()].iloc[1:]  # groups are numbered from 1
    head = heads.iloc[rows[0]]
    st.markdown(f"**{escape_markdown(head[CUSIP])}** run {head[RUN_ID]}: "
                f"{len(children)} other color(s)")
    if len(children):
        show_table(children[[c for c in shown if c != GROUP_ROWS]])
    return str(head[CUSIP])


def open_security(cusip: str | None) -> None:
    if cusip and st.button(f"Open security {escape_markdown(cusip)}", key=OPEN):
        st.switch_page(SECURITY_PAGE, query_params={"cusip": cusip})


def render_export(store: Store, actor: Actor, query: SearchQuery, result: SearchResult) -> None:
    """Download the whole result (every page) in one click: the file is made, and the export
    logged, when the button is clicked (Streamlit's deferred download), not on every rerun."""
    if not result.total_rows:
        return
    left, right = st.columns([1, 3], vertical_alignment="bottom")
    fmt = left.radio("Format", list(FORMATS), format_func=FORMATS.get, key=EXPORT_FORMAT,
                     horizontal=True)
    rows = result.total_rows

    def exported() -> bytes:
        return export_search(store, actor, query, fmt)  # core logs the export

    stamp = utc_now().strftime("%Y%m%d-%H%M")
    right.download_button(f"Download all {rows:,} colors ({FORMATS[fmt]})", exported,
                          file_name=f"marketpulse-search-{stamp}.{fmt}", mime=MIME[fmt],
                          key=DOWNLOAD, on_click="ignore")


def query_from_form(text: str, kind: str, match: str, bulk: tuple, filters: Group | None,
                    order: tuple[str, bool, int], *, preset: bool = False
                    ) -> SearchQuery | None:
    """The form as a SearchQuery (page 1, the preset not applied yet: core applies it); None while
    it asks nothing (`preset`: one is picked, which asks for its rows)."""
    if not text.strip() and not bulk and filters is None and not preset:
        return None
    sort, descending, size = order
    return replace(SearchQuery(), text=text.strip(), kind=kind, match=match, bulk=bulk,
                   filters=filters, sort=sort, descending=descending, page_size=size)


# -- saved searches and history -----------------------------------------------------------------
SAVE_NAME, SAVE_SHARED, SAVE = "search.save_name", "search.save_shared", "search.save"
SAVED, LOAD, DELETE = "search.saved", "search.load", "search.delete"
HISTORY, HISTORY_LOAD = "search.history", "search.history_load"


def saved_label(saved: SavedSearch, actor: Actor) -> str:
    if saved.owner != actor.username:
        return f"{saved.name} (shared by {saved.owner})"
    return f"{saved.name} (shared)" if saved.shared else saved.name


def history_label(at: str, query: SearchQuery) -> str:
    return f"{pd.Timestamp(at).tz_convert('UTC'):%Y-%m-%d %H:%M} UTC · {describe_query(query)}"


def render_saved(store: Store, actor: Actor, query: SearchQuery | None) -> None:
    """Save the current search; load or delete a saved one (own, or shared by others)."""
    name, shared, save = st.columns([3, 1, 1], vertical_alignment="bottom")
    title = name.text_input("Save this search as", key=SAVE_NAME, max_chars=80)
    share = shared.checkbox("Shared", key=SAVE_SHARED, help="Everyone can load a shared search")
    if save.button("Save", key=SAVE, disabled=query is None):
        with error_boundary("Saving the search"):
            saved = save_search(store, actor, title, query, shared=share)
            flash("search", f"Saved the search {saved.name!r}")
            st.rerun()
    found = list_saved_searches(store, actor)
    if not found:
        st.caption("No saved searches yet.")
        return
    pick, load, delete = st.columns([3, 1, 1], vertical_alignment="bottom")
    index = pick.selectbox("Saved searches", range(len(found)), key=SAVED,
                           format_func=lambda i: saved_label(found[i], actor))
    chosen = found[min(index or 0, len(found) - 1)]
    load.button("Load", key=LOAD, on_click=load_query, args=(chosen.query, actor))
    if delete.button("Delete", key=DELETE, disabled=chosen.owner != actor.username):
        with error_boundary(f"Deleting {chosen.name!r}"):
            delete_saved_search(store, actor, chosen.name)
            flash("search", f"Deleted the search {chosen.name!r}")
            st.rerun()


def render_history(store: Store, actor: Actor) -> None:
    """The user's last searches (core keeps 20), newest first, each can run again."""
    history = load_search_history(store, actor)
    if not history:
        st.caption("No searches yet.")
        return
    pick, again = st.columns([4, 1], vertical_alignment="bottom")
    index = pick.selectbox("Your last searches", range(len(history)), key=HISTORY,
                           format_func=lambda i: history_label(*history[i]))
    again.button("Run again", key=HISTORY_LOAD, on_click=load_query,
                 args=(history[min(index or 0, len(history) - 1)][1], actor))
