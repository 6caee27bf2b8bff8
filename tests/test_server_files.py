"""Issue 12 item 2, the path chain: nobody reads the data folder's files (database, WAL, cookie key,
master key, other people's uploads) through any import route; files on the server are an admin's and
only from the import folder; messages never show absolute server paths."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from core import config
from core.importing import ImportPlan, ProfileImportError
from core.permissions import PermissionDenied
from services import profiles as svc
from services import server_files
from storage import secrets

FIXTURES = Path(__file__).parent / "fixtures"
CSV = "customer_id,email\nA1,a@example.com\n"


@pytest.fixture
def secrets_on_disk(db, data_dir):
    """The files an attacker wants: the database, its WAL (if any), both key files."""
    config.read_or_create_key_file(config.COOKIE_KEY_FILE_NAME)
    secrets.encrypt("x", context="t")   # creates .secret_key
    files = [data_dir / ".cookie_key", data_dir / ".secret_key", config.db_path()]
    assert all(f.exists() for f in files)
    return files


def _routes(db, actor, path):
    """Every service route that takes a path."""
    plan = ImportPlan("customer_id", {})
    return [
        lambda: svc.inspect_file(db, actor, path),
        lambda: svc.import_profiles(db, actor, path, plan),
        lambda: svc.resolve_server_path(actor, str(path)),
        lambda: server_files.readable_source(actor, path),
        lambda: svc.discard_upload(actor, path),
    ]


def _typed_forms(data_dir: Path, target: Path) -> list[str]:
    imports = config.import_dir()
    return [str(target), str(target.resolve()), f"../{target.name}", f"{imports}/../{target.name}",
            f"./../../{data_dir.name}/{target.name}", target.name]


def test_a_contributor_reads_no_file_of_the_data_folder_by_any_route(db, data_dir, contributor, secrets_on_disk):
    before = {f: f.read_bytes() for f in secrets_on_disk}
    profiles_before = db.query("SELECT count(*) FROM profiles")
    for target in secrets_on_disk:
        for typed in _typed_forms(data_dir, target):
            for route in _routes(db, contributor, typed):
                with pytest.raises((PermissionDenied, ProfileImportError)):
                    route()
    assert {f: f.read_bytes() for f in secrets_on_disk} == before   # nothing deleted or changed
    assert db.query("SELECT count(*) FROM profiles") == profiles_before


def test_an_admin_reads_no_file_of_the_data_folder_either(db, data_dir, admin, secrets_on_disk):
    for target in secrets_on_disk:
        for typed in _typed_forms(data_dir, target):
            for route in _routes(db, admin, typed)[:4]:
                with pytest.raises(ProfileImportError) as info:
                    route()
                assert str(data_dir) not in str(info.value)


def test_symlinks_and_hard_links_into_the_data_folder_are_refused(db, data_dir, admin, secrets_on_disk, tmp_path,
                                                                 monkeypatch):
    imports = config.import_dir()
    (imports / "cookie.csv").symlink_to(data_dir / ".cookie_key")
    (imports / "dir").symlink_to(data_dir, target_is_directory=True)
    os.link(data_dir / ".secret_key", imports / "hard.csv")
    for typed in ("cookie.csv", "dir/.secret_key", "dir/insight_relay.duckdb", "hard.csv"):
        with pytest.raises(ProfileImportError):
            svc.resolve_server_path(admin, typed)
        with pytest.raises(ProfileImportError):
            svc.inspect_file(db, admin, imports / typed)
    # an import folder elsewhere with a link back into the data folder: refused the same way
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "key.csv").symlink_to(data_dir / ".secret_key")
    monkeypatch.setenv(config.IMPORT_DIR_ENV, str(outside))
    with pytest.raises(ProfileImportError):
        svc.resolve_server_path(admin, "key.csv")


@pytest.mark.parametrize("setting", ["data", "parent", "uploads"])
def test_an_import_folder_over_the_data_folder_never_exposes_it(db, data_dir, admin, secrets_on_disk, monkeypatch,
                                                                 setting):
    folder = {"data": data_dir, "parent": data_dir.parent, "uploads": server_files.upload_dir()}[setting]
    monkeypatch.setenv(config.IMPORT_DIR_ENV, str(folder))
    for target in secrets_on_disk:
        with pytest.raises(ProfileImportError, match="data folder|no file|Only files"):
            svc.resolve_server_path(admin, str(target))
    if setting != "uploads":
        assert server_files.import_dir_problem()


def test_an_admin_imports_from_the_import_folder(db, data_dir, admin, contributor):
    imports = config.import_dir()
    assert imports == data_dir / "imports"
    (imports / "people.csv").write_text(CSV, encoding="utf-8")
    path = svc.resolve_server_path(admin, "people.csv")
    preview = svc.inspect_file(db, admin, path)
    result = svc.import_profiles(db, admin, path, ImportPlan(preview.suggested_key or "customer_id", {}))
    assert result.inserted == 1
    with pytest.raises(PermissionDenied):   # the same file, asked for by a contributor
        svc.inspect_file(db, contributor, path)


def test_uploads_are_private_to_their_owner(db, data_dir, contributor, admin):
    import io

    path = svc.save_upload(contributor, io.BytesIO(CSV.encode()), "mine.csv")
    assert path.parent == data_dir / "uploads" and path.parent != config.import_dir()
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    assert svc.inspect_file(db, contributor, path, "mine.csv").headers == ["customer_id", "email"]
    with pytest.raises((PermissionDenied, ProfileImportError)):   # someone else's upload
        svc.inspect_file(db, admin, path)
    with pytest.raises(PermissionDenied):
        svc.discard_upload(admin, path)
    with pytest.raises(PermissionDenied):   # an upload-looking name outside the upload area
        svc.discard_upload(contributor, data_dir / ".secret_key")
    svc.discard_upload(contributor, path)
    assert not path.exists()


def test_messages_never_show_absolute_server_paths(db, data_dir, admin, monkeypatch):
    monkeypatch.setenv(config.IMPORT_DIR_ENV, str(FIXTURES))
    for typed in ("missing.csv", "/etc/passwd", "../../../etc/hostname", str(data_dir / "x.csv")):
        with pytest.raises(ProfileImportError) as info:
            svc.resolve_server_path(admin, typed)
        assert str(FIXTURES) not in str(info.value) and str(data_dir) not in str(info.value)
    assert server_files.hide_paths(f"IO Error: cannot open {data_dir}/uploads/x.csv") == \
        "IO Error: cannot open <data folder>/uploads/x.csv"


def test_reader_errors_name_no_server_folder(db, data_dir, contributor, monkeypatch):
    import io

    from storage import profiles as repo

    path = svc.save_upload(contributor, io.BytesIO(CSV.encode()), "mine.csv")

    def failing_sniff(p, name):
        raise ProfileImportError(f'IO Error: Could not read "{p}"')

    monkeypatch.setattr(repo, "sniff_csv", failing_sniff)
    with pytest.raises(ProfileImportError) as info:
        svc.inspect_file(db, contributor, path, "mine.csv")
    assert str(data_dir) not in str(info.value) and "<data folder>/uploads/" in str(info.value)
    with pytest.raises(ProfileImportError) as info:
        svc.import_profiles(db, contributor, path, ImportPlan("customer_id", {}), file_name="mine.csv")
    assert str(data_dir) not in str(info.value)
    assert str(data_dir) not in repr(db.query("SELECT message FROM profile_imports"))
