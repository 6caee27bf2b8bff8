"""User text is never rendered as Markdown (issue 12, item 6).

Every name a person can type (segment, description, rule value, attribute label from an imported
header, customer id, export, enrichment, connection, display name, run message, file name, column
headers of an upload) is set to a hostile string; then every page each role may open is walked with
AppTest, with the detail views where those names appear. Each string the app hands to an element that
renders Markdown (markdown/caption/headings/alerts/toasts/progress text, and the labels, help texts and
radio options of widgets, expanders, tabs and metrics) is parsed with markdown-it (CommonMark + GFM
tables, strikethrough and autolinks, raw HTML on) and must produce no link, image, emphasis or HTML
that came from the hostile text, while the hostile text itself is still shown literally.
"""
from __future__ import annotations

import json
import re
from datetime import datetime

import pytest
from markdown_it import MarkdownIt

from tests.pages.helpers import app_as, switch_to
from ui.text import WORD_JOINER

HOSTILE = "[a](https://evil.example) **x** <b>y</b> ![i](http://e/x.png) _z_ www.evil.com"
EVIL_HOSTS = ("evil.example", "evil.com", "e/x.png")
USERS = {"alice": "admin", "carol": "contributor", "victor": "viewer"}

_PARSER = MarkdownIt("commonmark", {"html": True, "linkify": True}).enable(["table", "strikethrough", "linkify"])

# Element protos whose text Streamlit renders as Markdown, and the fields holding it.
MARKDOWN_FIELDS = {"Markdown": ("body",), "Heading": ("body",), "Alert": ("body",), "Toast": ("body",),
                   "Progress": ("text",)}
LABEL_FIELDS = ("label", "help")                   # every widget, button, expander, tab, metric
MARKDOWN_OPTIONS = ("Radio", "ButtonGroup")        # their options are Markdown (selectbox options are not)


def _tokens(tokens):
    for token in tokens:
        yield token
        if token.children:
            yield from _tokens(token.children)


# Streamlit's remark-gfm also links URLs and e-mail addresses in the text AFTER escapes are resolved
# (seen in Chromium), which markdown-it's linkify does not: the same patterns, on the rendered text.
GFM_AUTOLINKS = (re.compile(r"(?i)(https?://|www(?=\.))[-.\w]+"), re.compile(r"[-.\w+]+@[-\w]+(\.[-\w]+)+"))


def problems(text: str) -> list[str]:
    """Markup in `text` that the hostile string would produce if it were not escaped."""
    found, inside = [], []
    for pattern in GFM_AUTOLINKS:
        found += [f"autolink {m.group(0)!r}" for m in pattern.finditer(rendered_text(text))
                  if any(h in m.group(0) for h in ("evil", "e/x.png"))]
    for token in _tokens(_PARSER.parse(text)):
        if token.type == "link_open" and any(h in (token.attrGet("href") or "") for h in EVIL_HOSTS):
            found.append(f"link to {token.attrGet('href')}")
        elif token.type == "image":
            found.append(f"image {token.attrGet('src')}")
        elif token.type in ("html_inline", "html_block") and "<b>" in token.content:
            found.append(f"raw HTML {token.content!r}")
        elif token.type in ("strong_open", "em_open"):
            inside.append([token.type, ""])
        elif token.type in ("strong_close", "em_close") and inside:
            kind, content = inside.pop()
            if content in ("x", "z", "i"):
                found.append(f"{kind[:-5]} {content!r}")
        elif token.type == "text" and inside:
            inside[-1][1] += token.content
    return found


def rendered_text(text: str) -> str:
    return "".join(t.content for t in _tokens(_PARSER.parse(text)) if t.type in ("text", "code_inline")) \
        .replace("\n", " ")


def shown_text(text: str) -> str:
    """What a person reads: the rendered text without invisible word joiners."""
    return rendered_text(text).replace(WORD_JOINER, "")


def test_the_checker_finds_unescaped_markup_and_accepts_escaped_text():
    from ui.text import md

    assert len(problems(HOSTILE)) >= 5
    assert problems(f"Segment **{md(HOSTILE)}** saved") == []
    assert HOSTILE in shown_text(f"Segment **{md(HOSTILE)}** saved")
    assert problems("see www.evil.com") and not problems(md("see www.evil.com"))
    assert problems("see \\https\\://evil\\.example") and problems("me\\@evil\\.com")   # escapes alone
    assert not problems(md("me@evil.com")) and not problems(md("HTTPS://evil.example"))


