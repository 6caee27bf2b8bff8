"""The export runner's journal of ACCEPTED submissions: one small append per vendor answer, durable
before the runner sends its next request or polls any job (jobs/export_run.py, issue 13).

Why a file and not a DuckDB insert: an autocommitted DuckDB insert costs about 0.9 ms of CPU (measured),
10,000 of them per 1 M Omnisend contacts, on the path to the next request; an append to this file costs
microseconds. A line written with os.write is in the kernel's page cache when the call returns, so it
survives the process being killed (SIGKILL, OOM, a crash); it is not fsync'ed, so a power cut can lose
the tail (as the database's own un-checkpointed work would need the WAL). The database stays the record:
the runner stores the same submissions there in groups, off the sending path (journal_seq marks them),
and the next run of the export reconciles: every journaled submission missing from the database is
stored as uncollected, then collected (polled), never sent again.

Journal(path)      .append(entry: dict)  one JSON line;  .size (bytes);  .truncate();  .close()
                   .append_submission(run_id, seq, target_key, kind, submission, meta)  compact (below)
                   .append_line(bytes) / .rewrite(lines)  (rewrite: atomically start over with these lines)
submission_line(run_id, seq, target_key, kind, submission, meta) -> bytes   the line append_submission writes
read_entries(path) -> list[dict]         every complete line (a torn last line is ignored: its write was
                                         cut by the kill, and its request is then the one in flight),
                                         compact lines expanded to {run_id, seq, target_key, kind,
                                         submission: Submission.to_dict(), meta: {email: [customer_id,
                                         contact_hash, action]}}
journal_path(db, export_id) -> Path      <database dir>/export-journal/export-<id>.jsonl
BatchMeta(emails, cids, hashes, actions) a batch's plan meta as aligned columns, read as {email: [...]}

Compact entry (issue 16): the journal was the largest thing a full run wrote (a dict per contact for its
outcome, another for its meta). A submission line now carries the vendor handle (vendor, kind, job id,
target, extra) once, the batch's emails as one newline-joined string, its plan columns aligned with them
(customer ids, contact hashes, one action when the batch has one), and only the exceptional outcomes
(index, status, reason); outcomes not listed are "accepted". encode_submission/decode_submission are
exact inverses (tests/test_exports_run.py round-trips them); anything that does not fit the compact
shape (outcome emails not aligned with the batch's, meta keys not the batch's emails) is kept verbatim.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import orjson

JOURNAL_DIR = "export-journal"


def journal_path(db, export_id: int) -> Path:
    return Path(db.path).parent / JOURNAL_DIR / f"export-{int(export_id)}.jsonl"


class Journal:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None
        self.size = 0

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self.size = os.fstat(self._fd).st_size
        return self._fd

    def append(self, entry: dict) -> None:
        self.append_line(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE))

    def append_line(self, line: bytes) -> None:
        """One complete line (ending in a newline), as submission_line makes it."""
        fd = self._open()
        view = memoryview(line)
        while view:   # a regular file takes it in one write; loop for the rule's sake
            n = os.write(fd, view)
            view = view[n:]
        self.size += len(line)

    def append_submission(self, run_id: int, seq: int, target_key: str, kind: str, submission,
                          meta: dict[str, list]) -> None:
        """Journal an accepted submission (connectors.base.Submission) with its plan meta, compactly."""
        self.append_line(submission_line(run_id, seq, target_key, kind, submission, meta))

    def rewrite(self, lines: list[bytes]) -> None:
        """Start over with only these lines (what is not on record in the database yet), atomically: the
        new file is written beside the old one and renamed over it, so a kill at any moment leaves either
        the old journal or the new one, both holding every submission not on record."""
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = self.path.with_name(self.path.name + ".new")
        fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for line in lines:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(fresh, self.path)
        self._open()

    def truncate(self) -> None:
        """Everything appended so far is on record in the database: start empty."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
        elif self.path.exists():
            os.truncate(self.path, 0)
        self.size = 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class BatchMeta(Mapping):
    """A batch's plan meta as columns aligned with its DISTINCT emails (issue 16; customer ids and hashes may be
    Arrow arrays, the rest lists): reads as the mapping
    {email: [customer_id, contact_hash, action]} it replaces, without a list and a dict entry per contact
    held while the batch is in flight; the runner's fold and encode_submission use the columns directly."""

    __slots__ = ("emails", "cids", "hashes", "actions", "_index")

    def __init__(self, emails: list, cids: list, hashes: list, actions: list):
        if not len(emails) == len(cids) == len(hashes) == len(actions):
            raise ValueError("BatchMeta columns must have one value per email")
        self.emails, self.cids, self.hashes, self.actions = emails, cids, hashes, actions
        self._index: dict | None = None

    def _position(self, email) -> int:
        if self._index is None:
            index: dict = {}
            for i, e in enumerate(self.emails):
                index.setdefault(e, i)
            self._index = index
        return self._index[email]

    def __getitem__(self, email) -> list:
        return self.row(self._position(email))

    def row(self, i: int) -> list:
        return [_at(self.cids, i), _at(self.hashes, i), self.actions[i]]

    def __iter__(self):
        return iter(self.emails)

    def __len__(self) -> int:
        return len(self.emails)

    def to_dict(self) -> dict:
        cids, hashes = _as_list(self.cids), _as_list(self.hashes)
        out: dict = {}
        for e, c, h, a in zip(self.emails, cids, hashes, self.actions):
            out.setdefault(e, [c, h, a])
        return out


