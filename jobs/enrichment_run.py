"""Runner for kind "enrichment": enrich an enrichment's dataset through the Leadspace bulk API.

A *pass* enriches the whole dataset once; it may take several runs. The first run starts it and plans it
(profiles -> distinct normalised company inputs, keys computed in DuckDB) on a background thread in
growing batches (repo.plan_batch) while the chunks planned so far are already being sent: the first bulk
goes out a fraction of a second after the run starts. The planner stays a little ahead of the sender,
and a run that stops mid-plan leaves planned_through, so the next one continues planning there.
Every bulk is persisted around the vendor calls:

    pending --submit_bulk--> submitted(bulk_id) [persisted right after 202] --poll_bulk--> done(result)

so a run that crashed, was cancelled, or ran out of credits (427) stops with a clear message, and
the next run of the enrichment (manual, ``resume_of`` or scheduled refresh) re-polls the submitted
bulk ids instead of resubmitting and skips done companies: a company is never paid for twice in a
pass. Records the vendor refused for credits inside a bulk go back to pending (they were not charged).

Submissions take priority over polls (bulks finish while later ones are being submitted, so most
polls find a finished bulk); the connector's rate limiter keeps everything within the connection's
requests-per-second limit. Collected answers are recorded and folded into the results table / review
queue on a writer thread as the run goes (the vendor phase is rate-bound, so the CPU is free then).

A crash in the milliseconds between Leadspace accepting a bulk (202) and its id being stored re-sends
that bulk on resume: the Leadspace contract has no way to find a bulk again without its id (see
connectors/leadspace.py, "Exactly-once submission").

Tests and the bench set :data:`OPTIONS` (client factory, sleep, clock).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from core import enrichment as core
from jobs import runner
from jobs.background import OrderedWriter
from jobs.runner import RunContext, RunResult
from storage import enrichment as repo

KIND = "enrichment"
CANCEL_CHECK_S = 0.5       # longest sleep between cancel checks
APPLY_EVERY_S = 0.5        # fold recorded answers into the results table this often (on the writer thread)
CHUNKS_PER_READ = 20       # work items are read from DuckDB this many chunks at a time (the first: one)
PLAN_AHEAD = 16_000        # the planner pauses while this many planned companies are not read yet (so it
                           # does not compete for the CPU with the first burst of submissions)


@dataclass
class RunOptions:
    # client_factory(db, enrichment_row, sleep, clock) -> Leadspace client; None = the stored connection
    client_factory: Callable[..., Any] | None = None
    sleep: Callable[[float], None] | None = None    # None = time.sleep (and the client's default)
    clock: Callable[[], float] | None = None        # None = time.time
    first_poll_s: float = 1.0                       # first results poll this long after submitting
    poll_interval_s: float = 1.0                    # then growing by 1.5x up to max_poll_interval_s
    max_poll_interval_s: float = 10.0
    max_in_flight: int = 400                        # bulks submitted and not yet collected
    max_bulk_wait_s: float = 3600.0                 # a bulk still processing after this fails the run


OPTIONS = RunOptions()


def _default_client(db, enrichment: dict, sleep, clock):
    from jobs.clients import make_client_for

    opts: dict[str, Any] = {}
    if sleep is not None:
        opts["sleep"] = sleep
    if clock is not None:
        opts["clock"] = clock
    return make_client_for(db, enrichment["connection_id"], **opts)


def _company_input(key: str, parts: tuple):
    from connectors.leadspace import CompanyInput

    return CompanyInput(key, *parts)


def _result_row(result, min_confidence: str) -> dict:
    return repo.result_row(str(result.external_id), result.status, result.confidence,
                           core.classify(result.status, result.confidence, min_confidence), result.reason,
                           result.company)


def _user_message(exc: BaseException) -> str:
    return getattr(exc, "user_message", None) or str(exc) or type(exc).__name__


class _ResultWriter:
    """Records collected bulks on a background thread, so vendor calls never wait for DuckDB, and folds
    them into the results table / review queue as it goes (``apply``, at most every ``apply_every_s``):
    the vendor phase is rate-bound, so this costs no wall time and the end of the run has little left.

    Safe to be late: until a bulk is recorded it is still 'submitted' in DuckDB, so after a crash the
    next run polls it again (the vendor keeps results) instead of paying for its companies again; a
    recorded bulk not applied yet is applied by the next apply (of this run or the next one).
    """

    def __init__(self, db, pass_id: int, min_confidence: str, apply: Callable[[], None] | None = None,
                 apply_every_s: float = APPLY_EVERY_S, clock: Callable[[], float] = time.time):
        self.db, self.pass_id, self.min_confidence = db, pass_id, min_confidence
        self._apply, self._apply_every_s, self._clock = apply, apply_every_s, clock
        self._last_apply = clock()
        self._writer = OrderedWriter(f"enrichment-writer-{pass_id}", max_waiting=64)

    def put(self, bulk_id: str, results: list, keys: list[str], missing_pending: bool = False,
            rows: list[dict] | None = None) -> None:
        def write() -> None:
            written = rows if rows is not None else [_result_row(r, self.min_confidence) for r in results]
            repo.record_bulk_results(self.db, self.pass_id, bulk_id, written, keys, missing_pending=missing_pending)
            if self._apply is not None and self._clock() - self._last_apply >= self._apply_every_s:
                self._apply()
                self._last_apply = self._clock()

        self._writer.submit(write)

    def close(self) -> None:
        """Write everything queued, stop the thread, re-raise a write error."""
        try:
            self._writer.wait()
        finally:
            self._writer.close()


class _Planner:
    """Plans the rest of an open pass on a background thread, batch by batch (repo.plan_batch, growing
    batches), while the run already sends the chunks planned so far. Publishes how many companies are
    planned; stops at a batch boundary when asked (the next run continues after planned_through)."""

    def __init__(self, db, pass_id: int, enrichment: dict, companies: int):
        self.db, self.pass_id, self.enrichment = db, pass_id, enrichment
        self.companies, self.done = companies, False
        self.error: BaseException | None = None
        self.read = 0           # companies of the chunks the run has read so far
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"enrichment-planner-{pass_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for n, size in enumerate(repo.plan_batch_sizes()):
                with self._cond:    # (after the first two batches) stay ahead of the sender, not far ahead
                    while n >= 2 and not self._stop and self.companies - self.read > PLAN_AHEAD:
                        self._cond.wait(CANCEL_CHECK_S)
                if self._stop:
                    return
                companies, done = repo.plan_batch(self.db, self.pass_id, self.enrichment["id"],
                                                  self.enrichment["config"], size)
                with self._cond:
                    self.companies, self.done = companies, done
                    self._cond.notify_all()
                if done:
                    return
        except BaseException as exc:  # handed to the run's thread
            with self._cond:
                self.error = exc
                self._cond.notify_all()

    def state(self) -> tuple[int, bool]:
        """(companies planned, planned completely); re-raises a planning error."""
        with self._cond:
            if self.error is not None:
                raise self.error
            return self.companies, self.done

    def wait(self, timeout: float) -> None:
        """Until the next batch is planned (or timeout seconds)."""
        with self._cond:
            if not self.done and self.error is None:
                self._cond.wait(timeout)

    def note_read(self, chunks: int) -> None:
        """The run has read the chunks below `chunks`."""
        with self._cond:
            self.read = chunks * core.BULK_SIZE
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join()


_WAIT = object()   # the next chunk is not planned yet


class _PassRun:
    """One run working on an open pass."""

    def __init__(self, ctx: RunContext, enrichment: dict, pass_id: int, client, opts: RunOptions):
        self.ctx, self.db, self.enrichment, self.pass_id, self.client, self.opts = (
            ctx, ctx.db, enrichment, pass_id, client, opts)
        self.clock = opts.clock or time.time
        self.sleep = opts.sleep or time.sleep
        self.min_confidence = enrichment["config"].min_confidence
        self.sent = 0            # companies submitted by this run (what this run may be charged for)
        self.answered = 0        # companies answered in this run
        self.bulk_calls = 0
        self.repolled = 0        # bulks submitted by an earlier run and collected by this one
        self.started = self.clock()
        self._last_credits_error: BaseException | None = None
        counts = repo.pass_counts(self.db, pass_id)
        self.total = counts["companies"]
        self.done_at_start = counts["companies_done"]
        self.planner: _Planner | None = None
        self._planned = counts["planned"]
        self._next_chunk_no = 0          # chunks below this were read already
        self._read_step = 1              # the first read is a single chunk: the first bulk goes out at once
        self._buffer: deque = deque()

    # -------------------------------------------------------------- progress
    def _progress(self, force: bool = False) -> None:
        done = self.done_at_start + self.answered
        left = max(0, self.total - done)
        elapsed = self.clock() - self.started
        if self.answered and elapsed > 0:
            seconds_left = left / (self.answered / elapsed)
        else:
            seconds_left = core.estimate(left).seconds
        if self.planner is not None and not self.planner.done:
            # the total grows while the plan is streamed: no "x of y" or time left until it is known
            message = (f"Planning: {self.total:,} companies found so far · {done:,} answered · "
                       f"{self.sent:,} sent in this run")
        else:
            message = (f"{done:,} of {self.total:,} companies answered · {self.sent:,} sent in this run · "
                       + (f"{core.human_duration(seconds_left)} left" if left else "finishing"))
        self.ctx.progress(done, self.total, message, force=force)

    def _next_chunk(self):
        """The next (chunk_no, [(key, parts)]) to send, read from the stored plan a few chunks at a time;
        _WAIT while the planner has not completed it yet; None when there is nothing more to send."""
        while not self._buffer:
            if self.planner is not None:
                companies, final = self.planner.state()
                self.total = companies
            else:
                companies, final = self.total, True
            # a chunk can be sent once it is full, or once the plan is complete
            ready = -(-companies // core.BULK_SIZE) if final else companies // core.BULK_SIZE
            lo = self._next_chunk_no
            if lo >= ready:
                return None if final else _WAIT
            top = min(ready - 1, lo + self._read_step - 1)
            self._buffer.extend(repo.pending_work(self.db, self.pass_id, lo, top))
            self._next_chunk_no, self._read_step = top + 1, CHUNKS_PER_READ
            if self.planner is not None:
                self.planner.note_read(self._next_chunk_no)
        return self._buffer.popleft()

    def apply(self) -> None:
        """Fold recorded answers into the results table and review queue (a no-op until the pass is
        planned completely)."""
        repo.apply_results(self.db, self.enrichment, self.pass_id, self.ctx.run_id)

    # -------------------------------------------------------------- the loop
    def execute(self) -> tuple[str, str | None]:
        """Returns (stop_reason, message): done | cancelled | credits | error."""
        self.writer = _ResultWriter(self.db, self.pass_id, self.min_confidence, apply=self.apply, clock=self.clock)
        if not self._planned:
            self.planner = _Planner(self.db, self.pass_id, self.enrichment, self.total)
        try:
            return self._execute()
        finally:
            try:
                if self.planner is not None:
                    self.planner.stop()
            finally:
                self.writer.close()

    def _execute(self) -> tuple[str, str | None]:
        from connectors.errors import InsufficientCreditsError

        opts = self.opts
        now = self.clock()
        # Bulks submitted by an earlier run: poll them first, never resubmit.
        in_flight: deque[list] = deque(
            [bulk_id, now, opts.poll_interval_s, now, keys] for bulk_id, keys in repo.submitted_bulks(self.db, self.pass_id))
        self.repolled = len(in_flight)
        next_chunk = self._next_chunk()
        credits_error: BaseException | None = None
        self._progress(force=True)
        while True:
            if next_chunk is _WAIT:
                next_chunk = self._next_chunk()
            sendable = next_chunk is not None and next_chunk is not _WAIT and credits_error is None
            if sendable and len(in_flight) < opts.max_in_flight:
                if self.ctx.cancelled():        # before spending: checked before every submission
                    return "cancelled", None
                chunk_no, items = next_chunk
                if items:
                    try:
                        bulk_id = self.client.submit_bulk([_company_input(k, parts) for k, parts in items])
                    except InsufficientCreditsError as exc:
                        credits_error = exc
                        continue
                    keys = [k for k, _ in items]
                    repo.mark_submitted(self.db, self.pass_id, chunk_no, keys, bulk_id, self.ctx.run_id)
                    self.bulk_calls += 1
                    self.sent += len(items)
                    t = self.clock()
                    in_flight.append([bulk_id, t + opts.first_poll_s, opts.poll_interval_s, t, keys])
                    self._progress()
                next_chunk = self._next_chunk()
                continue
            planning = next_chunk is _WAIT and credits_error is None
            if not in_flight:
                if not planning:
                    break
                if self.ctx.cancelled():
                    return "cancelled", None
                self.planner.wait(CANCEL_CHECK_S)
                continue
            head = in_flight[0]
            now = self.clock()
            if now < head[1]:
                if self.ctx.cancelled():
                    return "cancelled", None
                if planning:    # wake up as soon as the next chunk is planned
                    self.planner.wait(min(head[1] - now, CANCEL_CHECK_S))
                else:
                    self.sleep(min(head[1] - now, CANCEL_CHECK_S))
                continue
            outcome = self._collect(head)
            if outcome == "waiting":
                if self.clock() - head[3] > opts.max_bulk_wait_s:
                    return "error", ("Leadspace is still processing a bulk after a long time. Run the enrichment "
                                     "again later: it collects the results without sending the companies again.")
                head[1] = self.clock() + head[2]
                head[2] = min(opts.max_poll_interval_s, head[2] * 1.5)
                continue
            in_flight.popleft()
            if outcome == "credits" and credits_error is None:
                credits_error = self._last_credits_error
            self._progress()
        if credits_error is not None:
            return "credits", _user_message(credits_error)
        return "done", None

    def _collect(self, head: list) -> str:
        """Poll one bulk; queue its answers for recording. Returns waiting | done | credits."""
        from connectors.errors import InsufficientCreditsError, VendorError

        bulk_id, keys = head[0], head[4]
        try:
            results = self.client.poll_bulk(bulk_id)
        except InsufficientCreditsError as exc:
            self._last_credits_error = exc
            partial = list(getattr(exc, "partial_results", None) or [])
            # Records refused for credits inside the bulk were not charged: they become pending again.
            self.writer.put(bulk_id, partial, keys, missing_pending=True)
            wanted = set(keys)
            self.answered += len({str(r.external_id) for r in partial} & wanted)
            return "credits"
        except VendorError as exc:
            if getattr(exc, "status", None) != 404:
                raise
            # The vendor forgot this bulk: its companies end as errors (a later pass retries them)
            # rather than being paid for again inside this pass.
            rows = [repo.result_row(k, "error", None, "error", "Leadspace no longer had this bulk's results.", None)
                    for k in keys]
            self.writer.put(bulk_id, [], keys, rows=rows)
            self.answered += len(keys)
            return "done"
        if results is None:
            return "waiting"
        self.writer.put(bulk_id, results, keys)
        self.answered += len(keys)
        return "done"

    def counts(self) -> dict:
        c = repo.pass_counts(self.db, self.pass_id)
        c.update(pass_id=self.pass_id, sent_this_run=self.sent, bulk_calls=self.bulk_calls,
                 bulks_repolled=self.repolled, companies_answered_this_run=self.answered)
        return c


def _summary(counts: dict) -> str:
    valid = counts["profiles"] - counts["skipped_recent"] - counts["invalid_input"]
    rate = f" ({counts['enriched'] / valid:.0%} match rate)" if valid > 0 else ""
    parts = [f"Enriched {counts['enriched']:,} of {counts['profiles']:,} profiles{rate}."]
    extra = []
    for key, label in (("below_threshold", "below the confidence threshold (to review)"),
                       ("not_matched", "not matched"), ("invalid_input", "without a company name"),
                       ("error", "with errors"), ("skipped_recent", "skipped (enriched recently)")):
        if counts.get(key):
            extra.append(f"{counts[key]:,} {label}")
    if extra:
        parts.append("; ".join(extra).capitalize() + ".")
    return " ".join(parts)


def handle(ctx: RunContext) -> RunResult:
    db = ctx.db
    opts = OPTIONS
    enrichment = repo.get(db, ctx.target_id) if ctx.target_id is not None else None
    if enrichment is None:
        return RunResult("failed", {}, "This enrichment no longer exists.")
    if not enrichment["active"]:
        return RunResult("skipped", {}, "The enrichment is inactive. Activate it to run it.")
    config = enrichment["config"]
    open_pass = repo.open_pass(db, enrichment["id"])
    if open_pass is None:
        try:
            repo.start_pass(db, ctx.run_id, enrichment["id"], config)   # planned by the run as it sends
        except ValueError as exc:
            return RunResult("failed", {}, str(exc))
        pass_id, resumed = ctx.run_id, False
    else:
        pass_id, resumed = int(open_pass["id"]), True
    with db.transaction() as cur:
        repo.update(cur, enrichment["id"], last_run_id=ctx.run_id)
    try:
        factory = opts.client_factory or _default_client
        client = factory(db, enrichment, opts.sleep, opts.clock)
    except Exception as exc:  # ConnectionUnavailableError and friends carry a plain message
        return RunResult("failed", {"pass_id": pass_id}, _user_message(exc))
    runner.listen_to_vendor_waits(ctx, client)   # "Waiting for Leadspace's rate limit, resumes in N s"
    work = _PassRun(ctx, enrichment, pass_id, client, opts)
    try:
        stop, message = work.execute()
    except Exception as exc:
        from connectors.errors import ConnectorError
        if not isinstance(exc, (ConnectorError, ValueError)):   # ValueError: the dataset cannot be planned
            raise
        stop, message = "error", _user_message(exc)
    finally:
        close = getattr(client, "close", None)
        if close is not None:
            close()
    work.apply()
    work._progress(force=True)
    counts = work.counts()
    counts["resumed"] = resumed
    continues = (" The next run continues where this one stopped, without sending the "
                 f"{counts['companies_done']:,} companies already answered again.")
    if stop == "cancelled":
        return RunResult("cancelled", counts, f"Cancelled after {work.answered:,} companies in this run." + continues)
    if stop in ("credits", "error"):
        status = "partially_succeeded" if work.answered else "failed"
        return RunResult(status, counts, (message or "The run stopped.") + continues)
    with db.transaction() as cur:
        repo.finish_pass(cur, pass_id, enrichment["id"], ctx.run_id)
    status = "partially_succeeded" if counts["error"] else "succeeded"
    return RunResult(status, counts, _summary(counts))


runner.register(KIND, handle)
