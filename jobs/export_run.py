"""The export runner (run kind "export"): incremental, consent-gated, crash-safe segment sync.

One run of an export, per destination list ("target"):
  1. recover: store what a killed run journaled but not stored; collect submissions a crashed/cancelled
     run persisted but never collected, fold them;
  2. diff (DuckDB SQL, storage.exports.plan_sql): segment members x mapped columns, hashed, against
     export_delivered -> add / update / retry / unchanged / skip(no email, no consent, duplicate);
     Python adds skip(invalid email, over a limit) while STREAMING rows (fetchmany, never a frame);
  3. send new/changed/failed contacts in vendor-sized batches; up to min(PIPELINE_WINDOW,
     client.pipeline_depth) submissions are in flight so async vendor jobs overlap. The moment the vendor
     accepts a request (a job id, a batch id, a 2xx on a synchronous call) the Submission is appended to
     the export's journal (jobs/export_journal.py: microseconds, survives a kill; one compact line: the
     vendor handle, the emails once, the plan meta as columns, only the outcomes that are not plain
     accepted) BEFORE the next request is sent or any job is polled. The database gets a submission's
     per-contact JSON (export_pending_submissions, uncollected) only when it is not folded by this run:
     still in flight or unflushed when the run ends or the journal starts over, or with outcomes pending.
     One the run collects and folds gets a marker row (vendor handle + journal seq, collected) in the
     same transaction as its outcomes (issue 16: the contacts were written twice as JSON before). The
     next run stores whatever the journal has that the database lacks (no row, no marker), then collects
     (polls) it: an accepted request is never sent again. A kill can re-send only the requests in flight
     at that moment, whose answer had not arrived: one (the sending is sequential); their contacts are
     still "different" and the next run sends them again (upserts are idempotent);
     Before the first delivery to a list (Omnisend: tag) the export did not create, the run asks the
     vendor which contacts it is about to add are already members (ExportRun.lookup_members): those are
     recorded as not added by the export. A list the export created needs no lookups (all members ours);
  4. mirror mode: remove contacts this export added that are no longer eligible, from that list only
     (never one that was on the list before the export added it);
  5. outcomes are written per contact (export_run_contacts) and folded into export_delivered in the
     same transaction that marks the submission collected (or writes its marker) -> a resumed run never
     re-sends them. These flush transactions (every FLUSH_CONTACTS, as columns; the run's own adds are
     inserted without a DELETE first, since a plan says add only for a contact with no delivery row) run
     on one background thread (OrderedWriter), in order, overlapping the sending; the run waits for them
     before it reads the delivery state again (plan after recovery, removals, end).

Cost notes (issue 16, docs/BENCHMARKS.md): a plan that is certainly large (members exceed delivered
contacts by more than MATERIALIZE_MAX_ROWS) is written once by DuckDB to a Parquet file of the run (the
diff runs once; its counts are read from the file) and read back a row group at a time, so no DuckDB
transaction stays open while the run sends (an open one made DuckDB refuse every automatic checkpoint
and keep all appended rows in memory); results on the run's cursor are always read to their end for the
same reason. A batch's plan meta is held as columns (customer ids and hashes as Arrow values, never
Python strings) and a batch all accepted with nothing reported is folded from them without per-contact
Python; the journal starts over by carrying forward only the lines not on record (nothing is stored in
full mid-run, nothing waits for the writer); at most WRITES_WAITING flushes wait for the writer.

params: dry_run (record the plan only), confirm_removals, retry_failed, resume_of (set by runner.resume).
Counts (RunResult.counts): planned = sent + skipped; sent = accepted + rejected + pending; plus added,
updated, retried, removed, unchanged, recovered, skipped_by_reason, targets, warnings; already_on_list
(contacts to add that the lookups found on the list already; per target also list_created_by_export).

Test/bench hooks: CLIENT_OPTIONS (extra kwargs for the connector client, e.g. sleep/clock/base_url),
CLIENT_FACTORY(db, export) -> client (overrides jobs.clients.make_client_for).
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterator

from connectors import registry
from core import sync
from jobs import export_plan, runner
from jobs.background import OrderedWriter
from jobs.export_journal import BatchMeta, Journal, journal_path, read_entries, submission_line
from jobs.runner import RunContext, RunResult
from storage import changes
from storage import db as db_memory
from storage import exports as repo
from storage.arrow_columns import arrow, int64_array, is_arrow, string_array

PIPELINE_WINDOW = 16           # most submissions in flight before the oldest is collected; a client's
                               # `pipeline_depth` (omnisend 16, sendgrid 4, iterable 8) may lower it
FLUSH_CONTACTS = 50_000        # fold outcomes into the database at least this often (each flush is a COMMIT,
                               # WAL and maybe a checkpoint: fewer, larger ones; issue 16)
WRITES_WAITING = 2             # flushes handed to the writer thread and not started yet, at most (each holds
                               # its contacts' columns: this bounds the memory between sender and writer)
FETCH_ROWS = 10_000            # cursor.fetchmany size
EVICT_AFTER_ROWS = FLUSH_CONTACTS   # DuckDB's cache is let go (db.evict_cache) once a run has folded this many
                               # rows since it last was: after every full flush of a large run, never in the middle
                               # of a small one, whose few blocks are not worth it (lowering the limit makes DuckDB
                               # write the run's temp tables out: ~30 ms of a 1 M re-run)
# the run checkpoints once the ledger rows it committed since its last checkpoint exceed this, and before a flush
# that would take them past one row group (storage.db.ROW_GROUP_ROWS): its row groups then never merge
CHECKPOINT_AFTER_ROWS = db_memory.ROW_GROUP_ROWS * 3 // 4
PLAN_MEMORY_LIMIT_BYTES = 128 << 20   # DuckDB's limit while a target's plan is computed (spills beyond it)
MATERIALIZE_MAX_ROWS = 100_000  # a plan (or removal list) up to this size is computed once into a temp table
JOURNAL_MAX_BYTES = 16 * 1024 * 1024   # the journal starts over (once all of it is stored) at this size
CANCEL_CHECK_S = 0.5           # ctx.cancelled() is a query: ask at most this often (and after the first batch)
CLIENT_OPTIONS: dict[str, Any] = {}
CLIENT_FACTORY: Callable[[Any, dict], Any] | None = None


def make_client(db, export: dict):
    if CLIENT_FACTORY is not None:
        return CLIENT_FACTORY(db, export)
    return connection_client(db, export["connection_id"])


def connection_client(db, connection_id: int):
    """A client for the connection, with the run's client options (tests: fake clock, batch sizes)."""
    from jobs.clients import make_client_for

    return make_client_for(db, connection_id, **CLIENT_OPTIONS)


