"""Many Omnisend batches' state in one request: GET /api/batches (the listing), for OmnisendClient.collect.

API
---
BatchListing(http, on_error, *, clock, page_size=250, max_pages=4, misses_before_direct=3,
             empty_refreshes_before_off=5)
    .track(batch_id)               a batch this client submitted (POST /api/batches answered 201)
    .forget(batch_id)              collected: drop its state
    .tracks(batch_id) -> bool      listed for this batch: submitted by this client, listing usable, and not
                                   missing from the listing for `misses_before_direct` refreshes
    .state(batch_id) -> dict|None  the Batch object (status, totalCount, finishedCount, errorsCount) the last
                                   listing showed for it
    .refresh()                     one listing pass (1..max_pages requests) updating every tracked batch
    .enabled                       False once the listing answered 400/404/405/422/501: per-batch polling for
                                   the rest of the run (the client's own fallback)
    .requests                      listing requests made (bench/tests)
all_accepted(state, items_sent) -> bool
    finished, errorsCount 0 and finishedCount == totalCount == items_sent: every item accepted, so reading
    the batch's items would tell nothing more.

Why: at 100 contacts a batch, polling each batch's items doubles the requests (POST + GET per batch).
The listing carries status and counts for up to 250 batches; the items are read only for a finished batch
with errors (or whose counts do not add up), so per-contact outcomes stay exact.

Robust to what the spec leaves open:
- order is unspecified: a pass reads pages from a remembered offset (where our oldest uncollected batch was
  last seen) until every tracked batch is seen or the pages end, then wraps to offset 0; at most
  `max_pages` pages a pass (another pass continues where this one stopped). An oldest-first listing with
  a long history before our batches (earlier runs that day) is searched for its tail (gallop + bisect,
  O(log n) requests once a run) instead of read page by page;
- a server whose pages are smaller than the limit asked for (paging.limit, or a short page with paging.next)
  sets the page size, so a short page still means the end of the listing;
- other batches of the account are ignored; `dateFrom` is the day before our oldest tracked batch (UTC;
  the spec gives days, not times, and the brand's time zone may be ahead of or behind UTC);
- a batch missing from `misses_before_direct` passes is polled directly by the client; a listing that has
  shown none of our batches for `empty_refreshes_before_off` passes in a row is switched off.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from connectors.errors import ConnectorError
from connectors.http import HttpClient, get_logger

log = get_logger("connectors.omnisend")

LIST_PAGE_MAX = 250                  # GET /api/batches limit maximum (spec: 1-250)
LIST_PAGES_PER_REFRESH = 4           # bound on one pass, so a long account history costs little per collect
MISSES_BEFORE_DIRECT = 3             # passes a tracked batch may be missing before it is polled directly
EMPTY_REFRESHES_BEFORE_OFF = 5       # passes showing none of our batches before the listing is given up
UNSUPPORTED_STATUSES = frozenset({400, 404, 405, 422, 501})   # the listing is not there (or not like this)
DAY_S = 86_400.0


def _oldest_first(batches: list) -> bool:
    """The page reads oldest first (createdAt not decreasing; RFC 3339 UTC strings compare as times)."""
    first, last = batches[0], batches[-1]
    if not (isinstance(first, dict) and isinstance(last, dict)):
        return False
    a, b = first.get("createdAt"), last.get("createdAt")
    return isinstance(a, str) and isinstance(b, str) and a <= b


def all_accepted(state: dict | None, items_sent: int) -> bool:
    """True when the listed Batch proves every item was accepted (finished, no errors, counts add up)."""
    if not isinstance(state, dict) or state.get("status") != "finished":
        return False
    total, finished, errors = state.get("totalCount"), state.get("finishedCount"), state.get("errorsCount")
    return errors == 0 and total == items_sent and finished == total


class BatchListing:
    def __init__(self, http: HttpClient, on_error: Callable[[Any], ConnectorError | None], *,
                 clock: Callable[[], float] = time.time, page_size: int = LIST_PAGE_MAX,
                 max_pages: int = LIST_PAGES_PER_REFRESH, misses_before_direct: int = MISSES_BEFORE_DIRECT,
                 empty_refreshes_before_off: int = EMPTY_REFRESHES_BEFORE_OFF) -> None:
        self.http = http
        self.on_error = on_error
        self.clock = clock
        self.page_size = max(1, min(page_size, LIST_PAGE_MAX))
        self.max_pages = max(1, max_pages)
        self.misses_before_direct = misses_before_direct
        self.empty_refreshes_before_off = empty_refreshes_before_off
        self.enabled = True
        self.requests = 0
        self._tracked: dict[str, float] = {}        # batch id -> when we submitted it (clock)
        self._states: dict[str, dict] = {}          # batch id -> last listed Batch object
        self._misses: dict[str, int] = {}
        self._empty_refreshes = 0
        self._offset = 0                            # where the next pass starts reading
        self._first_found: int | None = None        # lowest offset of one of ours in the current pass

    # ------------------------------------------------------------ bookkeeping
    def track(self, batch_id: str) -> None:
        if self.enabled:
            self._tracked[batch_id] = self.clock()

    def forget(self, batch_id: str) -> None:
        self._tracked.pop(batch_id, None)
        self._states.pop(batch_id, None)
        self._misses.pop(batch_id, None)

    def tracks(self, batch_id: str) -> bool:
        return (self.enabled and batch_id in self._tracked
                and self._misses.get(batch_id, 0) < self.misses_before_direct)

    def state(self, batch_id: str) -> dict | None:
        return self._states.get(batch_id)

    # ------------------------------------------------------------ one pass
    def refresh(self) -> None:
        """Read listing pages until every tracked batch without a final state is seen, the pages end
        (then once more from offset 0), or max_pages pages were read. A full page of older batches none of
        ours, in oldest-first order, sends the pass to the listing's tail (see _find_tail)."""
        want = {b for b in self._tracked if (self._states.get(b) or {}).get("status") not in ("finished", "stopped")}
        if not want or not self.enabled:
            return
        date_from = time.strftime("%Y-%m-%d", time.gmtime(min(self._tracked[b] for b in want) - DAY_S))
        offset = self._offset
        wrapped = offset == 0            # reading from 0: the end of the listing ends the pass
        stop_at = offset or None         # reading from further on: wrap to 0 and stop when back here
        pages, galloped, seen_any = 0, False, False
        self._first_found = None
        while want and pages < self.max_pages:
            batches = self._page(offset, date_from)
            if batches is None:          # listing unsupported: switched off, the client polls directly
                return
            pages += 1
            found = self._absorb(batches, offset, want)
            seen_any = seen_any or found
            if not found and not galloped and len(batches) == self.page_size and _oldest_first(batches):
                galloped = True      # ours are newer than this whole page: they are at the tail
                total = self._find_tail(offset, date_from, want)
                if total is None:
                    return
                seen_any = seen_any or self._first_found is not None
                # ours are among the newest: read on from the last max(page, ours) batches to the end
                offset = max(0, total - max(self.page_size, len(self._tracked)))
                wrapped, stop_at = True, None
                continue
            if len(batches) < self.page_size:      # the end of the listing
                if wrapped:
                    break
                offset, wrapped = 0, True
                continue
            offset += len(batches)
            if wrapped and stop_at is not None and offset >= stop_at:   # came round to where the pass began
                break
        # next pass: from our oldest batch seen (oldest-first listings keep it there; newest-first ones have
        # ours near 0), or where this pass stopped when it saw none of ours
        capped = bool(want) and pages >= self.max_pages
        self._offset = self._first_found if self._first_found is not None else (offset if capped else 0)
        for bid in want:
            self._misses[bid] = self._misses.get(bid, 0) + 1
        self._empty_refreshes = 0 if seen_any else self._empty_refreshes + 1
        if self._empty_refreshes >= self.empty_refreshes_before_off:
            self._switch_off("it showed none of our batches")

    def _absorb(self, batches: list, offset: int, want: set[str]) -> bool:
        """Keep the states of our batches on a page; True when it had any."""
        found = False
        for i, b in enumerate(batches):
            bid = b.get("batchID") if isinstance(b, dict) else None
            if bid in self._tracked:
                self._states[bid] = b
                self._misses.pop(bid, None)
                want.discard(bid)
                found = True
                if self._first_found is None or offset + i < self._first_found:
                    self._first_found = offset + i
        return found

    def _find_tail(self, lo: int, date_from: str, want: set[str]) -> int | None:
        """How many batches the listing has, given that the page at `lo` is full: gallop (lo + 1, 2, 4 ...
        pages) to a page that is not full, then bisect; O(log n) requests for n batches of the day, once
        per run (later passes start at our batches). Every page read is absorbed. None: listing switched off."""
        step, hi = self.page_size, None
        while hi is None:
            probe = lo + step
            batches = self._page(probe, date_from)
            if batches is None:
                return None
            self._absorb(batches, probe, want)
            if len(batches) == self.page_size:
                lo, step = probe, step * 2
            elif batches:
                return probe + len(batches)          # the last page
            else:
                hi = probe
        while hi - lo > self.page_size:
            mid = (lo + hi) // 2
            batches = self._page(mid, date_from)
            if batches is None:
                return None
            self._absorb(batches, mid, want)
            if len(batches) == self.page_size:
                lo = mid
            elif batches:
                return mid + len(batches)
            else:
                hi = mid
        return lo + self.page_size    # full at lo, empty at lo + size or before: lo's page is the last

    def _page(self, offset: int, date_from: str) -> list | None:
        params = {"endpoint": "contacts", "limit": self.page_size, "offset": offset, "dateFrom": date_from}
        self.requests += 1
        try:
            resp = self.http.get("/api/batches", params=params, on_error=self.on_error)
        except ConnectorError as exc:
            if exc.status in UNSUPPORTED_STATUSES:
                self._switch_off(f"it answered HTTP {exc.status}")
                return None
            raise
        body = self.http.json(resp)
        batches = body.get("batches") if isinstance(body, dict) else None
        if not isinstance(batches, list):
            self._switch_off("its answer had no batches list")
            return None
        # a server with a smaller page than we asked for: its page size, so a short page still means the end
        paging = body.get("paging") if isinstance(body.get("paging"), dict) else {}
        limit = paging.get("limit")
        if isinstance(limit, int) and not isinstance(limit, bool) and 1 <= limit < self.page_size:
            self.page_size = limit
        elif paging.get("next") and 0 < len(batches) < self.page_size:
            self.page_size = len(batches)
        return batches

    def _switch_off(self, why: str) -> None:
        log.info("omnisend: batch listing not used for the rest of this run (%s); polling each batch", why)
        self.enabled = False
        self._tracked.clear()
        self._states.clear()
        self._misses.clear()
