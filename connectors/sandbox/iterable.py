"""Iterable lists emulator.

Routes: GET /api/lists; POST /api/lists {"name"} -> {"listId"}; DELETE /api/lists/{id};
POST /api/lists/subscribe; POST /api/lists/unsubscribe; GET /api/lists/getUsers?listId= (text/plain,
one email per line); GET /api/lists/{id}/size.
Auth: header Api-Key (Api_Key also accepted); bad key -> 401 {"msg","code":"BadApiKey","params":null}.
Validation choice (speed): the SubscribeRequest / UnsubscribeRequest definitions of iterable-api-docs.json are
compiled ONCE; each request validates the envelope with `subscribers.items` relaxed, each subscriber gets a
cheap type check mirroring OptionalApiUser/Unsubscriber, and a sample (first + every 500th) is validated
fully. Batch > 1000 subscribers -> 400 BatchTooLarge. Invalid emails -> failedUpdates.invalidEmails;
emails in `forgotten` -> forgottenEmails; `conflict` set -> conflictEmails; non-object dataFields ->
invalidDataEmails; unsubscribe of an unknown user -> notFoundEmails.
Rate limits (emulator choice where Iterable states none, fixed 1 s windows): lists GET 100/s,
subscribe/unsubscribe 10/s ("subscribe"), getUsers/size 5/min. 429 {"code":"RateLimitExceeded"}; real
limit 429s carry no headers (Iterable documents none); fault bursts add Retry-After when the hint is on.
"""
from __future__ import annotations

import copy
import json
import re
from typing import Any

import httpx
import jsonschema

from connectors.sandbox.common import Emulator, json_response, text_response

