import pytest

from storage.db import Database, DatabaseTooNewError, available_migrations


def test_fresh_database_applies_all_migrations(tmp_path):
    db = Database(tmp_path / "a.duckdb")
    assert db.schema_version() == available_migrations()[-1][0]
    assert db.query_one("SELECT count(*) FROM attribute_catalogue WHERE standard")[0] >= 18
    db.close()


def test_refuses_database_newer_than_code(tmp_path):
    path = tmp_path / "b.duckdb"
    db = Database(path)
    with db.transaction() as cur:
        cur.execute("INSERT INTO schema_version VALUES (9999, 'future', now())")
    db.close()
    with pytest.raises(DatabaseTooNewError) as exc:
        Database(path)
    assert "newer" in str(exc.value)


def test_backup_copy_before_migrating(tmp_path, monkeypatch):
    import storage.db as dbmod
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_core.sql").write_text(
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP);"
        "CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1);")
    monkeypatch.setattr(dbmod, "MIGRATIONS_DIR", migrations)
    path = tmp_path / "c.duckdb"
    Database(path).close()
    (migrations / "0002_more.sql").write_text("ALTER TABLE t ADD COLUMN b INTEGER;")
    db = Database(path)
    assert db.schema_version() == 2
    db.close()
    backups = list(tmp_path.glob("c.duckdb.before-0002.bak"))
    assert backups
    import duckdb
    con = duckdb.connect(str(backups[0]), read_only=True)
    assert [c[0] for c in con.execute("DESCRIBE t").fetchall()] == ["a"]
    con.close()


def test_failed_migration_leaves_database_unchanged(tmp_path, monkeypatch):
    import storage.db as dbmod
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_core.sql").write_text(
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP);")
    monkeypatch.setattr(dbmod, "MIGRATIONS_DIR", migrations)
    path = tmp_path / "e.duckdb"
    Database(path).close()
    (migrations / "0002_bad.sql").write_text("CREATE TABLE ok_table (a INT); SELECT * FROM no_such_table;")
    with pytest.raises(dbmod.DatabaseError):
        Database(path)
    db = Database(path, migrate=False)
    assert db.schema_version() == 1
    assert db.query_one("SELECT count(*) FROM information_schema.tables WHERE table_name = 'ok_table'")[0] == 0
    db.close()


def test_transaction_rolls_back_on_error(db):
    with pytest.raises(RuntimeError):
        with db.transaction() as cur:
            cur.execute("INSERT INTO settings (key, value_json) VALUES ('x', '1')")
            raise RuntimeError("boom")
    assert db.query_one("SELECT count(*) FROM settings WHERE key = 'x'")[0] == 0


def test_second_process_gets_clear_busy_message(tmp_path):
    import subprocess
    import sys
    path = tmp_path / "d.duckdb"
    db = Database(path)
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "from storage.db import Database, DatabaseBusyError\n"
        "try:\n    Database(%r)\nexcept DatabaseBusyError as e:\n    print('BUSY', e)\n"
    ) % (str(__import__('pathlib').Path(__file__).resolve().parents[1]), str(path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    db.close()
    assert "BUSY" in out.stdout and "in use" in out.stdout


def test_transaction_if_free_skips_while_another_writer_holds_the_lock(db):
    import threading

    with db.cursor() as cur:
        cur.execute("CREATE TABLE t_free (x INTEGER)")
    holding, release = threading.Event(), threading.Event()

    def writer():
        with db.transaction() as cur:
            cur.execute("INSERT INTO t_free VALUES (1)")
            holding.set()
            release.wait(5)

    th = threading.Thread(target=writer)
    th.start()
    assert holding.wait(5)
    with db.transaction_if_free() as cur:
        assert cur is None                     # busy: skipped at once, nothing written
    release.set()
    th.join()
    with db.transaction_if_free() as cur:      # free: a real transaction
        assert cur is not None
        cur.execute("INSERT INTO t_free VALUES (2)")
    with pytest.raises(ZeroDivisionError):
        with db.transaction_if_free() as cur:
            cur.execute("INSERT INTO t_free VALUES (3)")
            raise ZeroDivisionError            # rolled back
    assert sorted(x for (x,) in db.query("SELECT x FROM t_free")) == [1, 2]


def test_catalogue_display_label_marks_enriched_attributes_once():
    from storage.catalogue import Attribute

    profile = Attribute("profile.city", "City", "text", "profile", None, "profiles", "city")
    enriched = Attribute("enrichment.1.industry", "All companies: Industry", "text", "enrichment", 1, "t", "industry")
    named = Attribute("enrichment.1.website", "All companies: Website (enriched)", "text", "enrichment", 1, "t", "website")
    assert profile.display_label == "City"
    assert enriched.display_label == "All companies: Industry (enriched)"
    assert named.display_label == "All companies: Website (enriched)"


def test_opening_leaves_no_transaction_open(tmp_path):
    """A result left unread on the connection keeps a transaction open: CHECKPOINT (release_memory after a
    run) would then be refused for as long as the process lives."""
    from storage.db import Database

    db = Database(tmp_path / "t.duckdb")
    try:
        with db.transaction() as cur:
            cur.execute("CREATE TABLE t (x INTEGER)")
            cur.execute("INSERT INTO t VALUES (1)")
        with db.cursor() as cur:
            cur.execute("CHECKPOINT")   # raises TransactionException while any other transaction is open
    finally:
        db.close()


def test_release_memory_evicts_the_table_blocks_a_run_left_cached(tmp_path):
    """After a run the server should not keep the table blocks it read or wrote cached in DuckDB: a 1 M
    export left ~85 MB of them, under the 128 MiB the release used to lower the limit to (issue 16)."""
    from storage.db import Database

    db = Database(tmp_path / "x.duckdb")
    try:
        with db.transaction() as cur:
            cur.execute("CREATE TABLE blocks AS SELECT range AS i, md5(range::VARCHAR) || md5((range + 1)::VARCHAR) "
                        "AS s FROM range(1500000)")
        db.release_memory()   # written to the file (checkpoint)
        assert db.query_one("SELECT count(DISTINCT s) FROM blocks")[0] == 1_500_000   # read: now cached

        def cached_mb() -> float:
            return db.query_one("SELECT coalesce(sum(memory_usage_bytes), 0) / 2 ** 20 FROM duckdb_memory() "
                                "WHERE tag = 'BASE_TABLE'")[0]

        assert cached_mb() > 40
        done = db.release_memory()
        assert done["duckdb_evicted"] and cached_mb() < 20
        assert db.query_one("SELECT count(*) FROM blocks")[0] == 1_500_000   # and still all there
    finally:
        db.close()
