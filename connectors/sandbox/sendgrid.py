"""SendGrid Marketing Campaigns emulator (lists, contacts upsert jobs, search, list removal).

Routes: GET /v3/scopes; GET/POST /v3/marketing/lists (paged: page_size 1..1000, page_token, _metadata.next;
max 1000 lists); GET/DELETE /v3/marketing/lists/{id}; PUT /v3/marketing/contacts (202 {job_id});
GET /v3/marketing/contacts/imports/{id}; GET /_sandbox/sendgrid/errors/{id}.csv (errors_url, `email,error`);
POST /v3/marketing/contacts/search/emails (<=100 emails, each <=100 chars); DELETE
/v3/marketing/lists/{id}/contacts?contact_ids=... (202 {job_id}, contacts are kept).

Validation choice (speed): the PUT request schema from sendgrid-mc-contacts-v3.json is compiled ONCE
(jsonschema Draft 2020-12). Each request validates the envelope (list_ids, contacts count 1..30000) with
`contacts.items` relaxed, then every contact goes through a cheap check derived from the spec's
ContactRequest (types, maxLength, alternate_emails <= 5, needs an identifier), and a SAMPLE of contacts
(the first and every 1000th) gets full jsonschema validation. Body > 6 MB -> 413; schema violations ->
400 in SendGrid's envelope; syntactically invalid emails become errored rows of the job.

Jobs go pending -> completed/errored/failed after `job_delay_s` measured on the injected clock; rows are
applied when the job finishes. `fail_next_jobs` = N makes the next N upsert jobs end "failed" (nothing
applied). State is compact (contact index ints, field JSON strings) so 1M contacts fit in memory.

Rate limits (SendGrid publishes none; emulator choice, fixed 1 s windows): default 20/s, PUT contacts
"contacts" 5/s. X-RateLimit-Limit/Remaining/Reset (epoch) on every response; 429 body
{"errors":[{"field":null,"message":"too many requests"}]}.
"""
from __future__ import annotations

import copy
import csv
import io
import json
import math
import re
from typing import Any

import httpx
import jsonschema

from connectors.sandbox.common import Emulator, json_response, text_response

SPEC_PATH = "/work/shared/vendor-specs/sendgrid-mc-contacts-v3.json"
MAX_CONTACTS = 30_000
MAX_BODY_BYTES = 6 * 1024 * 1024
MAX_LISTS = 1000
MAX_SEARCH_EMAILS = 100
MAX_SEARCH_EMAIL_CHARS = 100
EMAIL_RE = re.compile(r"^[^@\s\"(),:;<>\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
IDENTIFIERS = ("email", "phone_number_id", "external_id", "anonymous_id")


def _load_validators() -> tuple[Any, Any, dict[str, tuple[str, int | None]]]:
    with open(SPEC_PATH, encoding="utf-8") as fh:
        spec = json.load(fh)
    components = spec["components"]
    body_schema = spec["paths"]["/v3/marketing/contacts"]["put"]["requestBody"]["content"]["application/json"]["schema"]
    envelope = copy.deepcopy(body_schema)
    del envelope["properties"]["contacts"]["items"]  # items: cheap check + sampled full validation
    envelope.pop("format", None)
    envelope["components"] = components
    contact_schema = dict(components["schemas"]["ContactRequest"])
    contact_schema["components"] = components
    cls = jsonschema.Draft202012Validator
    rules: dict[str, tuple[str, int | None]] = {}
    for name, prop in components["schemas"]["ContactRequest"]["properties"].items():
        rules[name] = (prop.get("type", "string"), prop.get("maxLength") or prop.get("maxItems"))
    return cls(envelope), cls(contact_schema), rules


ENVELOPE_VALIDATOR, CONTACT_VALIDATOR, CONTACT_RULES = _load_validators()


def check_contact(c: Any) -> str | None:
    """Cheap per-contact check mirroring ContactRequest; returns an error message or None."""
    if type(c) is not dict:
        return "contact must be an object"
    for k, v in c.items():
        rule = CONTACT_RULES.get(k)
        if rule is None:
            continue
        typ, limit = rule
        if typ == "string":
            if type(v) is not str:
                return f"{k} must be a string"
            if limit is not None and len(v) > limit:
                return f"{k} must be at most {limit} characters"
        elif typ == "array":
            if type(v) is not list:
                return f"{k} must be an array"
            if limit is not None and len(v) > limit:
                return f"{k} may have at most {limit} items"
        elif typ == "object" and type(v) is not dict:
            return f"{k} must be an object"
    for ident in IDENTIFIERS:
        if ident in c:
            return None
    return "each contact needs one of email, phone_number_id, external_id, anonymous_id"


def _error_body(message: str, field: str | None = None) -> dict:
    return {"errors": [{"field": field, "message": message}]}


def _contact_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012x}"


