"""Runner for kind "enrichment": enrich an enrichment's dataset through the Leadspace bulk API.

A *pass* enriches the whole dataset once; it may take several runs. The first run plans it
(profiles -> distinct normalised company inputs, in chunks of 500) and stores that plan in DuckDB.
Every bulk is persisted around the vendor calls:

    pending --submit_bulk--> submitted(bulk_id) [persisted right after 202] --poll_bulk--> done(result)

so a run that crashed, was cancelled, or ran out of credits (427) stops with a clear message, and
the next run of the enrichment (manual, ``resume_of`` or scheduled refresh) re-polls the submitted
bulk ids instead of resubmitting and skips done companies: a company is never paid for twice in a
pass. Records the vendor refused for credits inside a bulk go back to pending (they were not charged).

Submissions take priority over polls (bulks finish while later ones are being submitted, so most
polls find a finished bulk); the connector's rate limiter keeps everything within the connection's
requests-per-second limit. Tests and the bench set :data:`OPTIONS` (client factory, sleep, clock).
"""
from __future__ import annotations

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
APPLY_EVERY_S = 15.0       # move collected answers into the results table at least this often


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
    from services import connections as connection_service

    opts: dict[str, Any] = {}
    if sleep is not None:
        opts["sleep"] = sleep
    if clock is not None:
        opts["clock"] = clock
    return connection_service.make_client_for(db, enrichment["connection_id"], **opts)


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
    """Records collected bulks on a background thread, so vendor calls never wait for DuckDB.

    Safe to be late: until a bulk is recorded it is still 'submitted' in DuckDB, so after a crash the
    next run polls it again (the vendor keeps results) instead of paying for its companies again.
    """

    def __init__(self, db, pass_id: int, min_confidence: str):
        self.db, self.pass_id, self.min_confidence = db, pass_id, min_confidence
        self._writer = OrderedWriter(f"enrichment-writer-{pass_id}", max_waiting=64)

    def put(self, bulk_id: str, results: list, keys: list[str], missing_pending: bool = False,
            rows: list[dict] | None = None) -> None:
        def write() -> None:
            written = rows if rows is not None else [_result_row(r, self.min_confidence) for r in results]
            repo.record_bulk_results(self.db, self.pass_id, bulk_id, written, keys, missing_pending=missing_pending)

        self._writer.submit(write)

    def close(self) -> None:
        """Write everything queued, stop the thread, re-raise a write error."""
        try:
            self._writer.wait()
        finally:
            self._writer.close()


class _PassRun:
    """One run working on an open pass."""

    def __init__(self, ctx: RunContext, enrichment: dict, pass_id: int, client, opts: RunOptions,
                 plan: repo.Plan | None = None):
        self.ctx, self.db, self.enrichment, self.pass_id, self.client, self.opts = (
            ctx, ctx.db, enrichment, pass_id, client, opts)
        self.plan = plan
        self.clock = opts.clock or time.time
        self.sleep = opts.sleep or time.sleep
        self.min_confidence = enrichment["config"].min_confidence
        self.sent = 0            # companies submitted by this run (what this run may be charged for)
        self.answered = 0        # companies answered in this run
        self.bulk_calls = 0
        self.repolled = 0        # bulks submitted by an earlier run and collected by this one
        self.started = self.clock()
        self.last_apply = self.started
        self._last_credits_error: BaseException | None = None
        counts = repo.pass_counts(self.db, pass_id)
        self.total = counts["companies"]
        self.done_at_start = counts["companies_done"]

    # -------------------------------------------------------------- progress
    def _progress(self, force: bool = False) -> None:
        done = self.done_at_start + self.answered
        left = max(0, self.total - done)
        elapsed = self.clock() - self.started
        if self.answered and elapsed > 0:
            seconds_left = left / (self.answered / elapsed)
        else:
            seconds_left = core.estimate(left).seconds
        message = (f"{done:,} of {self.total:,} companies answered · {self.sent:,} sent in this run · "
                   + (f"{core.human_duration(seconds_left)} left" if left else "finishing"))
        self.ctx.progress(done, self.total, message, force=force)

    def _chunks(self):
        """(chunk_no, [(key, parts)]) still to send: from the fresh plan in memory, else from DuckDB."""
        if self.plan is not None:
            keys = list(self.plan.companies)
            for i in range(0, len(keys), core.BULK_SIZE):
                yield i // core.BULK_SIZE, [(k, self.plan.companies[k]) for k in keys[i:i + core.BULK_SIZE]]
            return
        for chunk_no in repo.pending_chunks(self.db, self.pass_id):
            yield chunk_no, repo.chunk_inputs(self.db, self.pass_id, chunk_no)

    def apply(self) -> None:
        repo.apply_results(self.db, self.enrichment, self.pass_id, self.ctx.run_id)
        self.last_apply = self.clock()

    # -------------------------------------------------------------- the loop
    def execute(self) -> tuple[str, str | None]:
        """Returns (stop_reason, message): done | cancelled | credits | error."""
        from connectors.errors import InsufficientCreditsError

        self.writer = _ResultWriter(self.db, self.pass_id, self.min_confidence)
        try:
            return self._execute()
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
        chunks = self._chunks()
        next_chunk = next(chunks, None)
        credits_error: BaseException | None = None
        self._progress(force=True)
        while True:
            if next_chunk is not None and credits_error is None and len(in_flight) < opts.max_in_flight:
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
                next_chunk = next(chunks, None)
                continue
            if not in_flight:
                break
            head = in_flight[0]
            now = self.clock()
            if now < head[1]:
                if self.ctx.cancelled():
                    return "cancelled", None
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
            if self.clock() - self.last_apply >= APPLY_EVERY_S:
                self.apply()        # results become visible while a long run goes on
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
            plan = repo.plan(db, config, enrichment["id"])
        except ValueError as exc:
            return RunResult("failed", {}, str(exc))
        repo.create_pass(db, ctx.run_id, enrichment["id"], config, plan)
        pass_id, resumed = ctx.run_id, False
    else:
        pass_id, resumed, plan = int(open_pass["id"]), True, None
    with db.transaction() as cur:
        repo.update(cur, enrichment["id"], last_run_id=ctx.run_id)
    try:
        factory = opts.client_factory or _default_client
        client = factory(db, enrichment, opts.sleep, opts.clock)
    except Exception as exc:  # ConnectionUnavailableError and friends carry a plain message
        return RunResult("failed", {"pass_id": pass_id}, _user_message(exc))
    work = _PassRun(ctx, enrichment, pass_id, client, opts, plan)
    try:
        stop, message = work.execute()
    except Exception as exc:
        from connectors.errors import ConnectorError
        if not isinstance(exc, ConnectorError):
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
