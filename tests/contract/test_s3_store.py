"""What only the S3 store promises, on moto's server (tests/conftest.py): its layout as objects,
versions that are conditional writes across processes and hosts, a per-host read copy that the
store's listing overrules, vendor errors stopped at the adapter, and its URL and options."""

from __future__ import annotations

import json
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from storage import InvalidKey, StoreUnavailable, WriteConflict, open_store
from storage.run_tables import COLORS, run_tables
from storage.s3_client import parse_url
from tests.conftest import S3_TEST_CREDENTIALS
from tests.contract.test_store_contract import JAN, by_id, increment_many, race_once, run_two


def _objects(endpoint: str, bucket: str) -> dict[str, bytes]:
    client = boto3.session.Session().client("s3", endpoint_url=endpoint,
                                            **_boto_credentials())
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            for o in listed}


def _boto_credentials() -> dict[str, str]:
    return {"aws_access_key_id": "test", "aws_secret_access_key": "test",
            "region_name": "us-east-1"}


def _colors(run_id: int, cusips: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"RUN_ID": pd.array([run_id] * len(cusips), dtype="Int64"),
                         "MESSAGE_ID": pd.array([f"{run_id}-{c}" for c in cusips], "string"),
                         "CUSIP": pd.array(cusips, dtype="string")})


def test_s3_layout_is_the_local_one_as_objects(moto_server: str, s3_bucket: str, s3_options):
    store = open_store(f"s3://{s3_bucket}/desk/one", s3_options)
    version = store.put("jobs/nightly", {"cron": "0 6 * * *"}, None)
    store.append("colors", JAN, "2026-01")
    store.put_blob("uploads/a.csv", b"x,y\n")
    objects = _objects(moto_server, s3_bucket)
    [part] = [k for k in objects if k.startswith("desk/one/tables/")]
    assert re.fullmatch(r"desk/one/tables/colors/2026-01/part-\d{20}-[0-9a-f]{32}\.parquet", part)
    assert sorted(objects) == ["desk/one/blobs/uploads/a.csv", "desk/one/docs/jobs/nightly.json",
                               part]
    assert objects["desk/one/blobs/uploads/a.csv"] == b"x,y\n"
    envelope = json.loads(objects["desk/one/docs/jobs/nightly.json"])
    assert envelope["value"] == {"cron": "0 6 * * *"}
    assert re.fullmatch(r"[0-9a-f]{32}", envelope["write"])
    assert re.fullmatch(r"[0-9a-f]{32}", version)  # the ETag, without its quotes
    assert store.url == f"s3://{s3_bucket}/desk/one/"


def test_the_same_value_written_again_gets_a_new_version(s3_store: Any):
    v1 = s3_store.put("heartbeat", {"beat": 1}, None)
    v2 = s3_store.put("heartbeat", {"beat": 1}, v1)
    assert v1 != v2
    with pytest.raises(WriteConflict):  # so a writer holding v1 cannot write over v2 (ABA)
        s3_store.put("heartbeat", {"beat": 2}, v1)


def test_two_hosts_share_documents_and_runs_through_the_store_alone(
        s3_bucket: str, s3_options: dict[str, str], tmp_path: Path):
    url = f"s3://{s3_bucket}/desk"
    a = open_store(url, {**s3_options, "s3.cache_dir": str(tmp_path / "host-a")})
    b = open_store(url, {**s3_options, "s3.cache_dir": str(tmp_path / "host-b")})
    version = a.put("rules/r1", {"n": 1}, None)
    assert b.get("rules/r1") == ({"n": 1}, version)
    b.put("rules/r1", {"n": 2}, version)
    with pytest.raises(WriteConflict):
        a.put("rules/r1", {"n": 3}, version)

    run_tables(a).append_run(1, {COLORS: _colors(1, ["B", "A"])})
    run_tables(a).append_run(2, {COLORS: _colors(2, ["C"])})
    con = duckdb.connect()
    src = run_tables(b).open(con, COLORS, [1, 2], cusips=["A", "C"])
    assert con.execute(f"SELECT MESSAGE_ID FROM {src} ORDER BY 1").fetchall() == [
        ("1-A",), ("2-C",)]
    copies = tmp_path / "host-b"
    assert len(list(copies.rglob("*.parquet"))) == 2  # b read them through its own copies

    run_tables(a).remove_run(2)  # a removes a run: b's listing no longer names it
    assert run_tables(b).runs(COLORS) == [1]
    assert run_tables(b).read(COLORS, [1, 2])["MESSAGE_ID"].tolist() == ["1-A", "1-B"]
    assert len(list(copies.rglob("*.parquet"))) == 1  # and b dropped its copy
    shutil.rmtree(copies)  # the copy is rebuildable: deleting it loses nothing
    assert run_tables(b).read(COLORS, [1])["MESSAGE_ID"].tolist() == ["1-A", "1-B"]