def _at(column, i: int):
    """column[i] as a Python value: column is a list or an Arrow array (the runner keeps ids and hashes so)."""
    value = column[i]
    return value.as_py() if hasattr(value, "as_py") else value


def _as_list(column) -> list:
    return column.to_pylist() if hasattr(column, "to_pylist") else column


COMPACT = 2   # the "v" of a compact line


def submission_line(run_id: int, seq: int, target_key: str, kind: str, submission, meta) -> bytes:
    """The journal line of an accepted submission (compact, newline-terminated)."""
    entry = encode_submission(submission, meta)
    entry.update(run_id=run_id, seq=seq, target_key=target_key, kind=kind)
    return orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE)


def encode_submission(submission, meta: dict[str, list]) -> dict:
    """The compact form of (submission, meta); decode_submission gives back their dict forms exactly."""
    emails = list(submission.emails)
    out: dict = {"v": COMPACT, "h": {"vendor": submission.vendor, "kind": submission.kind,
                                     "job_id": submission.job_id,
                                     "target": None if submission.target is None else submission.target.to_dict(),
                                     "extra": dict(submission.extra)}}
    joined = "\n".join(emails)
    if any("\n" in e for e in emails) or (len(emails) == 1 and emails[0] == ""):
        out["el"] = emails          # (an email with a newline was refused long before; kept exact anyway)
    else:
        out["e"] = joined if emails else None
    outcomes = submission.outcomes
    if outcomes is None:
        out["o"] = None
    elif len(outcomes) == len(emails) and all(o.email == e for o, e in zip(outcomes, emails)):
        out["x"] = [[i, o.status, o.reason] for i, o in enumerate(outcomes)
                    if o.status != "accepted" or o.reason is not None]
    else:
        out["o"] = [o.to_dict() for o in outcomes]
    if isinstance(meta, BatchMeta) and meta.emails == emails:
        out["mc"], out["mh"] = _as_list(meta.cids), _as_list(meta.hashes)
        actions = set(meta.actions)
        out["ma"] = actions.pop() if len(actions) == 1 else meta.actions
        return out
    keys = list(meta)
    if keys == emails:
        values = list(meta.values())
        out["mc"] = [v[0] for v in values]
        out["mh"] = [v[1] for v in values]
        actions = {v[2] for v in values}
        out["ma"] = actions.pop() if len(actions) == 1 else [v[2] for v in values]
    else:
        out["m"] = meta
    return out


def decode_submission(entry: dict) -> tuple[dict, dict]:
    """(Submission.to_dict(), meta) of a compact entry."""
    if "el" in entry:
        emails = list(entry["el"])
    else:
        emails = entry["e"].split("\n") if entry.get("e") is not None else []
    sub = dict(entry["h"])
    sub["emails"] = emails
    if "x" in entry:
        outcomes = [{"email": e, "status": "accepted", "reason": None} for e in emails]
        for i, status, reason in entry["x"]:
            outcomes[i] = {"email": emails[i], "status": status, "reason": reason}
        sub["outcomes"] = outcomes
    else:
        sub["outcomes"] = entry.get("o")
    if "m" in entry:
        meta = entry["m"]
    else:
        actions = entry["ma"]
        if isinstance(actions, str):
            actions = [actions] * len(emails)
        meta = {e: [c, h, a] for e, c, h, a in zip(emails, entry["mc"], entry["mh"], actions)}
    return sub, meta


def _expand(entry: dict) -> dict:
    if entry.get("v") != COMPACT:
        return entry
    sub, meta = decode_submission(entry)
    return {"run_id": entry.get("run_id"), "seq": entry.get("seq"), "target_key": entry.get("target_key"),
            "kind": entry.get("kind"), "submission": sub, "meta": meta}


def read_entries(path: Path) -> list[dict]:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    out = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            out.append(_expand(orjson.loads(line)))
        except orjson.JSONDecodeError:
            continue   # a line cut by the kill
    return out