class ExportRun:
    """One execution. Construct with the run's context pieces; call .execute() -> RunResult."""

    def __init__(self, db, export: dict, client, run_id: int, params: dict, *,
                 progress: Callable[..., None] | None = None, cancelled: Callable[[], bool] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.db = db
        self.export = export
        self.client = client
        self.run_id = run_id
        self.params = params or {}
        self.dry_run = bool(self.params.get("dry_run"))
        self._progress = progress or (lambda *a, **k: None)
        self._cancelled = cancelled or (lambda: False)
        self._clock = clock
        self._started = clock()
        self.limits = export_plan.field_limits(export["vendor"])
        self.counts: dict[str, Any] = {k: 0 for k in (
            "planned", "sent", "skipped", "accepted", "rejected", "pending", "added", "updated", "retried",
            "removed", "unchanged", "recovered")}
        self.counts["skipped_by_reason"] = {}
        self.counts["targets"] = {}
        self.counts["warnings"] = []
        self._inflight: deque = deque()     # see _submit
        self._journaled: list[list] = []    # items whose journal lines may not be on record yet (_rotate_journal)
        self._journal_limit = JOURNAL_MAX_BYTES
        self._writer = OrderedWriter("export-flush", max_waiting=WRITES_WAITING)
        self._journal = Journal(journal_path(db, export["id"]))   # accepted submissions, see _submit
        self._seq = 0                       # journal sequence of this run's submissions
        self._next_cancel_check = float("-inf")
        self._collected: list[tuple] = []     # (stored row id, or the in-flight item whose [0] is it; tkey, meta, outcomes)
        self._collected_n = 0
        self._folded_since_evict = 0         # rows folded since the cache was last let go (the writer's)
        self._since_checkpoint = 0           # ledger rows committed since the run's last checkpoint (the writer's)
        self._skips: list[tuple] = []
        self.done = 0
        self.total = 0
        self.stopped_by_cancel = False
        self._scratch = None                 # the run's own cursor (execute); holds the plan temp tables
        self._sources: dict[str, tuple] = {}   # target key -> (plan source, removals source), see _materialize
        self._recovered_emails: dict[str, set[str]] = {}   # target key -> contacts recover() counted as sent
        self._plans: dict[str, dict[str, int]] = {}          # target key -> planned contacts by action
        self._plan_files: list = []          # large plans written to files by this run (removed at its end)
        self._bases: dict[str, export_plan.Basis] = {}   # target key -> what its plan was derived from

    # ------------------------------------------------------------------ helpers
    def _tcounts(self, tkey: str) -> dict:
        return self.counts["targets"].setdefault(tkey, {
            "name": tkey.split(":", 1)[-1], "planned": 0, "sent": 0, "skipped": 0, "accepted": 0, "rejected": 0,
            "pending": 0, "added": 0, "updated": 0, "retried": 0, "removed": 0, "unchanged": 0})

    def _bump(self, tkey: str, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n
        t = self._tcounts(tkey)
        t[key] = t.get(key, 0) + n

    def _tick(self, force: bool = False) -> None:
        elapsed = self._clock() - self._started
        left = sync.estimate_seconds_left(self.done, self.total, elapsed)
        msg = f"{self.done:,} of {self.total:,} contacts"
        if self.counts["accepted"] or self.counts["rejected"]:
            msg += f" · {self.counts['accepted']:,} accepted, {self.counts['rejected']:,} rejected"
        if left is not None and self.done < self.total:
            msg += f" · about {_human(left)} left"
        self._progress(self.done, self.total, msg, force=force)

    def _skip(self, tkey: str, email: str | None, customer_id: str | None, reason: str) -> None:
        self._bump(tkey, "planned")
        self._bump(tkey, "skipped")
        key = reason.split(":", 1)[0]
        self.counts["skipped_by_reason"][key] = self.counts["skipped_by_reason"].get(key, 0) + 1
        self._skips.append((self.run_id, self.export["id"], tkey, email, customer_id, sync.SKIP, "skipped", reason))
        self.done += 1
        if len(self._skips) >= FLUSH_CONTACTS:
            self._flush()

    # ------------------------------------------------------------------ submissions
    def _submit(self, tkey: str, kind: str, emails: list[str], meta: dict[str, list], send: Callable[[], Any]) -> None:
        submission = send()    # if this raises, the batch was not sent: it is not counted and stays different
        # the vendor accepted it: durable NOW, before the next request is sent or any job polled
        self._seq += 1
        self._journal.append_line(submission_line(self.run_id, self._seq, tkey, kind, submission, meta))
        self._bump(tkey, "planned", len(emails))
        self._bump(tkey, "sent", len(emails))
        self.done += len(emails)
        # [stored id (set on the writer thread when it is stored in full), tkey, meta, submission, kind, seq,
        #  the outcomes the vendor gave at submit (what the journal line holds), on record (marker row written)]
        item = [None, tkey, meta, submission, kind, self._seq, submission.outcomes, False]
        self._inflight.append(item)
        self._journaled.append(item)
        if self._journal.size >= self._journal_limit:
            self._rotate_journal()
        window = self._window()
        while len(self._inflight) >= window:
            self._collect_oldest()

    def _rotate_journal(self) -> None:
        """The journal starts over with the lines of the submissions not on record in the database yet (in
        flight, collected but not written): they are carried over as they were journaled, nothing waits for
        the database and nothing is stored in full (issue 16: that stored ~90 k contacts as JSON per 16 MB
        of journal, and the sender waited for it). A submission whose marker lands meanwhile is carried
        too: the next run's reconciliation finds it on record and skips it."""
        keep = [it for it in self._journaled if not _on_record(it)]
        self._journal.rewrite([self._journal_line(it) for it in keep])
        self._journaled = keep
        self._journal_limit = max(JOURNAL_MAX_BYTES, 2 * self._journal.size)

    def _journal_line(self, item: list) -> bytes:
        _, tkey, meta, submission, kind, seq, submit_outcomes, _ = item
        if submission.outcomes is not submit_outcomes:   # collected since: journal what the vendor said then
            submission = dataclasses.replace(submission, outcomes=submit_outcomes)
        return submission_line(self.run_id, seq, tkey, kind, submission, meta)

    def _window(self) -> int:
        return max(1, min(PIPELINE_WINDOW, int(getattr(self.client, "pipeline_depth", PIPELINE_WINDOW) or 1)))

    def _store_in_full(self, items: list[list]) -> None:
        """Store journaled submissions that are not folded yet (in flight, collected but not flushed, or with
        outcomes still pending) in export_pending_submissions, uncollected, with their emails and meta, on
        the writer thread. A submission collected and folded by this run never needs that: its flush
        transaction writes a marker row (its journal seq, collected) with its outcomes, so the database
        holds a submission's per-contact JSON only when a later run may have to collect it. Safety never
        depends on this: the journal already has every accepted submission (jobs/export_journal.py)."""
        todo = [it for it in items if it[0] is None]
        if not todo:
            return
        run_id, export_id, db = self.run_id, self.export["id"], self.db

        def write() -> None:
            todo_now = [it for it in todo if it[0] is None]
            rows = [(run_id, export_id, it[1], it[4], it[3].to_dict(), _meta_dict(it[2]), it[5]) for it in todo_now]
            with db.transaction() as cur:
                ids = repo.save_submissions(cur, rows)
            for it, sub_id in zip(todo_now, ids):
                it[0] = sub_id

        self._writer.submit(write)

    def _collect_oldest(self) -> None:
        item = self._inflight.popleft()
        tkey, meta, submission = item[1], item[2], item[3]
        try:
            outcomes = self.client.collect(submission)
        except BaseException:
            self._inflight.appendleft(item)   # still in flight: on record, collected by the next run
            raise
        self._collected.append((item, tkey, meta, outcomes))
        self._collected_n += len(outcomes)
        if self._collected_n >= FLUSH_CONTACTS:
            self._flush()

    def _should_stop(self) -> bool:
        now = self._clock()
        if now < self._next_cancel_check:
            return False
        self._next_cancel_check = now + CANCEL_CHECK_S
        return bool(self._cancelled())

    def _drain(self) -> None:
        while self._inflight:
            self._collect_oldest()
        self._flush()
        self._writer.wait()

    def _flush(self, recovered: bool = False) -> None:
        """One transaction: per-contact outcomes, delivery state, submissions marked collected."""
        self._journaled = [it for it in self._journaled if not _on_record(it)]   # (their memory goes with them)
        skips = self._skips
        # outcome columns (no per-contact row tuples: this loop runs for every contact of a 1M export)
        c_tkey: list[str] = []
        c_email: list[str] = []
        c_cid = _StringColumn()
        c_action: list[str] = []
        c_status: list[str] = []
        c_reason: list = []
        c_hash = _StringColumn()
        done_refs, keep_refs = [], []   # row ids (recovered) or in-flight items (their id is read when written)
        tallies: dict[tuple[str, str], int] = {}   # (tkey, count key) -> n, bumped once per flush
        default_meta = (None, None, sync.ADD)
        for ref, tkey, meta, outcomes in self._collected:
            any_pending = False
            n0 = len(c_email)
            if isinstance(meta, BatchMeta) and _plainly_accepted(outcomes, meta.emails):
                # the usual batch of this run: every contact accepted, nothing reported, the plan's columns as
                # they are (its emails are the plan's, lower-cased by SQL)
                n = len(meta.emails)
                c_email.extend(meta.emails)
                c_cid.extend(meta.cids)
                c_action.extend(meta.actions)
                c_hash.extend(meta.hashes)
                c_status.extend(["accepted"] * n)
                c_reason.extend([None] * n)
                for action in set(meta.actions):
                    k = (tkey, _ACCEPTED_KEY[action])
                    tallies[k] = tallies.get(k, 0) + meta.actions.count(action)
                outcomes = ()
            elif outcomes and all(o.status == "accepted" and o.reason is None for o in outcomes):
                # the usual batch: every contact accepted, nothing reported; columns in bulk, no per-contact branches
                em = [o.email.lower() for o in outcomes]
                mv = [meta.get(e) or meta.get(o.email) or default_meta for e, o in zip(em, outcomes)]
                cids, acts = [v[0] for v in mv], [v[2] for v in mv]
                accepted = ["accepted"] * len(em)
                c_email.extend(em)
                c_cid.extend(cids)
                c_action.extend(acts)
                c_status.extend(accepted)
                c_reason.extend([None] * len(em))
                for action in set(acts):
                    k = (tkey, _ACCEPTED_KEY[action])
                    tallies[k] = tallies.get(k, 0) + acts.count(action)
                c_hash.extend([v[1] for v in mv])
                outcomes = ()
            for o in outcomes:
                email = o.email.lower()
                status = o.status
                customer_id, chash, action = (meta.get(email) or meta.get(o.email) or default_meta)
                c_email.append(email)
                c_cid.append(customer_id)
                c_action.append(action)
                c_status.append(status)
                if status == "accepted":
                    c_reason.append(None)
                    k = (tkey, _ACCEPTED_KEY[action])
                    tallies[k] = tallies.get(k, 0) + 1
                else:
                    c_reason.append(o.reason)
                    if status == "pending":
                        any_pending = True
                c_hash.append(chash)
            n = len(c_email) - n0
            c_tkey.extend([tkey] * n)
            seg = c_status[n0:]
            for status in set(seg):
                tallies[(tkey, status)] = tallies.get((tkey, status), 0) + seg.count(status)
            if recovered and n:
                for key in ("planned", "sent"):
                    tallies[(tkey, key)] = tallies.get((tkey, key), 0) + n
                self.counts["recovered"] += n
            (keep_refs if any_pending else done_refs).append(ref)
        for (tkey, key), n in tallies.items():
            self._bump(tkey, key, n)
        for ref in done_refs:   # folded into the columns above: the collected Outcome objects are not needed
            if not isinstance(ref, int):   # while the write waits (the journal carries what came at submit)
                ref[3].outcomes = ref[6]
        if not c_email and not skips and not done_refs and not keep_refs:
            self._collected, self._collected_n = [], 0
            return
        db, run_id, export_id = self.db, self.run_id, self.export["id"]
        # a submission whose outcomes are still pending stays uncollected on record: a later run asks again
        self._store_in_full([r for r in keep_refs if not isinstance(r, int)])

        def write() -> None:
            done_ids = [i for i in map(_row_id, done_refs) if i is not None]
            # folded now and never stored in full: one marker row (journal seq, collected) each, so the next
            # run's journal reconciliation knows it is done
            marked = [r for r in done_refs if not isinstance(r, int) and r[0] is None]
            markers = [(run_id, export_id, r[1], r[4], _handle(r[3]), r[5]) for r in marked]
            rows = len(c_email) + len(skips)
            if self._since_checkpoint and self._since_checkpoint + rows > db_memory.ROW_GROUP_ROWS:
                self._checkpoint()
            with db.transaction() as cur:
                repo.record_outcomes(cur, skips)
                # ledger and delivery state from one columnar batch, in SQL; this run's own adds were
                # planned as "no delivery row": nothing to delete first
                # columns as lists, or Arrow where the plan's were (storage.exports decides how DuckDB reads them)
                repo.record_and_fold(cur, run_id, export_id, {
                    "target_key": c_tkey, "email": c_email, "customer_id": c_cid.column(), "action": c_action,
                    "outcome": c_status, "reason": c_reason, "contact_hash": c_hash.column()},
                    adds_are_new=not recovered)
                repo.mark_collected_many(cur, done_ids)
                repo.save_collected_markers(cur, markers)
            self._since_checkpoint += rows
            if self._since_checkpoint > CHECKPOINT_AFTER_ROWS:
                self._checkpoint()
            # the blocks just written stay in DuckDB's cache (40-80 MB by the end of a 1 M run) though nothing
            # in the run reads them again: let them go every EVICT_AFTER_ROWS (a run's end lets go of the rest:
            # runner.release_memory)
            self._folded_since_evict += len(c_email) + len(skips)
            if self._folded_since_evict >= EVICT_AFTER_ROWS and db.evict_cache():
                self._folded_since_evict = 0
            for r in marked:   # committed: their journal lines need not be carried over any more
                r[7] = True

        self._collected, self._collected_n, self._skips = [], 0, []
        self._writer.submit(write)
        self._tick()

    def _checkpoint(self) -> None:
        """On the writer thread: the ledger and delivery rows committed so far written to the file as row groups
        of their own (storage.db.ROW_GROUP_ROWS). A progress write is waited for (up to 1 s); when a page is
        writing, it is tried again after the next flush."""
        if self.db.checkpoint_if_idle(run_wait_s=1.0):
            self._since_checkpoint = 0

    # ------------------------------------------------------------------ phases
    def recover(self) -> None:
        """Collect submissions earlier runs persisted but never collected (crash, kill, cancel)."""
        from connectors.base import Submission

        self._reconcile_journal()
        for row in repo.uncollected_submissions(self.db, self.export["id"]):
            submission = Submission.from_dict(row["submission"])
            outcomes = self.client.collect(submission)
            self._recovered_emails.setdefault(row["target_key"], set()).update(o.email.lower() for o in outcomes)
            self._collected.append((row["id"], row["target_key"], row["meta"], outcomes))
            self._flush(recovered=True)
        self._writer.wait()   # the plan reads the delivery state these flushes write

    def _reconcile_journal(self) -> None:
        """Submissions a killed run journaled (the vendor accepted them) but never stored in the database:
        store them now, uncollected, so recover() collects them instead of sending them again."""
        entries = read_entries(self._journal.path)
        if not entries:
            return
        stored = repo.stored_journal_seqs(self.db, self.export["id"], sorted({e["run_id"] for e in entries}))
        missing = [e for e in entries if (e["run_id"], e["seq"]) not in stored]
        if missing:
            with self.db.transaction() as cur:
                repo.save_submissions(cur, [(e["run_id"], self.export["id"], e["target_key"], e["kind"],
                                             e["submission"], e["meta"], e["seq"]) for e in missing])
        self._journal.truncate()

    def _materialize(self, idx: int, target: dict, retry_run: int | None) -> dict[str, int]:
        """_plan_target with DuckDB's memory capped at PLAN_MEMORY_LIMIT_BYTES when it diffs every member: that
        diff's working memory over 1 M members (duplicate ranking, joins: +190-240 MB, handed back before
        sending) was the run's peak; it spills to the temp directory instead (issue 16). A plan derived from the
        last settled one needs little memory: capped, DuckDB wrote its temp tables out for nothing (~30 ms of a
        1 M re-run); should its probe find a change nobody logged, it diffs every member under the cap too."""
        basis = None
        if retry_run is None:   # read before the pass: the plan is derived from the last settled one when it can be
            with self.db.scan_threads():   # the fingerprints: little memory, every DuckDB thread outside the app
                basis = self._bases[target["key"]] = export_plan.plan_basis(self.db, self.export, target)
        with contextlib.ExitStack() as stack:
            capped = []

            def cap() -> None:   # from here on, capped (once; before any pass over every member)
                if not capped:
                    stack.enter_context(self.db.memory_capped(PLAN_MEMORY_LIMIT_BYTES))
                    capped.append(True)

            if basis is None or basis.since is None:
                cap()
            return self._plan_target(idx, target, retry_run, basis, cap)

    def _plan_target(self, idx: int, target: dict, retry_run: int | None, basis: "export_plan.Basis | None",
                     cap) -> dict[str, int]:
        """Plan the target: counts by action (as export_plan.count_plan), and where its rows will be read from.

        The diff is the costly part of a re-run, so a SMALL plan (at most MATERIALIZE_MAX_ROWS to send,
        the usual incremental run) is computed once into a temp table on the run's own cursor, and counts
        and sending both read it. A large one (a first full run) would hold hundreds of MB there for the
        whole run: it is counted, then streamed from its query again (the diff is then a small part of
        the run). Removals alike. They can be fixed now: upserts only touch members, and removal
        candidates are delivered contacts that are no longer members."""
        if retry_run is None:   # a small plan (a re-run): plan, counts and removals from ONE pass of the diff
            # a derived plan's scans of every profile's email for a few thousand rows: little memory, so every
            # DuckDB thread outside the app (a full diff keeps the run's one)
            with self.db.scan_threads() if basis.since is not None else contextlib.nullcontext():
                small = export_plan.small_plan(self._scratch, self.db, self.export, target, idx,
                                               MATERIALIZE_MAX_ROWS, basis=basis, whole_diff=cap)
            if small is not None:
                counts, plan_src, removal_src = small
                self._sources[target["key"]] = (plan_src, removal_src)
                return counts
            cap()
            if basis.static:   # kept with the plan's mark: the next run need not count the members again
                export_plan.member_count(self._scratch, self.db, self.export, target, basis)
        sql, params, _ = repo.plan_sql(self.db, self.export, target["segment_ids"], target["key"],
                                       only_emails_from_run=retry_run)
        # last column: DuckDB's (RE2, linear-time) verdict of core.sync's fast email pattern, a hint
        # that spares the per-contact Python regex; anything it does not accept is checked in Python
        send_sql = (f"SELECT *, coalesce(regexp_full_match(email, ?), FALSE) AS email_fast_ok FROM ({sql}) "
                    "WHERE action <> 'unchanged'")
        send_params = [sync.FAST_EMAIL_SQL] + list(params)
        cur = self._scratch
        # every result on this cursor is read to its end (fetchall, never fetchone): an unfinished result keeps
        # the cursor's transaction open for the run, and then (after any UPDATE meanwhile) DuckDB refuses every
        # automatic checkpoint and keeps all the rows the run appends in memory (issue 16)
        delivered = repo.delivered_count(self.db, self.export["id"], target["key"])
        if retry_run is None and not delivered:
            # nothing delivered yet (a first run): every member row is a plan row (none is excluded as a removal),
            # and small_plan counted them already: no pass over the diff just to count it
            total = export_plan.member_count(cur, self.db, self.export, target, basis)
        else:   # the plan's size without its costly columns (DuckDB prunes the hash and the duplicate ranking)
            total = cur.execute(f"SELECT count(*) FROM ({sql})", params).fetchall()[0][0]
        if total - delivered > MATERIALIZE_MAX_ROWS:
            # more members than delivered contacts by over the limit: that many adds at least, so the plan goes
            # to a file; trying the temp table first would evaluate the whole diff once more for nothing
            plan_src = self._plan_file(idx, send_sql, send_params)
        else:
            plan_src, _ = self._small_table(f"run_plan_{idx}", send_sql, send_params)
        if plan_src[0] == "query":
            counts = export_plan.action_counts(cur, f"({sql})", params)
        else:   # the rows to send, counted where they are; the rest of the members are unchanged
            counts = export_plan.action_counts(cur, _from(plan_src)[0], [])
            if total > sum(counts.values()):
                counts[sync.UNCHANGED] = total - sum(counts.values())
        removals, removal_src = 0, None
        if self.export["sync_mode"] == sync.MODE_MIRROR:
            rsql, rparams = repo.removal_sql(self.db, self.export, target["segment_ids"], target["key"],
                                             only_emails_from_run=retry_run)
            removal_src, removals = self._small_table(f"run_removals_{idx}", rsql, rparams)
            if removals is None:
                removals = cur.execute(f"SELECT count(*) FROM ({rsql})", rparams).fetchall()[0][0]
        counts[sync.REMOVE] = removals
        self._sources[target["key"]] = (plan_src, removal_src)
        return counts

    def _recovered_unchanged(self, target: dict, retry_run: int | None) -> int:
        """Contacts recover() collected (counted as sent by this run) that the plan, made after it, finds
        unchanged: not to be counted a second time, as unchanged. Only a run after a crash or cancel has any."""
        emails = self._recovered_emails.get(target["key"])
        if not emails:
            return 0
        sql, params, _ = repo.plan_sql(self.db, self.export, target["segment_ids"], target["key"],
                                       only_emails_from_run=retry_run)
        return self._scratch.execute(
            f"SELECT count(*) FROM ({sql}) WHERE action = ? AND email IN (SELECT unnest(?::VARCHAR[]))",
            list(params) + [sync.UNCHANGED, sorted(emails)]).fetchall()[0][0]

    def _plan_file(self, idx: int, sql: str, params: list) -> tuple:
        """("file", path): a large plan's rows written once by DuckDB to a Parquet file of the run's own, then
        read back in row groups with no DuckDB transaction open while the run sends (issue 16). Streaming it
        from its query held one read transaction for the whole run: after any UPDATE meanwhile (the run's
        progress row), DuckDB refused every automatic checkpoint until the stream ended, so all the rows the
        run appended (ledger, delivery state) stayed in memory, ~250 MB at 1 M contacts. The diff is also
        evaluated once instead of twice (its counts are read from the file)."""
        path = _plan_dir(self.db) / f"export-{int(self.export['id'])}-run-{int(self.run_id)}-{int(idx)}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._plan_files.append(path)
        self._scratch.execute(f"COPY ({sql}) TO {_sql_string(str(path))} (FORMAT parquet, "
                              f"ROW_GROUP_SIZE {PLAN_FILE_ROW_GROUP})", params)
        return ("file", str(path))

    def _remove_plan_files(self) -> None:
        for path in self._plan_files:
            path.unlink(missing_ok=True)
        self._plan_files = []

    def _small_table(self, name: str, sql: str, params: list) -> tuple[tuple, int | None]:
        """(("table", name), row count) with sql's rows in temp table `name` if there are at most
        MATERIALIZE_MAX_ROWS, else (("query", sql, params), None) to stream them from later."""
        cur = self._scratch
        cur.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql} LIMIT {MATERIALIZE_MAX_ROWS + 1}", params)
        n = cur.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
        if n <= MATERIALIZE_MAX_ROWS:
            return ("table", name), n
        cur.execute(f"DROP TABLE {name}")
        return ("query", sql, params), None

    def _stream(self, source: tuple) -> Iterator[tuple]:
        if source[0] == "file":
            yield from _file_rows(source[1])
            return
        cur = self._scratch
        if source[0] == "table":
            cur.execute(f"SELECT * FROM {source[1]}")
        else:
            cur.execute(source[1], source[2])
        while True:
            rows = cur.fetchmany(FETCH_ROWS)
            if not rows:
                return
            yield from rows

    def _plan_rows(self, target: dict, retry_run: int | None) -> Iterator[tuple]:
        return self._stream(self._sources[target["key"]][0])

    def _plan_batches(self, target: dict) -> Iterator:
        """The target's plan as Arrow record batches (columns: action, customer_id, email, contact_hash,
        skip_reason, the mapped fields, email_fast_ok); a small one (a temp table of at most
        repo.LIST_BATCH_MAX_ROWS rows) as _RowsBatch, its columns Python lists: a small run never imports
        pyarrow (storage.arrow_columns.arrow)."""
        source = self._sources[target["key"]][0]
        if source[0] == "file":
            yield from _file_batches(source[1])
            return
        if source[0] == "table" and self._scratch.execute(
                f"SELECT count(*) FROM {source[1]}").fetchall()[0][0] <= repo.LIST_BATCH_MAX_ROWS:
            rows = self._scratch.execute(f"SELECT * FROM {source[1]}").fetchall()   # read to its end
            for i in range(0, len(rows), FETCH_ROWS):
                yield _RowsBatch(rows[i:i + FETCH_ROWS])
            return
        sql, params = (f"SELECT * FROM {source[1]}", []) if source[0] == "table" else (source[1], source[2])
        yield from self._scratch.sql(sql, params=list(params) or None).to_arrow_reader(FETCH_ROWS)

    def _contacts(self, target: dict, field_keys: list[str], retry_run: int | None, pending: "_PendingMeta"
                  ) -> Iterator:
        """Stream Contacts to send; record skips; note each one's plan meta in `pending` (columns: the
        customer ids and contact hashes stay Arrow values of the plan's batch, never Python strings)."""
        from connectors.base import Contact

        tkey = target["key"]
        policy = self.export["over_limit"]
        # values come from SQL as VARCHAR (str or None): without a length limit on any mapped field the
        # dict needs no per-value work
        limited = any(k in self.limits for k in field_keys)
        email_problem = _EmailCheck().problem
        add_email, add_action = pending.emails.append, pending.actions.append
        for batch in self._plan_batches(target):
            cols = batch.columns
            cid_col, hash_col = cols[1], cols[3]
            cid_at = cid_col.__getitem__ if isinstance(cid_col, list) else (lambda i, c=cid_col: c[i].as_py())
            actions, emails, fast_ok = _pylist(cols[0]), _pylist(cols[2]), _pylist(cols[-1])
            reasons = cols[4] if isinstance(cols[4], list) else (
                cols[4].to_pylist() if cols[4].null_count < len(batch) else None)
            value_cols = [_pylist(c) for c in cols[5:-1]]
            values_of = list(zip(*value_cols)) if value_cols else None
            # a field limit to enforce in this batch at all? (one pass per column, not a dict per contact)
            over_limit = limited and any(max(map(len, filter(None, col)), default=0) > self.limits[k]
                                         for k, col in zip(field_keys, value_cols) if k in self.limits)
            picked = pending.new_chunk(cid_col, hash_col)
            for i, action in enumerate(actions):
                email = emails[i]
                if action == sync.SKIP:
                    self._skip(tkey, email, cid_at(i), reasons[i] if reasons else None)
                    continue
                problem = email_problem(email, fast_ok[i])
                if problem:
                    self._skip(tkey, email, cid_at(i), problem)
                    continue
                values = values_of[i] if values_of is not None else ()
                if over_limit:
                    fields, problem = sync.apply_field_limits(dict(zip(field_keys, values)), self.limits, policy)
                    if problem:
                        self._skip(tkey, email, cid_at(i), problem)
                        continue
                else:
                    fields = dict(zip(field_keys, values))
                add_email(email)
                add_action(action)
                picked.append(i)
                yield Contact(email, fields)

    def _field_keys(self) -> list[str]:
        return [m["field"] for m in self.export["mapping"] if m["field"] != sync.EMAIL_FIELD]

    def upserts(self, target: dict, vendor_target, retry_run: int | None) -> None:
        tkey = target["key"]
        pending = _PendingMeta()
        contacts = self._contacts(target, self._field_keys(), retry_run, pending)
        if self.dry_run:
            for c in contacts:
                customer_id, _, action = pending.take([c.email]).row(0)
                self._bump(tkey, "planned")
                self._skips.append((self.run_id, self.export["id"], tkey, c.email, customer_id, action, "planned", None))
                self._bump(tkey, {sync.ADD: "added", sync.UPDATE: "updated", sync.RETRY: "retried"}[action])
                self.done += 1
                if len(self._skips) >= FLUSH_CONTACTS:
                    self._flush()
            self._flush()
            return
        for batch in self.client.upsert_batches(contacts):
            emails = [c.email for c in batch]
            self._submit(tkey, "upsert", emails, pending.take(emails),
                         lambda b=batch: self.client.submit_upsert(b, vendor_target))
            del batch   # the Contacts and their field dicts are not needed once sent
            self._tick()
            if self._should_stop():
                self.stopped_by_cancel = True
                return

    def removals(self, target: dict, vendor_target, retry_run: int | None) -> None:
        tkey = target["key"]
        customer_of: dict[str, str] = {}

        def emails() -> Iterator[str]:
            for email, customer_id in self._stream(self._sources[tkey][1]):
                customer_of[email] = customer_id
                yield email

        if self.dry_run:
            for email in emails():
                self._bump(tkey, "planned")
                self._bump(tkey, "removed")
                self._skips.append((self.run_id, self.export["id"], tkey, email, customer_of.pop(email), sync.REMOVE,
                                    "planned", None))
                self.done += 1
                if len(self._skips) >= FLUSH_CONTACTS:
                    self._flush()
            self._flush()
            return
        for batch in self.client.remove_batches(emails()):
            batch = list(batch)
            n = len(batch)
            batch_meta = BatchMeta(batch, [customer_of.pop(e, None) for e in batch], [None] * n, [sync.REMOVE] * n)
            self._submit(tkey, "remove", batch, batch_meta,
                         lambda b=batch: self.client.submit_remove(b, vendor_target))
            self._tick()
            if self._should_stop():
                self.stopped_by_cancel = True
                return

    def resolve_target(self, target: dict):
        from connectors.base import Target

        if target["mode"] == "id":
            return Target(str(target["id"]), target.get("name") or str(target["id"]))
        found = self.client.find_target(target["name"])
        created = found is None
        if created:
            found = self.client.create_target(target["name"])
        state = repo.target_state(self.db, self.export["id"], target["key"])
        with self.db.transaction() as cur:
            for sid in target["segment_ids"]:
                repo.set_resolved_target(cur, self.export["id"], sid, found.id)
            if created or state is None or state["vendor_target_id"] != str(found.id):
                # made by this export now, or found there (not ours), or a different list than before
                repo.set_target_state(cur, self.export["id"], target["key"], found.id, created_by_export=created)
        return found

    def peek_target(self, target: dict):
        """The dry run's view of the destination, read only: None when the run would create it."""
        from connectors.base import Target

        if target["mode"] == "id":
            return Target(str(target["id"]), target.get("name") or str(target["id"]))
        return self.client.find_target(target["name"])

    # ------------------------------------------------------------------ membership (issue 13)
    def lookup_members(self, idx: int, target: dict, vendor_target) -> None:
        """Before contacts are first delivered to a list the export did not create, ask the vendor which
        of them are already members: those are recorded not ours (export_membership_checks, then
        export_delivered.added_by_export = FALSE) and mirror never removes them. A contact already
        checked and still waiting to be delivered keeps its verdict (after a crash, the contacts the killed
        run sent are on the list now: their verdict from before stands). The dry run does the same,
        read-only lookups, and records nothing."""
        tkey, export_id = target["key"], self.export["id"]
        tc = self._tcounts(tkey)
        adds = self._plans[tkey].get(sync.ADD, 0)
        if vendor_target is None:   # dry run to a list the run would create
            tc["list_created_by_export"] = tc["list_to_be_created"] = True
            return
        state = repo.target_state(self.db, export_id, tkey)
        if state and state["created_by_export"] and state["vendor_target_id"] == str(vendor_target.id):
            tc["list_created_by_export"] = True
            return
        if not adds:
            return
        cur = self._scratch
        src, params = _from(self._sources[tkey][0])
        looked_up, found = f"run_lookup_{idx}", f"run_found_{idx}"
        cur.execute(f"CREATE OR REPLACE TEMP TABLE {looked_up} AS SELECT p.email, p.email_fast_ok FROM {src} p "
                    "WHERE p.action = 'add' AND p.email NOT IN (SELECT email FROM export_membership_checks "
                    "WHERE export_id = ? AND target_key = ?)", params + [export_id, tkey])
        known_members = cur.execute(
            f"SELECT count(*) FROM {src} p WHERE p.action = 'add' AND p.email IN (SELECT email FROM "
            "export_membership_checks WHERE export_id = ? AND target_key = ? AND was_member)",
            params + [export_id, tkey]).fetchall()[0][0]
        to_check = cur.execute(f"SELECT count(*) FROM {looked_up}").fetchall()[0][0]
        cur.execute(f"CREATE OR REPLACE TEMP TABLE {found} (email VARCHAR)")
        first_lookup = state is None or state["members_looked_up_at"] is None
        seen_any = False
        if to_check:
            lookup = getattr(self.client, "MEMBERSHIP_LOOKUP", None)
            candidates = self._lookup_candidates(looked_up) if lookup and lookup.strategy == "search" else iter(())
            chunk: list[str] = []
            for email in self.client.existing_members(vendor_target, candidates):
                seen_any = True
                chunk.append(email)
                if len(chunk) >= FETCH_ROWS:
                    self._insert_emails(found, chunk)
                    chunk = []
            self._insert_emails(found, chunk)
        new_tag = (first_lookup and not seen_any and getattr(self.client, "targets_exist_only_with_members", False)
                   and repo.delivered_count(self.db, export_id, tkey) == 0)
        if self.dry_run:
            n_found = cur.execute(f"SELECT count(*) FROM {looked_up} WHERE email IN (SELECT email FROM {found})"
                                  ).fetchall()[0][0]
        elif new_tag:   # nobody carried the tag: this export creates it, every member is ours
            with self.db.transaction() as wcur:
                repo.set_target_state(wcur, export_id, tkey, vendor_target.id, created_by_export=True)
            n_found = 0
        else:
            self._writer.wait()   # the flushes of earlier targets are in (they drop delivered contacts' checks)
            cur.execute("BEGIN TRANSACTION")
            try:
                n_found = repo.save_membership_checks(cur, export_id, tkey, self.run_id, looked_up, found)
                repo.note_membership_lookup(cur, export_id, tkey, vendor_target.id, n_found + known_members)
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
        cur.execute(f"DROP TABLE IF EXISTS {looked_up}")
        cur.execute(f"DROP TABLE IF EXISTS {found}")
        if new_tag:
            tc["list_created_by_export"] = True
            if self.dry_run:
                tc["list_to_be_created"] = True
        tc["looked_up"] = to_check
        tc["already_on_list"] = n_found + known_members
        self.counts["already_on_list"] = self.counts.get("already_on_list", 0) + n_found + known_members

    def _lookup_candidates(self, table: str) -> Iterator[str]:
        """The emails to look up, in pages (the run's cursor is free between them), valid ones only."""
        check = _EmailCheck().problem
        last = -1
        while True:
            rows = self._scratch.execute(f"SELECT rowid, email, email_fast_ok FROM {table} WHERE rowid > ? "
                                         f"ORDER BY rowid LIMIT {FETCH_ROWS}", [last]).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            for _, email, fast_ok in rows:
                if email and check(email, bool(fast_ok)) is None:
                    yield email

    def _insert_emails(self, table: str, emails: list[str]) -> None:
        if emails:
            self._scratch.execute(f"INSERT INTO {table} SELECT unnest(?::VARCHAR[])", [emails])

    def execute(self) -> RunResult:
        with self.db.run_checkpoints():   # the run checkpoints at its own steps (_checkpoint), to its end
            return self._execute_and_settle()

    def _execute_and_settle(self) -> RunResult:
        try:
            _remove_stale_plan_files(self.db, self.export["id"])   # a killed run's (one run per export at a time)
            with self.db.cursor() as self._scratch:   # the run's temp tables live (and die) with it
                return self._execute()
        finally:
            self._remove_plan_files()
            stored = True
            try:   # sent, maybe not collected or not folded: on record in the database in full too
                self._store_in_full(list(self._inflight) + [c[0] for c in self._collected
                                                            if not isinstance(c[0], int)])
            except BaseException:   # the writer failed earlier; its error is already the run's
                stored = False
            self._writer.close()     # finishes the writes already handed over (also on a crash)
            try:
                self._writer.wait()
            except BaseException:
                stored = False
            if stored and not self.dry_run:
                self._journal.truncate()   # all in the database; else the next run reconciles from it
            self._journal.close()

    def _execute(self) -> RunResult:
        export = self.export
        targets = export_plan.plan_targets(self.db, export)
        retry_run = None
        if self.params.get("retry_failed"):
            retry_run = self.db.query_one(
                "SELECT max(run_id) FROM export_run_contacts WHERE export_id = ? AND outcome = 'rejected'",
                [export["id"]])[0]
            if retry_run is None:
                return RunResult("succeeded", self.counts, "Nothing to retry: the last runs had no rejected contacts.")
        if not self.dry_run:
            self.recover()
        plans = self._plans = {t["key"]: self._materialize(i, t, retry_run) for i, t in enumerate(targets)}
        # the diff's working memory (its window and hash tables, ~150 MB at 1 M members) is freed but stays
        # mapped: hand it back before the sending fills the process again (issue 16)
        db_memory.trim_heap()
        members = sum(sum(n for a, n in p.items() if a != sync.REMOVE) for p in plans.values())
        # the same gate the page showed and run_export checked, now on this run's own plan
        run_gate = export_plan.gate(self.db, export, dry_run=self.dry_run, plans=plans, targets=targets,
                                    contacts=members,
                                    account_contacts=export_plan.account_from_members(self.db, export, targets,
                                                                                      members))
        self.counts["warnings"].extend(run_gate.warnings)
        if run_gate.needs_confirmation:
            self.counts["removal_guard"] = run_gate.needs_confirmation
        if not self.dry_run:
            refusal = run_gate.refusal(confirm_removals=bool(self.params.get("confirm_removals")))
            if refusal:
                return RunResult("failed" if run_gate.blocked else "skipped", self.counts, refusal)
        self.total = sum(n for p in plans.values() for a, n in p.items() if a != sync.UNCHANGED)
        for t in targets:
            self._tcounts(t["key"])["name"] = t["name"]
            unchanged = plans[t["key"]].get(sync.UNCHANGED, 0) - self._recovered_unchanged(t, retry_run)
            self._bump(t["key"], "unchanged", unchanged)
        self._tick(force=True)
        mirror = export["sync_mode"] == sync.MODE_MIRROR
        error = None
        try:
            for i, t in enumerate(targets):
                vendor_target = self.peek_target(t) if self.dry_run else self.resolve_target(t)
                self.lookup_members(i, t, vendor_target)
                self.upserts(t, vendor_target, retry_run)
                if self.stopped_by_cancel:
                    break
                if mirror:
                    self.removals(t, vendor_target, retry_run)
                    if self.stopped_by_cancel:
                        break
        except Exception as exc:  # a vendor failure mid-run: keep what is known, report honestly
            error = exc
        try:
            self._drain()
        except Exception as exc:  # collecting failed too; submissions stay stored for the next run
            error = error or exc
        else:
            if not self.dry_run and retry_run is None and error is None and not self.stopped_by_cancel:
                self._settle_plans(targets)
        self._tick(force=True)
        result = self._result(error)
        note = self._membership_note()
        if note:
            result.message = f"{result.message} {note}"
        return result

    def _settle_plans(self, targets: list[dict]) -> None:
        """The run went through its whole plan and every outcome is written (_drain): remember each target's
        plan with what it left unsettled, so the next run derives its plan from this one (export_plan.Basis).
        Every planned row has an outcome now (sent and collected, or skipped), so the unsettled ones are read
        from this run's outcomes alone. A run that stopped early (an error, a cancel) or a crash keeps the
        previous mark, which stays true: this run changed the delivery state only for rows of its plan, and
        the previous mark's next plan re-examines all of those."""
        with self.db.transaction() as cur:
            for t in targets:
                basis = self._bases.get(t["key"])
                if basis is None:
                    continue
                sql, params = repo.unsettled_sql(int(self.run_id), t["key"])
                repo.save_plan_mark(cur, int(self.export["id"]), t["key"], basis.change_no, basis.state_key,
                                    basis.cursor_at, int(self.run_id), sql, params, members=basis.static_members)
            oldest = cur.execute("SELECT min(change_no) FROM export_plan_marks").fetchone()[0]
            if oldest is not None:   # changes every settled plan has seen: no plan derives across them again
                changes.prune(cur, int(oldest))

    def _membership_note(self) -> str:
        """What the run found about list membership, in words, for the run's message (and so its page)."""
        parts = []
        found = self.counts.get("already_on_list", 0)
        if found:
            verb = "would be sent" if self.dry_run else "were sent"
            parts.append(f"{found:,} of the contacts that {verb} as new were already on the list before this "
                         "export added them: mirror never removes them.")
        word = registry.spec(self.export["vendor"]).target_word
        for t in self.counts["targets"].values():
            if t.get("list_created_by_export"):
                made = "would be created" if t.get("list_to_be_created") else "was created"
                parts.append(f"The {word} “{t['name']}” {made} by this export: every member is the export's, "
                             "so no membership lookups were needed.")
        return " ".join(parts)

    def _result(self, error: Exception | None) -> RunResult:
        c = self.counts
        problems = [] if self.dry_run else sync.check_counts(c)
        if problems:
            c["warnings"].append("Counts do not add up: " + "; ".join(problems))
        if self.dry_run:
            msg = (f"Dry run: {c['added']:,} to add, {c['updated'] + c['retried']:,} to update, {c['removed']:,} to "
                   f"remove, {c['skipped']:,} skipped, {c['unchanged']:,} unchanged.")
            return RunResult("succeeded", c, msg)
        summary = (f"{c['sent']:,} sent: {c['accepted']:,} accepted, {c['rejected']:,} rejected"
                   + (f", {c['pending']:,} still pending at the vendor" if c["pending"] else "")
                   + f"; {c['skipped']:,} skipped; {c['unchanged']:,} unchanged.")
        if isinstance(error, runner.RunCancelled):   # a cancel that stopped a rate-limit wait (issue 13)
            error, self.stopped_by_cancel = None, True
        if getattr(error, "budget_exhausted", False):   # the vendor throttles longer than the run may wait
            return RunResult("partially_succeeded", c, f"Paused: {error.user_message} {summary} "
                             "Resume the run then to continue from here.")
        if error is not None:
            text = getattr(error, "user_message", None) or f"{type(error).__name__}: {error}"
            return RunResult("failed", c, f"The run stopped: {text} {summary} The next run continues from here.")
        if self.stopped_by_cancel:
            return RunResult("cancelled", c, "Cancelled. " + summary + " The next run continues from here.")
        if c["rejected"] or c["pending"]:
            status = "partially_succeeded" if c["accepted"] or c["unchanged"] else "failed"
            return RunResult(status, c, summary + " Rejected contacts are retried by the next run or by Retry failed.")
        return RunResult("succeeded", c, summary)



class _EmailCheck:
    """sync.email_problem with the per-domain part of its fast path remembered: an export's contacts
    share few domains, and the special-use suffix test was the costliest step per contact. Same
    verdicts: anything the fast path does not accept goes to sync.email_problem."""

    MAX_DOMAINS = 100_000

    def __init__(self) -> None:
        self._domain_ok: dict[str, bool] = {}
        self._match = sync._FAST_EMAIL.match

    def _domain_fine(self, domain: str) -> bool:
        ok = self._domain_ok.get(domain)
        if ok is None:
            ok = len(domain) <= 253 and "--" not in domain and not any(
                domain == s or domain.endswith("." + s) for s in sync._SPECIAL_USE)
            if len(self._domain_ok) >= self.MAX_DOMAINS:
                self._domain_ok.clear()
            self._domain_ok[domain] = ok
        return ok

    def problem(self, email: str | None, pattern_ok: bool = False) -> str | None:
        """pattern_ok: the caller already matched sync._FAST_EMAIL (e.g. in SQL)."""
        if email and len(email) <= sync.EMAIL_MAX_CHARS and (pattern_ok or self._match(email)):
            local, _, domain = email.rpartition("@")
            if len(local) <= 64 and self._domain_fine(domain):
                return None
        return sync.email_problem(email)


PLAN_DIR = "export-plan"          # next to the database (its folder is private, files 0600: customer data)
PLAN_FILE_ROW_GROUP = 20_000     # rows per Parquet row group: what the run holds decoded at a time


def _plan_dir(db) -> Path:
    return Path(db.path).parent / PLAN_DIR


def _remove_stale_plan_files(db, export_id: int) -> None:
    for path in _plan_dir(db).glob(f"export-{int(export_id)}-run-*.parquet"):
        path.unlink(missing_ok=True)


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _from(source: tuple) -> tuple[str, list]:
    """(FROM-clause text, params) reading a plan source: a temp table, a plan file or the plan query."""
    if source[0] == "table":
        return source[1], []
    if source[0] == "file":
        return f"read_parquet({_sql_string(source[1])})", []
    return f"({source[1]})", list(source[2])


def _file_batches(path: str) -> Iterator:
    """A plan file's rows as Arrow record batches of at most FETCH_ROWS, one row group decoded at a time
    (iter_batches read ahead and held ~60 MB of Arrow for a 1 M plan; this ~2 MB)."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as pf:
        for i in range(pf.num_row_groups):
            group = pf.read_row_group(i, use_threads=False)
            yield from group.to_batches(max_chunksize=FETCH_ROWS)
            group = None


def _file_rows(path: str) -> Iterator[tuple]:
    """A plan file's rows as tuples (the shape fetchmany gives)."""
    for batch in _file_batches(path):
        yield from zip(*(col.to_pylist() for col in batch.columns))


class _PendingMeta:
    """The plan meta of the contacts handed to the client and not yet in a batch, in stream order: emails and
    actions as lists, customer ids and contact hashes as (Arrow column, picked row positions) chunks."""

    __slots__ = ("emails", "actions", "chunks")

    def __init__(self) -> None:
        self.emails: list = []
        self.actions: list = []
        self.chunks: deque = deque()     # [cid column, hash column, positions picked from them]

    def new_chunk(self, cid_col, hash_col) -> list:
        picked: list[int] = []
        self.chunks.append([cid_col, hash_col, picked])
        return picked

    def _take_columns(self, n: int) -> tuple:
        """The first n pending customer ids and hashes (Arrow arrays; lists for a small plan's chunks), removed from
        the chunks. The last chunk's position list is the one _contacts is still appending to: it is emptied in
        place, never replaced or dropped."""
        cids, hashes = [], []
        while n > 0 and self.chunks:
            cid_col, hash_col, picked = self.chunks[0]
            k = min(n, len(picked))
            if k:
                if isinstance(cid_col, list):   # a small plan's (_RowsBatch)
                    cids.append([cid_col[i] for i in picked[:k]])
                    hashes.append([hash_col[i] for i in picked[:k]])
                elif picked[k - 1] - picked[0] == k - 1:   # consecutive rows (no skips among them): a slice,
                    cids.append(cid_col.slice(picked[0], k))   # no copy, and no pyarrow.compute (its import
                    hashes.append(hash_col.slice(picked[0], k))   # is ~45 ms of a small re-run)
                else:
                    idx = int64_array(picked[:k])
                    cids.append(cid_col.take(idx))
                    hashes.append(hash_col.take(idx))
                del picked[:k]
            n -= k
            if picked or len(self.chunks) == 1:
                break
            self.chunks.popleft()
        return _concat(cids), _concat(hashes)

    def take(self, emails: list[str]) -> BatchMeta:
        """The meta of a batch (its emails in order), removed from what is pending. A client's batches are
        consecutive slices of the stream (connectors.base.batched): then this is a slice; a client that
        reorders is still served, by position lookup."""
        n = len(emails)
        if self.emails[:n] == emails:
            cids, hashes = self._take_columns(n)
            meta = BatchMeta(self.emails[:n], cids, hashes, self.actions[:n])
            del self.emails[:n]
            del self.actions[:n]
            return meta
        total = len(self.emails)
        all_cids, all_hashes = (_pylist(c) for c in self._take_columns(total))
        position = {e: i for i, e in enumerate(self.emails)}
        picked = [position[e] for e in emails]
        meta = BatchMeta(list(emails), [all_cids[i] for i in picked], [all_hashes[i] for i in picked],
                         [self.actions[i] for i in picked])
        rest = sorted(set(range(total)) - set(picked))
        self.emails[:] = [self.emails[i] for i in rest]       # in place: _contacts holds their append methods
        self.actions[:] = [self.actions[i] for i in rest]
        self.chunks.appendleft([[all_cids[i] for i in rest], [all_hashes[i] for i in rest],
                                list(range(len(rest)))])
        return meta


def _concat(arrays: list):
    """One column of the given pieces: Arrow if they all are, else a list (a small plan's, or a reordered batch's)."""
    if arrays and all(is_arrow(a) for a in arrays):
        pa = arrow()
        arrays = [a if a.type == pa.string() else a.cast(pa.string()) for a in arrays]
        return arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)
    return [v for a in arrays for v in _pylist(a)]


