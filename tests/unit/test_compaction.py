"""Compaction: the CUSIP-clustered copy keeps every row and every answer, lets a lookup read one
file instead of one per run, follows runs published or removed since, and replaces itself safely."""

from __future__ import annotations

import argparse
import itertools
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest
from pandas.testing import assert_frame_equal

from core.access import SYSTEM
from core.cli import search as cli_search
from core.cli.demo import generate_colors
from core.config import load_settings
from core.reads.compaction import DELTA, FULL, compact_colors, plan_compaction
from core.reads.dashboard import DashboardFilters, dashboard_data
from core.reads.search import SearchQuery, search_colors, search_rows
from core.reads.security_page import security_history
from core.runs import pipeline
from core.runs import records as runs
from core.runs.exports import write_csv
from core.runs.published import visible_runs
from core.schema import INPUT_COLUMNS
from storage import WriteConflict, open_store
from storage import run_compaction as compaction
from storage.parquet_layout import COMPACT_TABLE, ROLLUP_TABLE
from storage.run_layout import Shard, manifest_shards
from storage.run_tables import run_tables

SETTINGS = load_settings({}, {})
DAYS = ("2026-03-10", "2026-03-11", "2026-03-12")
NOW = datetime(2026, 3, 12, 20, tzinfo=UTC)


def publish(store, day: str) -> runs.RunRecord:
    frame = generate_colors(120, date=day, cusips=25, seed=3)[list(INPUT_COLUMNS)]
    return pipeline.process_files(store, SYSTEM, [(f"{day}.csv", write_csv(frame))],
                                  settings=SETTINGS, rules=[],
                                  now=datetime.fromisoformat(f"{day}T18:00:00+00:00")).record


def read_layout(store):
    """Where the store reads the visible runs' colors from (the Parquet layout's own view)."""
    return run_tables(store).layout(visible_runs(store))


def spy_on_register(store, monkeypatch) -> list:
    """The (table, partitions) of every view the store registers from now on."""
    opened = []
    real = store.register
    monkeypatch.setattr(store, "register", lambda con, table, partitions=None, **kw: (
        opened.append((table, partitions)), real(con, table, partitions, **kw))[1])
    return opened


@pytest.fixture(params=["memory", "local"])
def store(request, tmp_path):
    store = (open_store("memory://compaction") if request.param == "memory"
             else open_store(str(tmp_path / "store")))
    for day in DAYS:
        publish(store, day)
    return store


def answers(store) -> dict:
    cusip = search_colors(store, SYSTEM, SearchQuery()).frame["CUSIP"].iloc[0]
    dashboard = dashboard_data(store, SYSTEM, DashboardFilters(cusips=(cusip,)), NOW)
    return {"rows": search_rows(store, SYSTEM, SearchQuery()),
            "lookup": search_colors(store, SYSTEM, SearchQuery(text=cusip)).frame,
            "history": security_history(store, SYSTEM, cusip),
            "page": search_colors(store, SYSTEM, SearchQuery(page=2, page_size=7)).frame,
            "months": dashboard.colors_by_month_bias, "sectors": dashboard.volume_by_sector,
            "diff": dashboard.diff_distribution, "trend": dashboard.price_trend,
            "kpis": dashboard.kpis}


def test_compaction_keeps_every_row_and_every_answer(store):
    before = answers(store)
    report = compact_colors(store, force=True, now=NOW)
    assert (report.done, report.runs, report.rows) == (True, 3, len(before["rows"]))
    layout = read_layout(store)
    assert (layout.covered, layout.uncovered, layout.stale) == ((1, 2, 3), (), ())
    after = answers(store)
    assert after.pop("kpis") == before.pop("kpis")
    for name, frame in before.items():
        assert_frame_equal(after[name], frame, check_dtype=False, obj=name)