def test_reading_what_was_just_listed_gets_only_the_documents_that_changed(
        s3_bucket: str, s3_options: dict[str, str], tmp_path: Path):
    """A listing's versions tell which held documents are current: a dashboard that lists and
    reads 100 run records GETs only those written since it last read them, and sees another
    host's writes and deletions at once."""
    from storage import get_many

    url = f"s3://{s3_bucket}/desk"
    a = open_store(url, {**s3_options, "s3.cache_dir": str(tmp_path / "host-a")})
    b = open_store(url, {**s3_options, "s3.cache_dir": str(tmp_path / "host-b")})
    for n in range(5):
        b.put(f"runs/{n}", {"n": n}, None)
    gets: list[str] = []
    a._client.meta.events.register(  # type: ignore[attr-defined]  # an S3Store
        "before-call.s3.GetObject", lambda params, **_: gets.append(params["url_path"]))

    def read() -> dict[str, Any]:
        return {k: v for k, (v, _) in get_many(a, a.list("runs/")).items()}

    assert read() == {f"runs/{n}": {"n": n} for n in range(5)}
    assert len(gets) == 5
    version = b.get("runs/1")[1]
    b.put("runs/1", {"n": 10}, version)
    b.delete("runs/2")
    assert read() == {"runs/0": {"n": 0}, "runs/1": {"n": 10}, "runs/3": {"n": 3},
                      "runs/4": {"n": 4}}
    assert [g.rsplit("/", 1)[1] for g in gets[5:]] == ["1.json"]  # the changed one only
    assert a.get("runs/1") == ({"n": 10}, b.get("runs/1")[1])