def _pylist(column) -> list:
    return column if isinstance(column, list) else column.to_pylist()


class _RowsBatch:
    """A small plan's rows as columns of Python lists, read like an Arrow record batch (`columns`, len)."""

    __slots__ = ("columns",)

    def __init__(self, rows: list[tuple]) -> None:
        self.columns = [list(c) for c in zip(*rows)]

    def __len__(self) -> int:
        return len(self.columns[0]) if self.columns else 0


class _StringColumn:
    """A string column gathered from Python values and Arrow arrays: a list if no piece was Arrow, else one Arrow
    column at the end."""

    __slots__ = ("pieces", "tail")

    def __init__(self) -> None:
        self.pieces: list = []
        self.tail: list = []

    def append(self, value) -> None:
        self.tail.append(value)

    def extend(self, values) -> None:
        if is_arrow(values):
            if self.tail:
                self.pieces.append(string_array(self.tail))
                self.tail = []
            self.pieces.append(values)
        else:
            self.tail.extend(values)

    def column(self):
        if not self.pieces:
            return self.tail
        pa = arrow()
        chunks = []
        for p in self.pieces + ([string_array(self.tail)] if self.tail else []):
            chunks.extend(p.chunks if isinstance(p, pa.ChunkedArray) else [p])
        return pa.chunked_array([c if c.type == pa.string() else c.cast(pa.string()) for c in chunks],
                                type=pa.string())