def _row_groups_holding(paths, cusip: str) -> int:
    """How many row groups a lookup of cusip cannot skip (their CUSIP min/max include it)."""
    count = 0
    for path in paths:
        meta = pq.ParquetFile(path).metadata
        column = meta.schema.to_arrow_schema().get_field_index("CUSIP")
        for i in range(meta.num_row_groups):
            stats = meta.row_group(i).column(column).statistics
            count += stats.min <= cusip <= stats.max
    return count


def test_a_lookup_reads_one_file_after_compaction_instead_of_one_per_run(local_store):
    for day in DAYS:
        publish(local_store, day)
    cusip = search_colors(local_store, SYSTEM, SearchQuery()).frame["CUSIP"].iloc[0]
    tables = local_store.root / "tables"
    per_run = sorted((tables / runs.COLORS_TABLE).glob("run=*/*.parquet"))
    assert (len(per_run), _row_groups_holding(per_run, cusip)) == (3, 3)
    compact_colors(local_store, force=True, now=NOW)
    layout = read_layout(local_store)
    copied = sorted((tables / COMPACT_TABLE).glob(f"{layout.compact_partition}-s*/*.parquet"))
    assert (len(copied), _row_groups_holding(copied, cusip)) == (1, 1)
    assert len(list((tables / ROLLUP_TABLE / layout.compact_partition).glob("*.parquet"))) == 1


def test_runs_published_after_compaction_are_read_from_their_own_files(store):
    compact_colors(store, force=True, now=NOW)
    record = publish(store, "2026-03-13")
    layout = read_layout(store)
    assert (layout.covered, layout.uncovered) == ((1, 2, 3), (record.run_id,))
    rows = search_rows(store, SYSTEM, SearchQuery())
    assert sorted(rows["RUN_ID"].unique().tolist()) == [1, 2, 3, 4]
    assert len(rows) == sum(r.counts["published"] for r in runs.load_runs(store))


def test_a_removed_run_disappears_at_once_and_from_the_copy_at_the_next_compaction(store):
    compact_colors(store, force=True, now=NOW)
    record = runs.get_run(store, 2)
    record.status = runs.REMOVED
    runs.save_run(store, record)
    runs.bump_data_version(store)
    assert read_layout(store).stale == (2,)
    assert sorted(search_rows(store, SYSTEM, SearchQuery())["RUN_ID"].unique()) == [1, 3]
    plan = plan_compaction(store)
    assert (plan.needed, plan.reason) == (True, "1 removed run(s) are still in the copy")
    assert compact_colors(store, now=NOW).runs == 2
    assert read_layout(store).stale == ()
    assert sorted(search_rows(store, SYSTEM, SearchQuery())["RUN_ID"].unique()) == [1, 3]


def test_the_plan_compacts_only_when_the_layout_needs_it(store, monkeypatch):
    plan = plan_compaction(store)
    assert not plan.needed
    assert plan.reason.startswith("3 run(s), ")
    assert not compact_colors(store, now=NOW).done
    monkeypatch.setattr(compaction, "MIN_UNCOVERED_RUNS", 3)
    assert plan_compaction(store).needed
    assert compact_colors(store, now=NOW).done
    assert not plan_compaction(store).needed


def test_an_empty_store_has_nothing_to_compact(memory_store):
    assert plan_compaction(memory_store).reason == "no published runs"
    assert not compact_colors(memory_store, force=True).done


def test_older_copies_are_deleted_but_the_previous_one_stays_for_readers(store):
    names = [compact_colors(store, force=True, now=NOW).partition for _ in range(3)]
    assert sorted(store.partitions(COMPACT_TABLE)) == sorted(f"{n}-s000" for n in names[1:])
    assert sorted(store.partitions(ROLLUP_TABLE)) == sorted(names[1:])
    assert read_layout(store).compact_partition == names[2]