SPEC_PATH = "/work/shared/vendor-specs/iterable-api-docs.json"
MAX_BATCH = 1000
EMAIL_RE = re.compile(r"^[^@\s\"(),:;<>\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
FAILED_CATEGORIES = ("invalidEmails", "invalidUserIds", "notFoundEmails", "notFoundUserIds", "forgottenEmails",
                     "forgottenUserIds", "conflictEmails", "conflictUserIds", "invalidDataEmails", "invalidDataUserIds")


def _validators() -> dict[str, tuple[Any, Any]]:
    with open(SPEC_PATH, encoding="utf-8") as fh:
        defs = json.load(fh)["definitions"]
    out = {}
    for name in ("SubscribeRequest", "UnsubscribeRequest"):
        envelope = copy.deepcopy(defs[name])
        item_ref = envelope["properties"]["subscribers"]["items"]["$ref"].split("/")[-1]
        del envelope["properties"]["subscribers"]["items"]  # items checked cheaply + sampled below
        envelope["definitions"] = defs
        item = dict(defs[item_ref])
        item["definitions"] = defs
        out[name] = (jsonschema.Draft4Validator(envelope), jsonschema.Draft4Validator(item))
    return out


VALIDATORS = _validators()


def _error(status: int, msg: str, code: str, params: Any = None) -> httpx.Response:
    return json_response(status, {"msg": msg, "code": code, "params": params})


class IterableEmulator(Emulator):
    vendor = "iterable"
    RATE_LIMIT_RULES = {"default": (100, 1.0), "subscribe": (10, 1.0), "getUsers": (5, 60.0)}
    ROUTES = [
        ("GET", r"/api/lists", "route_lists"),
        ("POST", r"/api/lists", "route_create_list"),
        ("DELETE", r"/api/lists/(?P<id>\d+)", "route_delete_list"),
        ("POST", r"/api/lists/subscribe", "route_subscribe"),
        ("POST", r"/api/lists/unsubscribe", "route_unsubscribe"),
        ("GET", r"/api/lists/getUsers", "route_get_users"),
        ("GET", r"/api/lists/(?P<id>\d+)/size", "route_size"),
    ]

    def reset_state(self) -> None:
        self.lists: dict[int, dict] = {}
        self._list_seq = 1000
        self.users: dict[str, str | None] = {}  # lowercased email -> compact JSON dataFields
        self.forgotten: set[str] = set()
        self.conflict: set[str] = set()

    # ------------------------------------------------------------ hooks
    def api_key(self, request: httpx.Request) -> str | None:
        return request.headers.get("api-key") or request.headers.get("api_key")

    def error_response(self, status: int, message: str, code: str | None = None) -> httpx.Response:
        return _error(status, message, code or ("GenericError" if status >= 500 else "BadParams"))

    def auth_error(self, request: httpx.Request) -> httpx.Response:
        return _error(401, "Invalid API key", "BadApiKey")

    def rate_limited_response(self, request, retry_after_s, reset_epoch, include_retry_hint) -> httpx.Response:
        return _error(429, "Rate limit exceeded", "RateLimitExceeded")

    def server_error_response(self, status: int) -> httpx.Response:
        return _error(status, "Internal server error" if status == 500 else "Service unavailable", "GenericError")

    def _handle(self, request: httpx.Request) -> httpx.Response:
        resp = super()._handle(request)
        # fault bursts "with hint": Iterable documents no header, but proxies commonly add Retry-After
        if resp.status_code == 429 and self._last_burst_hint:
            resp.headers["Retry-After"] = str(int(round(self.faults.rate_limit_wait_s)))
        return resp

    @property
    def _last_burst_hint(self) -> bool:
        return self.faults.rate_limit_retry_hint and not self.rate_limits_enabled

    def bucket_for(self, request: httpx.Request) -> str:
        path = request.url.path
        if path in ("/api/lists/subscribe", "/api/lists/unsubscribe"):
            return "subscribe"
        if path == "/api/lists/getUsers" or path.endswith("/size"):
            return "getUsers"
        return "default"

    # ------------------------------------------------------------ lists
    def route_lists(self, request, match) -> httpx.Response:
        with self.lock:
            lists = [{"id": l["id"], "name": l["name"], "createdAt": l["createdAt"], "listType": "Standard"}
                     for l in self.lists.values()]
        return json_response(200, {"lists": lists})

    def route_create_list(self, request, match) -> httpx.Response:
        try:
            body = self.read_json(request)
        except ValueError:
            return _error(400, "Invalid JSON body", "BadJsonBody")
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name.strip():
            return _error(400, "name is required", "BadParams")
        with self.lock:
            self._list_seq += 1
            list_id = self._list_seq
            self.lists[list_id] = {"id": list_id, "name": name, "createdAt": int(self.clock() * 1000),
                                   "members": set()}
        return json_response(200, {"listId": list_id})

    def route_delete_list(self, request, match) -> httpx.Response:
        with self.lock:
            if self.lists.pop(int(match["id"]), None) is None:
                return _error(404, "List not found", "NotFound")
        return json_response(200, {"msg": "List deleted", "code": "Success", "params": None})

    def route_size(self, request, match) -> httpx.Response:
        with self.lock:
            lst = self.lists.get(int(match["id"]))
            if lst is None:
                return _error(404, "List not found", "NotFound")
            return text_response(200, str(len(lst["members"])))

    def route_get_users(self, request, match) -> httpx.Response:
        try:
            list_id = int(request.url.params.get("listId", ""))
        except ValueError:
            return _error(400, "listId is required", "BadParams")
        with self.lock:
            lst = self.lists.get(list_id)
            if lst is None:
                return _error(404, "List not found", "NotFound")
            text = "\n".join(sorted(lst["members"]))
        return text_response(200, text + ("\n" if text else ""))

    # ------------------------------------------------------------ membership
    def _parse(self, request: httpx.Request, schema: str) -> tuple[dict | None, httpx.Response | None]:
        try:
            body = self.read_json(request)
        except ValueError:
            return None, _error(400, "Invalid JSON body", "BadJsonBody")
        envelope, item = VALIDATORS[schema]
        err = next(iter(envelope.iter_errors(body)), None)
        if err is not None:
            return None, _error(400, f"Invalid request: {err.message[:200]}", "BadParams")
        subs = body["subscribers"]
        if len(subs) > MAX_BATCH:
            return None, _error(400, f"Batch too large: at most {MAX_BATCH} subscribers per request", "BatchTooLarge")
        for i, s in enumerate(subs):
            bad = None
            if type(s) is not dict:
                bad = "subscriber must be an object"
            elif "email" in s and type(s["email"]) is not str:
                bad = "email must be a string"
            elif i % 500 == 0:
                e = next(iter(item.iter_errors(s)), None)
                bad = e.message[:200] if e is not None else None
            if bad:
                return None, _error(400, f"Invalid subscriber {i}: {bad}", "BadParams")
        return body, None

    @staticmethod
    def _result(success: int, failed: dict[str, list[str]]) -> dict:
        fu = {k: failed.get(k, []) for k in FAILED_CATEGORIES}
        return {"successCount": success, "failCount": sum(len(v) for v in fu.values()),
                "invalidEmails": fu["invalidEmails"], "invalidUserIds": fu["invalidUserIds"],
                "failedUpdates": fu, "createdFields": [], "filteredOutFields": []}

    def route_subscribe(self, request, match) -> httpx.Response:
        body, error = self._parse(request, "SubscribeRequest")
        if error is not None:
            return error
        failed: dict[str, list[str]] = {}
        accepted: list[tuple[str, str | None]] = []
        email_match = EMAIL_RE.match
        for s in body["subscribers"]:
            email = s.get("email")
            if email is None:
                failed.setdefault("invalidUserIds", []).append(str(s.get("userId")))
                continue
            low = email.lower()
            if not email_match(email):
                failed.setdefault("invalidEmails", []).append(email)
            elif low in self.forgotten:
                failed.setdefault("forgottenEmails", []).append(email)
            elif low in self.conflict:
                failed.setdefault("conflictEmails", []).append(email)
            elif "dataFields" in s and type(s["dataFields"]) is not dict:
                failed.setdefault("invalidDataEmails", []).append(email)
            else:
                df = s.get("dataFields")
                accepted.append((low, json.dumps(df, separators=(",", ":"), ensure_ascii=False) if df else None))
        with self.lock:
            lst = self.lists.get(body["listId"])
            if lst is None:
                return _error(400, f"List {body['listId']} does not exist", "BadParams")
            users, members = self.users, lst["members"]
            for low, df in accepted:
                old = users.get(low)
                if old is None or df is None:
                    users[low] = df if old is None else old
                else:
                    merged = json.loads(old)
                    merged.update(json.loads(df))
                    users[low] = json.dumps(merged, separators=(",", ":"), ensure_ascii=False)
                members.add(low)
        return json_response(200, self._result(len(accepted), failed))

    def route_unsubscribe(self, request, match) -> httpx.Response:
        body, error = self._parse(request, "UnsubscribeRequest")
        if error is not None:
            return error
        if body.get("channelUnsubscribe"):
            return _error(400, "channelUnsubscribe is not supported by the sandbox", "BadParams")
        failed: dict[str, list[str]] = {}
        success = 0
        with self.lock:
            lst = self.lists.get(body["listId"])
            if lst is None:
                return _error(400, f"List {body['listId']} does not exist", "BadParams")
            for s in body["subscribers"]:
                email = s.get("email")
                if not isinstance(email, str) or not EMAIL_RE.match(email):
                    failed.setdefault("invalidEmails", []).append(str(email))
                    continue
                low = email.lower()
                if low not in self.users:
                    failed.setdefault("notFoundEmails", []).append(email)
                    continue
                lst["members"].discard(low)
                success += 1
        return json_response(200, self._result(success, failed))

    # ------------------------------------------------------------ inspection
    def seed_list(self, name: str, emails: list[str]) -> int:
        """A list holding `emails` before any export ran (users someone else subscribed). Returns its id."""
        with self.lock:
            lst = next((l for l in self.lists.values() if l["name"] == name), None)
            if lst is None:
                self._list_seq += 1
                lst = self.lists[self._list_seq] = {"id": self._list_seq, "name": name,
                                                    "createdAt": int(self.clock() * 1000), "members": set()}
            for email in emails:
                low = email.strip().lower()
                self.users.setdefault(low, None)
                lst["members"].add(low)
            return lst["id"]

    def list_members(self, list_id: int | str) -> list[str]:
        with self.lock:
            return sorted(self.lists[int(list_id)]["members"])

    def user(self, email: str) -> dict | None:
        with self.lock:
            if email.lower() not in self.users:
                return None
            df = self.users[email.lower()]
            return {"email": email.lower(), "dataFields": json.loads(df) if df else {}}

    def state_snapshot(self, max_members: int | None) -> dict:
        lists = []
        for l in self.lists.values():
            members = l["members"]
            shown = sorted(members) if max_members is None or len(members) <= max_members \
                else sorted(list(members)[:max_members])
            lists.append({"id": l["id"], "name": l["name"], "contact_count": len(members), "members": shown})
        return {"lists": lists, "users": len(self.users), "forgotten": sorted(self.forgotten),
                "conflict": sorted(self.conflict)}
