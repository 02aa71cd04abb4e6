"""`mining-platform import`: files into a source, idempotent, all or nothing, bad rows named by line."""

import datetime as dt
import json
import re

import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet as pq
import pytest

from mining_platform.sources.importer import ImportFailed, import_file
from mining_platform.spec.project import load_project
from tests.conftest import REPO

UTC = dt.timezone.utc


@pytest.fixture
def project(churn_project):
    """The churn project with a second source, `orders`, keyed by `ordered_at` (demo sources refuse imports)."""
    orders = churn_project.sources["user_events"].model_copy(update={"collection": "orders", "timestamp": "ordered_at",
                                                                          "demo_of": None})
    return churn_project.model_copy(update={"sources": {**churn_project.sources, "orders": orders}})


def documents(mongo):
    return sorted(mongo.db()["orders"].find({}, {"_id": 0}), key=lambda d: (d["ordered_at"], str(d["user_id"])))


def test_a_csv_twice_leaves_the_same_documents_with_dates_at_utc_midnight(mongo, project, tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("user_id,ordered_at,amount\n7,2024-01-05,10.5\n7,2024-01-05,10.5\n8,2024-01-06T13:30:00+01:00,3\n")
    first = import_file(mongo.db(), project, "orders", path)
    assert (first.rows, first.inserted, first.already_there) == (3, 3, 0)
    assert (first.first_day, first.last_day) == (dt.date(2024, 1, 5), dt.date(2024, 1, 6))
    stored = documents(mongo)
    assert stored == [
        {"user_id": 7, "ordered_at": dt.datetime(2024, 1, 5, tzinfo=UTC), "amount": 10.5},
        {"user_id": 7, "ordered_at": dt.datetime(2024, 1, 5, tzinfo=UTC), "amount": 10.5},  # a real repeat stays
        {"user_id": 8, "ordered_at": dt.datetime(2024, 1, 6, 12, 30, tzinfo=UTC), "amount": 3},
    ]
    again = import_file(mongo.db(), project, "orders", path)
    assert (again.inserted, again.already_there) == (0, 3)
    assert documents(mongo) == stored
    # An export that grew adds only its new row.
    path.write_text(path.read_text() + "9,2024-01-07 08:00,1\n")
    grown = import_file(mongo.db(), project, "orders", path)
    assert (grown.inserted, grown.already_there) == (1, 3)
    assert {"ordered_at_1", "user_id_1_ordered_at_1"} <= set(mongo.db()["orders"].index_information())


def test_bad_rows_are_listed_by_line_and_nothing_is_written(mongo, project, tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("user_id,ordered_at\nu1,2024-01-05\n,2024-01-05\nu3,yesterday\nu4,\n")
    with pytest.raises(ImportFailed) as error:
        import_file(mongo.db(), project, "orders", path)
    message = str(error.value)
    assert "3 of 4 rows cannot be imported, nothing was written" in message
    assert "line 3: no user_id" in message and "line 4: ordered_at 'yesterday' is not a ISO 8601" in message
    assert "line 5: no ordered_at" in message
    assert mongo.db()["orders"].count_documents({}) == 0


def test_a_timestamp_format_parses_text_and_numbers_need_one(mongo, project, tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("user_id,ordered_at\n1,1700000000\n2,1700086400\n")
    with pytest.raises(ImportFailed, match="line 2: ordered_at '1700000000' is not a ISO 8601 date or time "
                                           "\\(a number: pass --timestamp-format, e.g. %s"):
        import_file(mongo.db(), project, "orders", path)
    import_file(mongo.db(), project, "orders", path, timestamp_format="%s")
    assert [d["ordered_at"] for d in documents(mongo)] == [dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
                                                          dt.datetime(2023, 11, 15, 22, 13, 20, tzinfo=UTC)]
    mongo.db()["orders"].drop()
    path.write_text("user_id,ordered_at\n1,19970101\n2,19970102T0930\n")  # ISO 8601's basic format
    import_file(mongo.db(), project, "orders", path)
    assert [d["ordered_at"] for d in documents(mongo)] == [dt.datetime(1997, 1, 1, tzinfo=UTC),
                                                          dt.datetime(1997, 1, 2, 9, 30, tzinfo=UTC)]
    mongo.db()["orders"].drop()
    path.write_text("user_id,ordered_at\n1,19970101\n2,19970102\n")
    import_file(mongo.db(), project, "orders", path, timestamp_format="%Y%m%d")
    assert [d["ordered_at"] for d in documents(mongo)] == [dt.datetime(1997, 1, 1, tzinfo=UTC),
                                                          dt.datetime(1997, 1, 2, tzinfo=UTC)]
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,ordered_at\n1,1997-01-01\n")
    with pytest.raises(ImportFailed, match="line 2: ordered_at '1997-01-01' is not a time in format '%Y%m%d'"):
        import_file(mongo.db(), project, "orders", bad, timestamp_format="%Y%m%d")


def test_parquet_and_json_lines(mongo, project, tmp_path):
    parquet = tmp_path / "orders.parquet"
    pq.write_table(pa.table({"user_id": ["a", "b"], "ordered_at": pa.array(
        [dt.datetime(2024, 2, 1, 9), dt.datetime(2024, 2, 2, 10)], pa.timestamp("us")), "n": [1, 2]}), parquet)
    lines = tmp_path / "orders.jsonl"
    lines.write_text("\n".join(json.dumps(row) for row in (
        {"user_id": "c", "ordered_at": "2024-02-03T11:00:00Z", "payload": {"sku": "x"}},
        {"user_id": "d", "ordered_at": "2024-02-04", "payload": {"sku": "y"}})) + "\n")
    assert import_file(mongo.db(), project, "orders", parquet).inserted == 2
    assert import_file(mongo.db(), project, "orders", lines).inserted == 2
    stored = documents(mongo)
    assert [d["ordered_at"] for d in stored] == [dt.datetime(2024, 2, d, h, tzinfo=UTC) for d, h in
                                                ((1, 9), (2, 10), (3, 11), (4, 0))]
    assert stored[2]["payload"] == {"sku": "x"}


@pytest.mark.parametrize(("content", "problem"), [
    ("user_id,when\n1,2024-01-01\n", "no column 'ordered_at' (sources.orders.timestamp)"),
    ("user_id,ordered_at,$where\n1,2024-01-01,x\n", "column '$where': a MongoDB field name cannot start with $"),
    ("_id,user_id,ordered_at\n1,1,2024-01-01\n", "column '_id': import derives each row's _id"),
    ("user_id,ordered_at\n", "no rows"),
])
def test_files_that_cannot_map_to_events_are_refused(mongo, project, tmp_path, content, problem):
    path = tmp_path / "orders.csv"
    path.write_text(content)
    with pytest.raises(ImportFailed, match=re.escape(problem)):
        import_file(mongo.db(), project, "orders", path)
    assert mongo.db()["orders"].count_documents({}) == 0


def test_the_demo_source_and_unknown_sources_are_refused(mongo, project, tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user_id,timestamp\n1,2024-01-01\n")
    with pytest.raises(ImportFailed, match="is the demo generator's"):
        import_file(mongo.db(), project, "user_events", path)
    with pytest.raises(ImportFailed, match="has no source 'clicks'"):
        import_file(mongo.db(), project, "clicks", path)
    with pytest.raises(ImportFailed, match="unknown file type '.xlsx'"):
        import_file(mongo.db(), project, "orders", tmp_path / "orders.xlsx")


@pytest.fixture
def small_blocks(monkeypatch):
    """Read files in blocks of a few rows, with types inferred from their first 64 bytes."""
    from mining_platform.sources import import_file as reading
    from mining_platform.sources import import_rows

    monkeypatch.setattr(reading, "BLOCK_BYTES", 64)
    monkeypatch.setattr(reading, "SAMPLE_BYTES", 64)
    monkeypatch.setattr(reading, "PARQUET_ROWS", 3)
    monkeypatch.setattr(import_rows, "PROGRESS_SECONDS", 0.0)


def test_a_file_streamed_in_blocks_keeps_repeats_across_blocks_and_types_that_change_later(
        mongo, project, tmp_path, small_blocks):
    # `note` is empty in the first rows, `amount` turns from integers to decimals after them.
    lines = ["user_id,ordered_at,amount,note"] + [f"u{i % 3},2024-03-0{1 + i % 5},{i},"for i in range(12)]
    lines += ["u1,2024-03-01,0,"] * 3 + ["u9,2024-03-09,2.5,late"]
    path = tmp_path / "orders.csv"
    path.write_text("\n".join(lines) + "\n")
    said = []
    report = import_file(mongo.db(), project, "orders", path, progress=said.append)
    assert (report.rows, report.inserted, report.already_there) == (16, 16, 0)
    assert any("did not fit later rows" in note for note in report.notes)
    assert any("checked" in line for line in said) and any("wrote 16 of 16 rows" in line for line in said)
    stored = documents(mongo)
    assert sum(1 for d in stored if d["user_id"] == "u1" and d["amount"] == 0) == 3
    assert stored[-1] == {"user_id": "u9", "ordered_at": dt.datetime(2024, 3, 9, tzinfo=UTC), "amount": 2.5,
                          "note": "late"}
    assert list(mongo.db()["orders"].find_one({"user_id": "u9"})) == ["_id", "user_id", "ordered_at", "amount",
                                                                       "note"]
    again = import_file(mongo.db(), project, "orders", path)
    assert (again.inserted, again.already_there) == (0, 16)
    # The same rows with the columns in another order are the same rows.
    table = pa.csv.read_csv(path, convert_options=pa.csv.ConvertOptions(strings_can_be_null=True))
    pq.write_table(table.select(["note", "amount", "ordered_at", "user_id"]), tmp_path / "orders.parquet")
    shuffled = import_file(mongo.db(), project, "orders", tmp_path / "orders.parquet")
    assert (shuffled.inserted, shuffled.already_there) == (0, 16)
    assert mongo.db()["orders"].count_documents({}) == 16


def test_values_mongodb_cannot_hold_are_refused_before_anything_is_written(mongo, project, tmp_path, small_blocks):
    import decimal

    good = {"user_id": ["a", "b", "c", "d"], "ordered_at": pa.array([dt.date(2024, 1, d) for d in range(1, 5)])}
    cases = [
        ({"big": pa.array([1, 2, 3, 2**64 - 1], pa.uint64())}, "row 4: big 18446744073709551615 is above 2^63-1"),
        ({"price": pa.array([decimal.Decimal("1.5")] * 4)}, "column 'price' is decimal128(2, 1)"),
        ({"took": pa.array([dt.timedelta(seconds=1)] * 4)}, "column 'took' is duration[us]"),
        ({"bad\x00name": [1, 2, 3, 4]}, "a MongoDB field name cannot start with $ or contain a dot or a NUL"),
        ({"when": pa.array([dt.datetime(2024, 1, 1)] * 3 + [None], pa.timestamp("s")).fill_null(
            pa.scalar(253402300800 + 86400, pa.timestamp("s")))}, "row 4: when is outside years 1-9999"),
    ]
    for extra, problem in cases:
        path = tmp_path / "orders.parquet"
        pq.write_table(pa.table({**good, **extra}), path)
        with pytest.raises(ImportFailed, match=re.escape(problem)):
            import_file(mongo.db(), project, "orders", path)
        assert mongo.db()["orders"].count_documents({}) == 0


def test_dates_categories_binary_and_nested_values_are_stored_as_mongodb_types(mongo, project, tmp_path, small_blocks):
    path = tmp_path / "orders.parquet"
    pq.write_table(pa.table({
        "user_id": pa.array([1, 2, 3, 4, 5], pa.int16()),
        "ordered_at": pa.array([dt.datetime(2024, 1, 1, 9, 30, 15, 123456)] * 5, pa.timestamp("us", tz="Europe/Paris")),
        "shipped": pa.array([dt.date(2024, 1, 3), None, dt.date(1969, 12, 31), None, None]),
        "tier": pa.array(["gold", "gold", None, "silver", "gold"]).dictionary_encode(),
        "blob": [b"\x00\xff", None, b"", None, None],
        "items": [[{"sku": "x", "n": 1}], None, [], None, None],
        "flag": [True, False, None, True, True],
    }), path)
    import_file(mongo.db(), project, "orders", path)
    stored = {d["user_id"]: d for d in mongo.db()["orders"].find({}, {"_id": 0})}
    assert stored[1] == {"user_id": 1, "ordered_at": dt.datetime(2024, 1, 1, 9, 30, 15, 123000, tzinfo=UTC),
                         "shipped": dt.datetime(2024, 1, 3, tzinfo=UTC), "tier": "gold", "blob": b"\x00\xff",
                         "items": [{"sku": "x", "n": 1}], "flag": True}
    assert stored[2] == {"user_id": 2, "ordered_at": stored[1]["ordered_at"], "tier": "gold", "flag": False}
    assert stored[3]["shipped"] == dt.datetime(1969, 12, 31, tzinfo=UTC) and stored[3]["items"] == []


def test_a_collection_filled_by_the_earlier_importer_is_not_imported_into_twice(mongo, project, tmp_path):
    mongo.db()["orders"].insert_one({"_id": "0123456789abcdef01234567", "user_id": 1,
                                     "ordered_at": dt.datetime(2024, 1, 1, tzinfo=UTC)})
    path = tmp_path / "orders.csv"
    path.write_text("user_id,ordered_at\n1,2024-01-01\n")
    with pytest.raises(ImportFailed, match="filled by an earlier version of import"):
        import_file(mongo.db(), project, "orders", path)
    assert mongo.db()["orders"].count_documents({}) == 1


def test_a_csv_time_of_day_column_is_kept_as_text(mongo, project, tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("user_id,ordered_at,slot\n1,2024-01-01,10:30:00\n2,2024-01-02,23:59:59\n")
    import_file(mongo.db(), project, "orders", path)
    assert [d["slot"] for d in documents(mongo)] == ["10:30:00", "23:59:59"]


def test_a_failure_during_the_write_leaves_the_collection_as_it_was(mongo, project, tmp_path, small_blocks,
                                                                     monkeypatch):
    from pymongo.errors import AutoReconnect

    from mining_platform.sources import import_write as writing

    path = tmp_path / "orders.csv"
    path.write_text("user_id,ordered_at,amount\n" + "".join(f"u{i},2024-01-0{1 + i % 5},{i}\n" for i in range(30)))
    real, calls = writing.insert_batch, []

    def failing(events, docs, where):
        calls.append(len(docs))
        if len(calls) == 2:  # after the first batch was written
            raise AutoReconnect("connection reset by the test")
        return real(events, docs, where)

    monkeypatch.setattr(writing, "insert_batch", failing)
    with pytest.raises(ImportFailed, match="nothing of this file was kept, the collection is as it was"):
        import_file(mongo.db(), project, "orders", path)
    assert mongo.db()["orders"].count_documents({}) == 0
    assert not [n for n in mongo.db().list_collection_names() if n.startswith("mining_import_")]

    # Into a collection that holds events: the rows this import inserted are removed again.
    first = tmp_path / "first.csv"
    first.write_text("user_id,ordered_at,amount\nold,2024-01-01,1\nu0,2024-01-01,0\n")
    monkeypatch.setattr(writing, "insert_batch", real)
    import_file(mongo.db(), project, "orders", first)
    before = documents(mongo)
    calls.clear()
    monkeypatch.setattr(writing, "insert_batch", failing)
    with pytest.raises(ImportFailed, match="the collection is as it was"):
        import_file(mongo.db(), project, "orders", path)
    assert documents(mongo) == before  # u0's row, also in the file, is kept: it was there before


@pytest.mark.parametrize(("content", "problem"), [
    ("user_id,ordered_at,amount\n" + "".join(f"u{i},2024-01-01,{i}\n" for i in range(40)) + "u9,2024-01-01,abc\n",
     "column 'amount': the rows before hold int64 values, line 42 holds 'abc'"),
    ("user_id,ordered_at,amount\nu1,2024-01-01,1e400\n", "amount is beyond the range of a float64 (read as inf)"),
    ("user_id,ordered_at,amount\nu1,2024-01-01,12345678901234567890123456\n",
     "amount 1.2345678901234568e+25 is an integer past 2^53"),
    ("user_id,ordered_at\nu1,2024-01-01\nu2,9999-12-31\n", "line 3: ordered_at 9999-12-31T00:00:00+00:00 is outside"),
    ("user_id,ordered_at\nu1,1969-12-31\n", "line 2: ordered_at 1969-12-31T00:00:00+00:00 is outside [1970-01-01"),
    ("user_id,ordered_at\nu1,0001-01-01T00:30:00+01:00\n", "line 2: ordered_at '0001-01-01T00:30:00+01:00' is outside years 1-9999"),
], ids=["mixed types", "overflow", "precision", "far future", "before 1970", "before year 1 in UTC"])
def test_values_that_would_be_stored_other_than_written_are_refused_by_line(mongo, project, tmp_path, small_blocks,
                                                                            content, problem):
    path = tmp_path / "orders.csv"
    path.write_text(content)
    with pytest.raises(ImportFailed, match=re.escape(problem)):
        import_file(mongo.db(), project, "orders", path)
    assert mongo.db()["orders"].count_documents({}) == 0


def test_the_accepted_time_range_is_settable(mongo, project, tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("user_id,ordered_at\nu1,1950-06-01\n")
    report = import_file(mongo.db(), project, "orders", path, earliest=dt.datetime(1900, 1, 1, tzinfo=UTC))
    assert report.inserted == 1 and report.first_day == dt.date(1950, 6, 1)


def test_another_projects_demo_collection_is_never_imported_into(mongo, tmp_path, monkeypatch):
    """spend's `app_events` is churn's demo events (`demo_of: churn`): import refuses it, writing nothing."""
    monkeypatch.setenv("MINING_MONGO_DB", mongo.database)
    spend = load_project(REPO / "projects" / "spend")
    path = tmp_path / "events.csv"
    path.write_text("user_id,timestamp\nu1,2024-01-01\n")
    with pytest.raises(ImportFailed, match="is project 'churn'.s demo events .*_churn-demo.user_events"):
        import_file(mongo.db(), spend, "app_events", path)
    assert mongo.demo_db("churn")["user_events"].count_documents({}) == 0


def test_the_import_command_takes_a_project_name_not_a_path(tmp_path, capsys):
    from mining_platform.tools import cli

    path = tmp_path / "orders.csv"
    path.write_text("user_id,ordered_at\nu1,2024-01-01\n")
    assert cli.main(["import", str(path), "--project", "../../x", "--source", "orders"]) == 1
    assert "--project '../../x': a project name" in capsys.readouterr().err
    assert cli.main(["import", str(path), "--project", "churn", "--source", "orders", "--earliest", "soon"]) == 1
    assert "--earliest 'soon': a date" in capsys.readouterr().err


def test_a_corrected_export_replaces_the_days_it_covers(mongo, project, tmp_path):
    """v2 of an export with amounts changed and rows dropped: with --replace-days the covered days hold exactly
    the file's rows (no old version beside the new one, no dropped row left); days outside it are untouched, and
    so are the collection's own indexes."""
    first = tmp_path / "orders.csv"
    rows = [f"c{i},2024-05-0{1 + i % 3}T10:00:00Z,{i}.25" for i in range(30)]
    first.write_text("user_id,ordered_at,amount\n" + "\n".join(rows + ["z,2024-04-20,99.5"]) + "\n")
    import_file(mongo.db(), project, "orders", first)
    mongo.db()["orders"].create_index("amount", name="by_amount")
    corrected = [row if i % 3 else row.rsplit(",", 1)[0] + f",{i + 0.5}" for i, row in enumerate(rows) if i % 6 != 5]
    second = tmp_path / "orders_v2.csv"
    second.write_text("user_id,ordered_at,amount\n" + "\n".join(corrected) + "\n")
    report = import_file(mongo.db(), project, "orders", second, replace_days=True)
    assert (report.first_day, report.last_day) == (dt.date(2024, 5, 1), dt.date(2024, 5, 3))
    changed, dropped = 10, 5
    assert (report.rows, report.inserted, report.already_there, report.removed) == (
        25, changed, 25 - changed, changed + dropped)
    stored = documents(mongo)
    assert len(stored) == 26 and stored[0] == {"user_id": "z", "ordered_at": dt.datetime(2024, 4, 20, tzinfo=UTC),
                                               "amount": 99.5}
    may = sorted((d["user_id"], d["amount"]) for d in stored[1:])
    assert may == sorted((r.split(",")[0], float(r.rsplit(",", 1)[1])) for r in corrected)
    assert {"by_amount", "ordered_at_1", "user_id_1_ordered_at_1"} <= set(mongo.db()["orders"].index_information())
    assert not [n for n in mongo.db().list_collection_names() if n.startswith("mining_import_")]
    # Replacing again with the same file changes nothing.
    again = import_file(mongo.db(), project, "orders", second, replace_days=True)
    assert (again.inserted, again.already_there, again.removed) == (0, 25, 0)
    assert documents(mongo) == stored


def test_a_replace_that_fails_leaves_the_collection_as_it_was(mongo, project, tmp_path, monkeypatch):
    from mining_platform.sources import import_write as writing

    path = tmp_path / "orders.csv"
    path.write_text("user_id,ordered_at,amount\na,2024-05-01,1\nb,2024-05-02,2\n")
    import_file(mongo.db(), project, "orders", path)
    before = documents(mongo)
    path.write_text("user_id,ordered_at,amount\na,2024-05-01,5\n")
    real_insert = writing.insert_batch

    def failing(target, docs, where):
        real_insert(target, docs, where)
        raise ImportFailed("injected failure after the first batch")

    monkeypatch.setattr(writing, "insert_batch", failing)
    with pytest.raises(ImportFailed, match="injected"):
        import_file(mongo.db(), project, "orders", path, replace_days=True)
    assert documents(mongo) == before
    assert not [n for n in mongo.db().list_collection_names() if n.startswith("mining_import_")]


def test_bad_rows_can_be_dropped_and_each_is_reported(mongo, project, tmp_path):
    """A real export with rows lacking the entity: --drop-bad-rows imports the rest and lists every dropped line."""
    path = tmp_path / "orders.csv"
    lines = [f"u{i},2024-01-0{1 + i % 5},{i}" if i % 4 else f",2024-01-0{1 + i % 5},{i}" for i in range(40)]
    lines[7] = "u7,not a time,7"
    lines[9] = "u9,2999-01-01,9"
    path.write_text("user_id,ordered_at,amount\n" + "\n".join(lines) + "\n")
    with pytest.raises(ImportFailed, match="--drop-bad-rows"):
        import_file(mongo.db(), project, "orders", path)
    report = import_file(mongo.db(), project, "orders", path, drop_bad_rows=True)
    assert report.rows == report.inserted == 40 - 10 - 2
    where = dict(report.dropped)
    assert len(where) == 12 and where["line 2"] == "no user_id" and "not a ISO 8601" in where["line 9"]
    assert "is outside" in where["line 11"]
    assert mongo.db()["orders"].count_documents({}) == 28
    assert mongo.db()["orders"].count_documents({"user_id": {"$in": ["u7", "u9", None]}}) == 0
    # The same file again: the same rows, nothing added.
    again = import_file(mongo.db(), project, "orders", path, drop_bad_rows=True)
    assert (again.inserted, again.already_there, len(again.dropped)) == (0, 28, 12)
    nothing = tmp_path / "nothing.csv"
    nothing.write_text("user_id,ordered_at\n,2024-01-01\n")
    with pytest.raises(ImportFailed, match="no rows left: all 1 were dropped"):
        import_file(mongo.db(), project, "orders", nothing, drop_bad_rows=True)


def test_the_import_command_writes_the_report_of_dropped_rows_and_replaces_days(mongo, tmp_path, monkeypatch,
                                                                                 capsys):
    import csv

    from mining_platform.tools import cli

    projects = tmp_path / "projects"
    (projects / "shop").mkdir(parents=True)
    (projects / "shop" / "project.yaml").write_text((REPO / "projects" / "churn" / "project.yaml").read_text()
                                                    .replace("name: churn", "name: shop").replace("demo:", "# demo:"))
    monkeypatch.setenv("MINING_PROJECTS_DIR", str(projects))
    monkeypatch.setenv("MINING_MONGO_URI", mongo.uri)
    monkeypatch.setenv("MINING_MONGO_DB", mongo.database)
    path = tmp_path / "events.csv"
    path.write_text("user_id,timestamp,n\nu1,2024-01-01,1\n,2024-01-01,2\nu3,2024-01-02,3\n")
    report = tmp_path / "dropped.csv"
    assert cli.main(["import", str(path), "--project", "shop", "--source", "user_events",
                     "--drop-bad-rows", str(report)]) == 0
    assert "1 rows dropped" in capsys.readouterr().out
    assert list(csv.reader(report.open())) == [["where", "reason"], ["line 3", "no user_id"]]
    path.write_text("user_id,timestamp,n\nu1,2024-01-01,5\n")
    assert cli.main(["import", str(path), "--project", "shop", "--source", "user_events", "--replace-days"]) == 0
    out = capsys.readouterr().out
    assert "days 2024-01-01 to 2024-01-01 replaced, 1 rows the file no longer has removed" in out
    assert sorted(d["n"] for d in mongo.db()["user_events"].find()) == [3, 5]
    assert cli.main(["import", str(path), "--project", "shop", "--source", "user_events",
                     "--drop-bad-rows", str(path)]) == 1
    assert "a new file for the report" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_a_time_past_the_nanosecond_range_is_named_by_line(mongo, project, tmp_path, small_blocks, kind):
    """Times Arrow reads as nanoseconds (1677-2262) among others: the reader's own conversion would give up on
    the whole file; the importer parses the column itself and names the line."""
    times = ["2024-01-01T00:00:00.123456789"] * 6 + ["2300-01-01T00:00:00.123456789", "1600-01-01T00:00:00"]
    path = tmp_path / f"orders.{kind}"
    if kind == "csv":
        path.write_text("user_id,ordered_at\n" + "".join(f"u{i},{t}\n" for i, t in enumerate(times)))
    else:
        path.write_text("".join(json.dumps({"user_id": f"u{i}", "ordered_at": t}) + "\n" for i, t in enumerate(times)))
    first = 2 if kind == "csv" else 1
    with pytest.raises(ImportFailed) as error:
        import_file(mongo.db(), project, "orders", path)
    assert f"line {first + 6}: ordered_at 2300-01-01T00:00:00.123000+00:00 is outside" in str(error.value)
    assert f"line {first + 7}: ordered_at 1600-01-01T00:00:00+00:00 is outside" in str(error.value)
    report = import_file(mongo.db(), project, "orders", path, drop_bad_rows=True)
    assert report.inserted == 6 and [w for w, _ in report.dropped] == [f"line {first + 6}", f"line {first + 7}"]