def test_a_compaction_that_loses_the_race_leaves_no_copy_behind(store, monkeypatch):
    first = compact_colors(store, force=True, now=NOW).partition
    real = compaction.load_manifest
    monkeypatch.setattr(compaction, "load_manifest", lambda s: (real(s)[0], "stale-version"))
    with pytest.raises(WriteConflict):
        compact_colors(store, force=True, now=NOW)
    monkeypatch.setattr(compaction, "load_manifest", real)
    assert store.partitions(COMPACT_TABLE) == [f"{first}-s000"]
    assert store.partitions(ROLLUP_TABLE) == [first]
    assert read_layout(store).compact_partition == first


def test_a_big_copy_is_cut_into_cusip_range_shards_with_the_same_answers(store, monkeypatch):
    before = answers(store)
    total = len(before["rows"])
    monkeypatch.setattr(compaction, "SHARD_ROWS", 100)
    report = compact_colors(store, force=True, now=NOW)
    shards = read_layout(store).shards
    assert (report.files, len(shards)) == (-(-total // 100), -(-total // 100))
    assert [s.partition for s in shards] == [f"{report.partition}-s{k:03d}"
                                            for k in range(len(shards))]
    assert sorted(store.partitions(COMPACT_TABLE)) == [s.partition for s in shards]  # no leftovers
    assert (shards[0].low, shards[-1].high) == (None, None)
    assert all(a.high == b.low for a, b in itertools.pairwise(shards))
    for shard in shards:  # each shard holds exactly the CUSIPs of its range
        cusips = store.scan(COMPACT_TABLE, [shard.partition], ["CUSIP"])["CUSIP"]
        assert cusips.map(shard.holds).all()
        assert cusips.is_monotonic_increasing
    after = answers(store)
    assert after.pop("kpis") == before.pop("kpis")
    for name, frame in before.items():
        assert_frame_equal(after[name], frame, check_dtype=False, obj=name)


def test_a_lookup_opens_only_the_shard_holding_its_cusip(store, monkeypatch):
    monkeypatch.setattr(compaction, "SHARD_ROWS", 100)
    compact_colors(store, force=True, now=NOW)
    opened = spy_on_register(store, monkeypatch)
    cusip = store.scan(COMPACT_TABLE, [read_layout(store).shards[-1].partition])["CUSIP"].iloc[0]
    result = search_colors(store, SYSTEM, SearchQuery(text=cusip))
    assert opened == [(COMPACT_TABLE, [read_layout(store).shards[-1].partition])]
    assert set(result.frame["CUSIP"]) == {cusip}
    assert result.total_rows == len(security_history(store, SYSTEM, cusip))


def test_runs_published_after_a_copy_go_into_its_delta_with_the_same_answers(store):
    first = compact_colors(store, force=True, now=NOW)
    record = publish(store, "2026-03-13")
    before = answers(store)
    plan = plan_compaction(store)
    assert (plan.needed, plan.mode) == (True, DELTA)
    report = compact_colors(store, now=NOW)
    layout = read_layout(store)
    assert (report.mode, report.runs, report.partition) == (DELTA, 1, f"{first.partition}-d0001")
    assert (layout.uncovered, layout.delta, layout.covered) == (
        (), report.partition, (1, 2, 3, record.run_id))
    assert report.rows == record.counts["published"]
    after = answers(store)
    assert after.pop("kpis") == before.pop("kpis")
    for name, frame in before.items():
        assert_frame_equal(after[name], frame, check_dtype=False, obj=name)
    assert not plan_compaction(store).needed

    second = publish(store, "2026-03-14")  # the delta is rewritten with both runs
    report = compact_colors(store, now=NOW)
    assert (report.partition, report.runs) == (f"{first.partition}-d0002", 2)
    assert read_layout(store).covered == (1, 2, 3, record.run_id, second.run_id)
    publish(store, "2026-03-15")
    compact_colors(store, now=NOW)  # the delta before the previous one is deleted
    assert sorted(store.partitions(ROLLUP_TABLE)) == [
        first.partition, f"{first.partition}-d0002", f"{first.partition}-d0003"]


def test_a_delta_beyond_its_share_of_the_copy_makes_a_new_copy(store, monkeypatch):
    compact_colors(store, force=True, now=NOW)
    monkeypatch.setattr(compaction, "DELTA_MIN_ROWS", 1)
    publish(store, "2026-03-13")
    plan = plan_compaction(store)
    assert (plan.needed, plan.mode) == (True, FULL)
    assert "a new copy" in plan.reason
    report = compact_colors(store, now=NOW)
    assert (report.mode, report.runs) == (FULL, 4)
    assert read_layout(store).delta is None


def test_a_removed_run_of_the_delta_is_hidden_at_once_and_dropped_by_a_new_copy(store):
    compact_colors(store, force=True, now=NOW)
    record = publish(store, "2026-03-13")
    compact_colors(store, now=NOW)
    record.status = runs.REMOVED
    runs.save_run(store, record)
    runs.bump_data_version(store)
    assert record.run_id not in search_rows(store, SYSTEM, SearchQuery())["RUN_ID"].tolist()
    plan = plan_compaction(store)
    assert (plan.needed, plan.mode) == (True, FULL)
    compact_colors(store, now=NOW)
    assert (read_layout(store).delta, read_layout(store).stale) == (None, ())


def test_a_lookup_reads_its_shard_and_the_delta_in_one_view(store, monkeypatch):
    monkeypatch.setattr(compaction, "SHARD_ROWS", 100)
    compact_colors(store, force=True, now=NOW)
    publish(store, "2026-03-13")
    compact_colors(store, now=NOW)
    layout = read_layout(store)
    opened = spy_on_register(store, monkeypatch)
    cusip = store.scan(COMPACT_TABLE, [layout.delta])["CUSIP"].iloc[0]
    holder = next(s.partition for s in layout.shards if s.holds(cusip))
    result = search_colors(store, SYSTEM, SearchQuery(text=cusip))
    assert opened == [(COMPACT_TABLE, [holder, layout.delta])]
    assert sorted(result.frame["RUN_ID"].unique().tolist()) == sorted(
        security_history(store, SYSTEM, cusip)["RUN_ID"].unique().tolist())
    assert 4 in result.frame["RUN_ID"].tolist()


def test_a_copy_written_before_shards_reads_as_one_shard():
    assert manifest_shards({"partition": "gen=000001-ab"}) == (Shard("gen=000001-ab"),)
    assert manifest_shards(None) == ()


def _cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli_search.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_the_cli_compacts_and_searches(store, tmp_path, capsys):
    assert cli_search.run(_cli(["compact", "--dry-run"]), store, SETTINGS) == 0
    assert "Not needed: 3 run(s)" in capsys.readouterr().out
    assert cli_search.run(_cli(["compact", "--force"]), store, SETTINGS) == 0
    assert "Compacted 3 run(s)" in capsys.readouterr().out
    cusip = search_colors(store, SYSTEM, SearchQuery()).frame["CUSIP"].iloc[0]
    ids = tmp_path / "ids.csv"
    ids.write_text(f"CUSIP\n{cusip}\n1.7734E+16\n")
    out = tmp_path / "result.csv"
    assert cli_search.run(_cli(["search", "--bulk", str(ids), "--out", str(out)]), store,
                          SETTINGS) == 0
    printed = capsys.readouterr().out
    assert "Bulk: 1 matched, 0 unmatched, 1 mangled" in printed
    expected = search_rows(store, SYSTEM, SearchQuery(text=cusip))
    assert f"Wrote {len(expected)} rows to {out}" in printed
    assert len(out.read_text(encoding="utf-8-sig").splitlines()) == len(expected) + 1
    from core.compliance.access_log import load_access_log

    assert load_access_log(store)["ACTION"].tolist() == ["export", "search"]