def test_a_read_that_loses_a_part_to_a_compaction_lists_again(
        s3_bucket: str, s3_options: dict[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch):
    url = f"s3://{s3_bucket}/desk"
    a = open_store(url, {**s3_options, "s3.cache_dir": str(tmp_path / "host-a")})
    b = open_store(url, {**s3_options, "s3.cache_dir": str(tmp_path / "host-b")})
    for n in range(3):
        a.append("log", pd.DataFrame({"N": [n]}), "2026-03")
    fetch = b._cache._fetch
    raced: list[int] = []
    once = threading.Lock()

    def compacted_meanwhile(key: str, out: Any) -> None:
        with once:  # b listed the three parts; a merges them before b fetches any
            if not raced:
                raced.append(a.compact("log"))
        fetch(key, out)

    monkeypatch.setattr(b._cache, "_fetch", compacted_meanwhile)
    assert sorted(b.scan("log")["N"].tolist()) == [0, 1, 2]
    assert raced == [3]


def test_settled_partitions_are_listed_once_with_their_table_and_others_every_time(
        s3_store: Any):
    """A compacted copy's partitions are written once under names never used again: the first
    read of one lists the whole table, later reads of any of its partitions list nothing. Other
    reads list each time; a partition gone is listed again."""
    for shard in ("gen=1-s000", "gen=1-s001"):
        s3_store.append("copy", pd.DataFrame({"S": [shard]}), shard)
    lists: list[str] = []
    s3_store._client.meta.events.register(
        "before-call.s3.ListObjectsV2", lambda **_: lists.append("list"))
    con = duckdb.connect()

    def read(partition: str, *, settled: bool = True) -> list[Any]:
        if not s3_store.register(con, "copy", [partition], view="v", settled=settled):
            return []
        return [r[0] for r in con.execute("SELECT S FROM v").fetchall()]

    assert (read("gen=1-s000"), len(lists)) == (["gen=1-s000"], 1)
    assert (read("gen=1-s001"), read("gen=1-s000"), len(lists)) == (
        ["gen=1-s001"], ["gen=1-s000"], 1)
    assert (read("gen=1-s001", settled=False), len(lists)) == (["gen=1-s001"], 2)
    s3_store.delete_partition("copy", "gen=1-s001")
    lists.clear()
    assert (read("gen=1-s001"), len(lists)) == ([], 1)


def test_two_processes_writing_one_version_exactly_one_wins(
        moto_server: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}.items():
        monkeypatch.setenv(name, value)  # the standard chain, as on a host with a role
    url = f"s3://{s3_bucket}/desk?endpoint_url={moto_server}&region=us-east-1"
    store = open_store(url)
    store.put("counter", 41, None)
    assert sorted(run_two(race_once, url)) == ["conflict", "won"]
    assert store.get("counter")[0] == 42
    store.put("counter", 0, "*")
    run_two(increment_many, url, 20)
    assert store.get("counter")[0] == 40


def test_an_unreachable_endpoint_is_unavailable_and_names_no_secret(
        s3_bucket: str, monkeypatch: pytest.MonkeyPatch):
    import socket

    import storage.s3_client

    monkeypatch.setattr(storage.s3_client, "RETRY_ATTEMPTS", 1)  # no backoff: refused is refused
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = open_store(f"s3://{s3_bucket}/desk", {
        "s3.endpoint_url": f"http://127.0.0.1:{port}", "s3.region": "us-east-1",
        "s3.access_key_id": "AKIDSECRETISH", "s3.secret_access_key": "very-secret-key"})
    for attempt in (lambda: store.get("k"), lambda: store.put("k", 1, None),
                    lambda: store.partitions("colors")):
        with pytest.raises(StoreUnavailable, match=f"s3://{s3_bucket}/desk/") as raised:
            attempt()
        assert "very-secret-key" not in str(raised.value)


def test_a_missing_bucket_is_unavailable_by_name(s3_options: dict[str, str]):
    store = open_store("s3://no-such-bucket-here/desk", s3_options)
    with pytest.raises(StoreUnavailable, match=r"s3://no-such-bucket-here/desk/: NoSuchBucket"):
        store.list()
    with pytest.raises(StoreUnavailable, match="NoSuchBucket"):
        store.append("colors", JAN, "2026-01")


def test_the_url_names_bucket_prefix_and_endpoint_but_never_credentials():
    options = {**S3_TEST_CREDENTIALS, "s3.endpoint_url": "http://from-settings:9000",
               "smtp.password": "not ours"}
    where = parse_url("s3://desk-colors/a/b?endpoint_url=http://127.0.0.1:9000", options)
    assert (where.bucket, where.prefix, where.url) == ("desk-colors", "a/b/",
                                                       "s3://desk-colors/a/b/")
    assert where.options["endpoint_url"] == "http://127.0.0.1:9000"  # the URL wins
    assert parse_url("s3://desk-colors", {}).prefix == ""
    for bad in ["s3://desk-colors/p?aws_secret_access_key=x", "s3://desk-colors/p?color=red",
                "s3://UPPER/p", "s3://ab/p", "s3://desk-colors/a/../b", "s3://desk-colors/a~b"]:
        with pytest.raises(InvalidKey):
            parse_url(bad, {})


def test_s3_rows_and_dtypes_read_the_same_through_duckdb_and_scan(s3_store: Any):
    s3_store.append("colors", JAN, "2026-01")
    con = duckdb.connect()
    assert s3_store.register(con, "colors", ["2026-01"])
    via_duckdb = con.execute("SELECT * FROM colors").df()
    assert_frame_equal(by_id(via_duckdb.astype(s3_store.scan("colors").dtypes.to_dict())),
                       by_id(s3_store.scan("colors")))


def test_a_fresh_process_reads_unchanged_run_records_from_the_nodes_copies(
        s3_bucket: str, s3_options: dict[str, str], tmp_path: Path):
    """What one get_many read, a later S3Store on the same cache folder (a fresh process of the
    node) answers from disk at the version its listing shows: it GETs only what changed since,
    and a copy damaged by hand is read again from the store."""
    from storage import get_many

    url = f"s3://{s3_bucket}/desk"
    options = {**s3_options, "s3.cache_dir": str(tmp_path / "node")}
    writer = open_store(url, {**s3_options, "s3.cache_dir": str(tmp_path / "writer")})
    for n in range(4):
        writer.put(f"runs/{n}", {"n": n}, None)

    def read_fresh() -> tuple[dict[str, Any], list[str]]:
        store = open_store(url, options)
        gets: list[str] = []
        store._client.meta.events.register(  # type: ignore[attr-defined]  # an S3Store
            "before-call.s3.GetObject", lambda params, **_: gets.append(params["url_path"]))
        found = {k: v for k, (v, _) in get_many(store, store.list("runs/")).items()}
        return found, sorted(g.rsplit("/", 1)[1] for g in gets)

    assert read_fresh() == ({f"runs/{n}": {"n": n} for n in range(4)},
                            ["0.json", "1.json", "2.json", "3.json"])
    assert read_fresh() == ({f"runs/{n}": {"n": n} for n in range(4)}, [])
    writer.put("runs/2", {"n": 20}, writer.get("runs/2")[1])
    writer.delete("runs/3")
    (copy,) = (tmp_path / "node").rglob("docs/runs/0.json")
    copy.write_bytes(copy.read_bytes().split(b"\n")[0] + b"\n{junk")  # its version, a bad body
    assert read_fresh() == ({"runs/0": {"n": 0}, "runs/1": {"n": 1}, "runs/2": {"n": 20}},
                            ["0.json", "2.json"])
    assert read_fresh()[1] == []