def _plainly_accepted(outcomes, emails: list) -> bool:
    """One outcome per email, in order, each accepted with nothing reported (the vendor's usual answer)."""
    return (len(outcomes) == len(emails) and len(emails) > 0
            and all(o.email == e and o.status == "accepted" and o.reason is None for o, e in zip(outcomes, emails)))


def _on_record(item: list) -> bool:
    """Is this submission in the database: stored in full (row id) or folded with a marker row."""
    return item[0] is not None or item[7]


def _meta_dict(meta) -> dict:
    return meta.to_dict() if isinstance(meta, BatchMeta) else meta


def _handle(submission) -> dict:
    """A folded submission's vendor handle, without its per-contact lists (a marker row's JSON)."""
    return {"vendor": submission.vendor, "kind": submission.kind, "job_id": submission.job_id,
            "contacts": len(submission.emails)}


def _row_id(ref) -> int | None:
    """A collected submission's stored row id: ref is the id itself (recovered) or the in-flight item."""
    return ref if isinstance(ref, int) else ref[0]


_ACCEPTED_KEY = {sync.ADD: "added", sync.UPDATE: "updated", sync.RETRY: "retried", sync.REMOVE: "removed"}


def _human(seconds: float) -> str:
    s = int(round(seconds))
    if s < 90:
        return f"{s} s"
    if s < 5400:
        return f"{round(s / 60)} min"
    return f"{s / 3600:.1f} h"


def handle(ctx: RunContext) -> RunResult:
    export = repo.get_export(ctx.db, ctx.target_id)
    if export is None:
        return RunResult("failed", {}, "This export no longer exists.")
    if not export["segment_ids"]:
        return RunResult("failed", {}, "This export has no segments. Edit it and pick at least one.")
    try:
        client = make_client(ctx.db, export)
    except Exception as exc:  # connection missing/inactive/unreadable key: say so plainly
        return RunResult("failed", {}, getattr(exc, "user_message", None) or str(exc))
    try:
        runner.listen_to_vendor_waits(ctx, client)   # "Waiting for <vendor>'s rate limit, resumes in N s"
        run = ExportRun(ctx.db, export, client, ctx.run_id, ctx.params, progress=ctx.progress,
                        cancelled=ctx.cancelled)
        return run.execute()
    finally:
        close = getattr(client, "close", None)
        if close:
            close()


runner.register("export", handle)