@pytest.mark.parametrize("text", [
    "[a](https://evil.example)", "**bold** __b__", "*i* _i_", "<b>y</b>", "![i](http://e/x.png)", "`code`",
    "# heading", "1. list", "- item", "+ item", "> quote", "a | b\n--|--\nc | d", "~~s~~", "$x^2$",
    ":red[colour]", "https://evil.example", "www.evil.com", "mail@evil.com", "a\\b", "&amp; &lt;b&gt;",
    "line one\n# two", "tab\tand\r\nbreak",
])
def test_md_shows_text_literally_on_one_line(text):
    from ui.text import md

    escaped = md(text)
    assert problems(escaped) == []
    assert "\n" not in escaped and "\r" not in escaped
    tokens = list(_tokens(_PARSER.parse(escaped)))
    assert [t.type for t in tokens if t.type.endswith("_open")] == ["paragraph_open"]   # one plain paragraph
    assert shown_text(escaped) == " ".join(text.replace("\r\n", "\n").split("\n"))


def test_md_of_none_and_numbers():
    from ui.text import error_text, md

    assert md(None) == "" and md(12.5) == "12\\.5"
    assert error_text(ValueError()) == "ValueError"
    assert error_text(ValueError("Duplicate key **k**\nand more")) == "Duplicate key \\*\\*k\\*\\*  \nand more"


def markdown_strings(at) -> list[tuple[str, str]]:
    """(element type, text) for every string of the page that is rendered as Markdown."""
    out = []

    def walk(node):
        proto = getattr(node, "proto", None)
        if proto is not None and hasattr(proto, "ListFields"):
            kind = type(proto).__name__
            for field, value in proto.ListFields():
                if field.name in MARKDOWN_FIELDS.get(kind, ()) or field.name in LABEL_FIELDS:
                    if isinstance(value, str):
                        out.append((f"{kind}.{field.name}", value))
                elif field.name == "options" and kind in MARKDOWN_OPTIONS:
                    out.extend((f"{kind}.options", str(getattr(v, "content", v))) for v in value)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return out


@pytest.fixture
def hostile(db, admin, contributor, viewer, monkeypatch, tmp_path):
    """Every kind of user text set to HOSTILE; returns the ids the walk opens."""
    from core.segments import SegmentRule
    from services import enrichment as enrichment_svc
    from services import segments as segment_svc
    from storage import catalogue
    from tests.test_exports_support import World, base_people

    world = World(db, admin, monkeypatch)          # one sandbox connection per vendor
    world.add_profiles(base_people(3) + [{"customer_id": HOSTILE, "email": "h@example.com", "first_name": HOSTILE}])
    with db.transaction() as cur:
        cur.execute("UPDATE users SET display_name = ?", [HOSTILE])
        cur.execute("ALTER TABLE profiles ADD COLUMN x_hostile VARCHAR")
        cur.execute("UPDATE profiles SET x_hostile = ?", [HOSTILE])
        catalogue.upsert_attribute(cur, catalogue.Attribute(
            key="profile.x_hostile", label=HOSTILE, type="text", source="profile", source_id=None,
            table_name="profiles", column_name="x_hostile"))
    from core import segments as rules

    rule = rules.add_item(SegmentRule(), (), rules.new_condition("profile.x_hostile", "equals", HOSTILE))
    segment_id = segment_svc.save_segment(db, admin, HOSTILE, HOSTILE, rule, "dynamic")
    export_id = world.export("sendgrid", [segment_id], name=HOSTILE,
                             targets={segment_id: {"mode": "name", "name": HOSTILE}})
    leadspace = world.connections["leadspace"]
    from core.enrichment import EnrichmentConfig

    enrichment_id = enrichment_svc.save_enrichment(db, admin, HOSTILE, EnrichmentConfig(connection_id=leadspace))
    with db.transaction() as cur:
        cur.execute("UPDATE connections SET name = ? || ' ' || vendor", [HOSTILE])
        for kind, target in (("export", export_id), ("enrichment", enrichment_id), ("segment", segment_id)):
            run_id = cur.execute(
                "INSERT INTO runs (kind, target_id, target_name, trigger, requested_by, status, started_at, "
                "finished_at, counts_json, message, progress_message) VALUES (?, ?, ?, 'manual', 'alice', 'failed', "
                "?, ?, ?, ?, ?) RETURNING id",
                [kind, target, HOSTILE, datetime(2025, 1, 1), datetime(2025, 1, 1),
                 json.dumps({"warnings": [HOSTILE], "planned": 1}), HOSTILE, HOSTILE]).fetchone()[0]
            cur.execute("INSERT INTO alert_events (run_id, event, message, email_status) VALUES (?, 'failed', ?, 'off')",
                        [run_id, HOSTILE])
    # An upload whose file name and column header are hostile, for the import's mapping step.
    from services import profiles as profile_svc

    source = tmp_path / "hostile.csv"
    quoted = HOSTILE.replace('"', '""')
    source.write_text(f'customer_id,"{quoted}"\nc1,plain\n', encoding="utf-8")
    with open(source, "rb") as fh:
        upload = profile_svc.save_upload(admin, fh, "hostile.csv")
    from core.permissions import Role
    from ui import nav

    pages = {user: [spec.file for spec in nav.pages_for(Role(role), db)] for user, role in USERS.items()}
    db.close()   # the app opens the same file itself
    return {"segment": segment_id, "export": export_id, "enrichment": enrichment_id, "upload": str(upload),
            "pages": pages}