def _contact_index(contact_id: str) -> int | None:
    if len(contact_id) != 36 or not contact_id.startswith("00000000-0000-4000-8000-"):
        return None
    try:
        return int(contact_id[24:], 16)
    except ValueError:
        return None


class SendGridEmulator(Emulator):
    vendor = "sendgrid"
    RATE_LIMIT_RULES = {"default": (20, 1.0), "contacts": (5, 1.0)}
    ROUTES = [
        ("GET", r"/v3/scopes", "route_scopes"),
        ("GET", r"/v3/marketing/lists", "route_lists"),
        ("POST", r"/v3/marketing/lists", "route_create_list"),
        ("GET", r"/v3/marketing/lists/(?P<id>[^/]+)", "route_get_list"),
        ("DELETE", r"/v3/marketing/lists/(?P<id>[^/]+)", "route_delete_list"),
        ("DELETE", r"/v3/marketing/lists/(?P<id>[^/]+)/contacts", "route_remove_list_contacts"),
        ("PUT", r"/v3/marketing/contacts", "route_upsert"),
        ("GET", r"/v3/marketing/contacts/imports/(?P<id>[^/]+)", "route_job"),
        ("POST", r"/v3/marketing/contacts/search/emails", "route_search_emails"),
        ("GET", r"/_sandbox/sendgrid/errors/(?P<id>[^/]+)\.csv", "route_errors_csv"),
    ]

    def reset_state(self) -> None:
        self.lists: dict[str, dict] = {}
        self._list_seq = 0
        self.contacts: dict[str, int] = {}  # lowercased email -> contact index
        self.contact_emails: list[str] = []
        self.contact_fields: list[str] = []  # compact JSON of the non-email fields
        self.jobs: dict[str, dict] = {}
        self._pending: list[str] = []
        self._job_seq = 0
        self.job_delay_s = 0.0
        self.fail_next_jobs = 0

    # ------------------------------------------------------------ vendor hooks
    def api_key(self, request: httpx.Request) -> str | None:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return None

    def error_response(self, status: int, message: str, code: str | None = None) -> httpx.Response:
        return json_response(status, _error_body(message))

    def auth_error(self, request: httpx.Request) -> httpx.Response:
        return json_response(401, _error_body("authorization required"))

    def auth_check(self, request: httpx.Request, key: str) -> httpx.Response | None:
        if "nomarketing" in key and request.url.path.startswith("/v3/marketing/"):
            return json_response(403, _error_body("access forbidden"))
        return None

    def bucket_for(self, request: httpx.Request) -> str:
        if request.method == "PUT" and request.url.path == "/v3/marketing/contacts":
            return "contacts"
        return "default"

    def _limit_headers(self, limit: tuple[int, float] | None, used: int, reset_epoch: float) -> dict[str, str]:
        bucket_limit = limit or self.rate_limit_rules.get("default") or (600, 60.0)
        if limit is None:
            reset_epoch = self.clock() + bucket_limit[1]
            used = 0
        return {
            "X-RateLimit-Limit": str(bucket_limit[0]),
            "X-RateLimit-Remaining": str(max(0, bucket_limit[0] - used)),
            "X-RateLimit-Reset": str(int(math.ceil(reset_epoch))),
        }

    def extra_headers(self, request, limit, used, reset_epoch) -> dict[str, str]:
        return self._limit_headers(limit, used, reset_epoch)

    def rate_limited_response(self, request, retry_after_s, reset_epoch, include_retry_hint) -> httpx.Response:
        headers = None
        if include_retry_hint:
            limit = self.rate_limit_rules.get(self.bucket_for(request)) or (600, 60.0)
            headers = {"X-RateLimit-Limit": str(limit[0]), "X-RateLimit-Remaining": "0",
                       "X-RateLimit-Reset": str(int(math.ceil(reset_epoch)))}
        return json_response(429, _error_body("too many requests"), headers)

    def server_error_response(self, status: int) -> httpx.Response:
        return json_response(status, _error_body("internal server error" if status == 500 else "service unavailable"))

    # ------------------------------------------------------------ lists
    def route_scopes(self, request, match) -> httpx.Response:
        key = self.api_key(request) or ""
        scopes = ["user.profile.read", "mail.send"]
        if "nomarketing" not in key:
            scopes += ["marketing.read", "marketing.contacts.read", "marketing.contacts.create",
                       "marketing.contacts.update", "marketing.lists.read", "marketing.lists.create"]
        return json_response(200, {"scopes": scopes})

    def _list_json(self, request: httpx.Request, lst: dict) -> dict:
        base = f"{request.url.scheme}://{request.url.netloc.decode()}"
        return {"id": lst["id"], "name": lst["name"], "contact_count": len(lst["members"]),
                "_metadata": {"self": f"{base}/v3/marketing/lists/{lst['id']}"}}

    def route_lists(self, request, match) -> httpx.Response:
        params = request.url.params
        try:
            page_size = int(params.get("page_size", "100"))
            offset = int(params.get("page_token") or 0)
        except ValueError:
            return self.error_response(400, "invalid page_size or page_token")
        if not 1 <= page_size <= 1000 or offset < 0:
            return json_response(400, _error_body("page_size must be between 1 and 1000", "page_size"))
        with self.lock:
            all_lists = list(self.lists.values())
            page = [self._list_json(request, lst) for lst in all_lists[offset:offset + page_size]]
        base = f"{request.url.scheme}://{request.url.netloc.decode()}/v3/marketing/lists"
        meta: dict[str, Any] = {"self": f"{base}?page_size={page_size}&page_token={offset}", "count": len(all_lists)}
        if offset + page_size < len(all_lists):
            meta["next"] = f"{base}?page_size={page_size}&page_token={offset + page_size}"
        if offset > 0:
            meta["prev"] = f"{base}?page_size={page_size}&page_token={max(0, offset - page_size)}"
        return json_response(200, {"result": page, "_metadata": meta})

    def route_create_list(self, request, match) -> httpx.Response:
        try:
            body = self.read_json(request)
        except ValueError:
            return self.error_response(400, "invalid JSON body")
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            return json_response(400, _error_body("name must be 1 to 100 characters", "name"))
        with self.lock:
            if len(self.lists) >= MAX_LISTS:
                return json_response(400, _error_body("You have reached the maximum number of lists (1000).", "name"))
            self._list_seq += 1
            list_id = f"11111111-2222-4333-8444-{self._list_seq:012x}"
            lst = {"id": list_id, "name": name, "members": set()}
            self.lists[list_id] = lst
            return json_response(201, self._list_json(request, lst))

    def route_get_list(self, request, match) -> httpx.Response:
        with self.lock:
            lst = self.lists.get(match["id"])
            if lst is None:
                return json_response(404, _error_body("list not found", "id"))
            return json_response(200, self._list_json(request, lst))

    def route_delete_list(self, request, match) -> httpx.Response:
        with self.lock:
            lst = self.lists.pop(match["id"], None)
            if lst is None:
                return json_response(404, _error_body("list not found", "id"))
        return httpx.Response(204)

    # ------------------------------------------------------------ contacts
    def route_upsert(self, request, match) -> httpx.Response:
        raw = request.read()
        if len(raw) > MAX_BODY_BYTES:
            return json_response(413, _error_body("request body is larger than 6 MB"))
        try:
            body = json.loads(raw)
        except ValueError:
            return json_response(400, _error_body("invalid JSON body"))
        errors = sorted(ENVELOPE_VALIDATOR.iter_errors(body), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            field = ".".join(str(p) for p in e.path) or None
            status = 400
            return json_response(status, _error_body(e.message[:300], field))
        contacts = body["contacts"]
        list_ids = body.get("list_ids") or []
        with self.lock:
            missing = [lid for lid in list_ids if lid not in self.lists]
        if missing:
            return json_response(404, _error_body(f"list ids do not exist: {', '.join(missing)}", "list_ids"))
        rows: list[tuple[str, str | None]] = []
        errored: list[tuple[str, str]] = []
        email_match = EMAIL_RE.match
        for i, c in enumerate(contacts):
            problem = check_contact(c)
            if problem is None and i % 1000 == 0:
                err = next(iter(CONTACT_VALIDATOR.iter_errors(c)), None)
                problem = err.message[:200] if err is not None else None
            if problem is not None:
                return json_response(400, _error_body(problem, f"contacts[{i}]"))
            email = c.get("email")
            if email is None:
                errored.append(("", "sandbox supports email identifiers only"))
                continue
            if not email_match(email):
                errored.append((email, "email is invalid"))
                continue
            rest = {k: v for k, v in c.items() if k != "email"}
            rows.append((email.lower(), json.dumps(rest, separators=(",", ":"), ensure_ascii=False) if rest else None))
        with self.lock:
            self._job_seq += 1
            job_id = f"job-{self._job_seq:08d}"
            fail = self.fail_next_jobs > 0
            if fail:
                self.fail_next_jobs -= 1
            self.jobs[job_id] = {
                "id": job_id, "job_type": "upsert", "status": "pending", "fail": fail,
                "requested_count": len(contacts), "created_count": 0, "updated_count": 0, "deleted_count": 0,
                "errored_count": 0, "rows": rows, "list_ids": list(list_ids), "errors": errored,
                "started_at": self.clock(), "ready_at": self.clock() + self.job_delay_s, "finished_at": None,
            }
            self._pending.append(job_id)
            self._advance_jobs()
        return json_response(202, {"job_id": job_id})

    def _advance_jobs(self) -> None:
        """Finish due jobs (called with the lock held)."""
        if not self._pending:
            return
        now = self.clock()
        still = []
        for job_id in self._pending:
            job = self.jobs[job_id]
            if job["ready_at"] > now:
                still.append(job_id)
                continue
            rows = job.pop("rows")
            if job["fail"]:
                job["errors"] = job["errors"] + [(email, "the import job failed") for email, _ in rows]
                job["status"] = "failed"
            else:
                self._apply_rows(job, rows)
                job["status"] = "errored" if job["errors"] else "completed"
            job["errored_count"] = len(job["errors"])
            job["finished_at"] = now
        self._pending = still

    def _apply_rows(self, job: dict, rows: list[tuple[str, str | None]]) -> None:
        lists = [self.lists[lid] for lid in job["list_ids"] if lid in self.lists]
        # list membership lives only in each list's set of contact indexes (no per-contact set: memory)
        contacts, emails, fields = self.contacts, self.contact_emails, self.contact_fields
        created = updated = 0
        for email, fjson in rows:
            n = contacts.get(email)
            if n is None:
                n = len(emails)
                contacts[email] = n
                emails.append(email)
                fields.append(fjson)
                created += 1
            else:
                updated += 1
                if fjson is not None:
                    old = fields[n]
                    if old is None:
                        fields[n] = fjson
                    else:  # omitted fields stay unchanged
                        merged = json.loads(old)
                        merged.update(json.loads(fjson))
                        fields[n] = json.dumps(merged, separators=(",", ":"), ensure_ascii=False)
            for lst in lists:
                lst["members"].add(n)
        job["created_count"] += created
        job["updated_count"] += updated

    def route_job(self, request, match) -> httpx.Response:
        with self.lock:
            self._advance_jobs()
            job = self.jobs.get(match["id"])
            if job is None:
                return json_response(404, _error_body("job not found", "id"))
            base = f"{request.url.scheme}://{request.url.netloc.decode()}"
            results = {k: job[k] for k in ("requested_count", "created_count", "updated_count",
                                           "deleted_count", "errored_count")}
            if job["status"] in ("errored", "failed") and job["errors"]:
                results["errors_url"] = f"{base}/_sandbox/sendgrid/errors/{job['id']}.csv"
            return json_response(200, {
                "id": job["id"], "status": job["status"], "job_type": job["job_type"], "results": results,
                "started_at": _iso(job["started_at"]),
                "finished_at": _iso(job["finished_at"]) if job["finished_at"] else None,
            })

    def route_errors_csv(self, request, match) -> httpx.Response:
        with self.lock:
            job = self.jobs.get(match["id"])
            if job is None:
                return json_response(404, _error_body("not found"))
            buf = io.StringIO()
            writer = csv.writer(buf)
            writer.writerow(["email", "error"])
            writer.writerows(job["errors"])
        return text_response(200, buf.getvalue(), "text/csv")

    def route_search_emails(self, request, match) -> httpx.Response:
        try:
            body = self.read_json(request)
            emails = body["emails"]
            assert isinstance(emails, list) and all(isinstance(e, str) for e in emails)
        except (ValueError, KeyError, TypeError, AssertionError):
            return json_response(400, _error_body("emails must be an array of strings", "emails"))
        if not 1 <= len(emails) <= MAX_SEARCH_EMAILS:
            return json_response(400, _error_body("emails must contain 1 to 100 items", "emails"))
        for e in emails:
            if len(e) > MAX_SEARCH_EMAIL_CHARS or not EMAIL_RE.match(e):
                return json_response(400, _error_body(f"invalid email: {e[:120]}", "emails"))
        result: dict[str, Any] = {}
        found = False
        with self.lock:
            self._advance_jobs()
            for e in emails:
                n = self.contacts.get(e.lower())
                if n is None:
                    result[e] = {"error": "contact not found"}
                    continue
                found = True
                contact = {"id": _contact_id(n), "email": self.contact_emails[n],
                           "list_ids": [lid for lid, l in self.lists.items() if n in l["members"]]}
                if self.contact_fields[n]:
                    contact.update(json.loads(self.contact_fields[n]))
                result[e] = {"contact": contact}
        if not found:
            return json_response(404, _error_body("no contacts found"))
        return json_response(200, {"result": result})

    def route_remove_list_contacts(self, request, match) -> httpx.Response:
        raw_ids = request.url.params.get("contact_ids", "")
        ids = [i for i in raw_ids.split(",") if i]
        if not ids:
            return json_response(400, _error_body("contact_ids is required", "contact_ids"))
        with self.lock:
            lst = self.lists.get(match["id"])
            if lst is None:
                return json_response(404, _error_body("list ID does not exist or one or more contact IDs do not exist"))
            indexes = []
            for cid in ids:
                n = _contact_index(cid)
                if n is None or n >= len(self.contact_emails):
                    return json_response(404, _error_body("list ID does not exist or one or more contact IDs do not exist"))
                indexes.append(n)
            for n in indexes:
                lst["members"].discard(n)
            self._job_seq += 1
            job_id = f"job-{self._job_seq:08d}"
            now = self.clock()
            self.jobs[job_id] = {
                "id": job_id, "job_type": "delete", "status": "completed", "fail": False,
                "requested_count": len(ids), "created_count": 0, "updated_count": 0, "deleted_count": len(ids),
                "errored_count": 0, "list_ids": [lst["id"]], "errors": [], "started_at": now,
                "ready_at": now, "finished_at": now,
            }
        return json_response(202, {"job_id": job_id})

    # ------------------------------------------------------------ snapshot
    def seed_list(self, name: str, emails: list[str]) -> str:
        """A list holding `emails` before any export ran (members someone else added): as POST lists then
        PUT contacts with its list_ids would leave it, without the job. Returns the list id."""
        with self.lock:
            lst = next((l for l in self.lists.values() if l["name"] == name), None)
            if lst is None:
                self._list_seq += 1
                list_id = f"11111111-2222-4333-8444-{self._list_seq:012x}"
                lst = self.lists[list_id] = {"id": list_id, "name": name, "members": set()}
            for email in emails:
                low = email.strip().lower()
                n = self.contacts.get(low)
                if n is None:
                    n = self.contacts[low] = len(self.contact_emails)
                    self.contact_emails.append(low)
                    self.contact_fields.append(None)
                lst["members"].add(n)
            return lst["id"]

    def list_members(self, list_id: str) -> list[str]:
        with self.lock:
            self._advance_jobs()
            lst = self.lists[list_id]
            return sorted(self.contact_emails[n] for n in lst["members"])

    def contact(self, email: str) -> dict | None:
        with self.lock:
            self._advance_jobs()
            n = self.contacts.get(email.lower())
            if n is None:
                return None
            d = {"email": self.contact_emails[n]}
            if self.contact_fields[n]:
                d.update(json.loads(self.contact_fields[n]))
            return d

    def state_snapshot(self, max_members: int | None) -> dict:
        self._advance_jobs()
        lists = []
        for lst in self.lists.values():
            members = lst["members"]
            shown = sorted(self.contact_emails[n] for n in members) if max_members is None or len(members) <= max_members \
                else sorted(self.contact_emails[n] for n in list(members)[:max_members])
            lists.append({"id": lst["id"], "name": lst["name"], "contact_count": len(members), "members": shown})
        jobs = [{k: job[k] for k in ("id", "job_type", "status", "requested_count", "created_count",
                                     "updated_count", "errored_count")} for job in list(self.jobs.values())[-50:]]
        return {"lists": lists, "contacts": len(self.contact_emails), "jobs": jobs, "jobs_total": len(self.jobs),
                "job_delay_s": self.job_delay_s, "fail_next_jobs": self.fail_next_jobs}


def _iso(epoch: float) -> str:
    import datetime as _dt
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