def _drill_downs(page: str, ids: dict):
    """(what, prepare(at)) steps that open the views of `page` where names appear."""
    def state(**values):
        def prepare(at):
            for key, value in values.items():
                at.session_state[key] = value
        return prepare

    def pick(key, value, *, click=None):
        def prepare(at):
            at.selectbox(key=key).set_value(value)
            if click:
                at.run()
                at.button(key=click).click()
        return prepare

    eid = ids["enrichment"]
    return {
        "segments.py": [("segment details", lambda at: at.query_params.__setitem__("segment", str(ids["segment"])))],
        "profiles.py": [("profile heading", lambda at: at.query_params.__setitem__("profile", HOSTILE)),
                        ("import mapping", state(imp_file={"path": ids["upload"], "name": HOSTILE, "uploaded": True}))],
        "exports.py": [("export details", lambda at: at.query_params.__setitem__("export", str(ids["export"]))),
                       ("remove warning", lambda at: (at.query_params.__setitem__("export", str(ids["export"])),
                                                      state(**{"exports.remove_id": ids["export"]})(at))),
                       ("export editor", lambda at: (at.query_params.__setitem__("export", str(ids["export"])),
                                                     at.run(), [b.click() for b in at.button
                                                                if b.key == "exports_edit"]))],
        "enrichment.py": [("enrichment details", state(**{"enr.view": ("details", eid)})),
                          ("enriched data", state(**{"enr.view": ("data", eid)})),
                          ("review queue", state(**{"enr.view": ("review", eid)})),
                          ("delete warning", state(**{"enr.view": ("home", None), "enr.confirm_delete": eid}))],
        "connections.py": [("remove dialog", _open_remove_dialog)],
    }.get(page, [])


def _open_remove_dialog(at) -> None:
    cid = _first_connection(at)   # before at.button: the widgets of the run that opened it
    at.button(key=f"conn.remove.{cid}").click()


def _first_connection(at) -> int:
    """Open the first connection as a click on its row does (?connection=<id>) and return its id."""
    from services import connections
    from ui import deps

    cid = connections.repo.list_connections(deps.get_db())[0]["id"]
    at.query_params["connection"] = str(cid)
    at.run()
    return cid


@pytest.mark.parametrize("username", list(USERS))
def test_no_page_renders_user_text_as_markdown(hostile, username):
    seen_hostile: dict[str, int] = {}
    failures = []
    for page in hostile["pages"][username]:
        steps = [("page", None), *_drill_downs(page, hostile)]
        for what, prepare in steps:
            at = switch_to(app_as(username).run(), page)
            if prepare is not None:
                prepare(at)
                at.run()
            assert not at.exception, (page, what, [e.value for e in at.exception])
            for kind, text in markdown_strings(at):
                for problem in problems(text):
                    failures.append(f"{page} / {what} / {kind}: {problem} in {text!r}")
                if HOSTILE in shown_text(text):
                    seen_hostile[f"{page} / {what}"] = seen_hostile.get(f"{page} / {what}", 0) + 1
    assert failures == []
    # The walk reached the views that show names, and they show the names literally.
    expected = {"segments.py / segment details", "profiles.py / profile heading", "exports.py / export details",
                "enrichment.py / enrichment details", "enrichment.py / enriched data", "run_history.py / page"}
    if USERS[username] != "viewer":
        expected |= {"profiles.py / import mapping"}
    if USERS[username] == "admin":
        expected |= {"connections.py / page", "connections.py / remove dialog", "exports.py / remove warning",
                     "exports.py / export editor"}
    assert expected <= set(seen_hostile), sorted(expected - set(seen_hostile))
