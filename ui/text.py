"""User text inside Markdown: the one escaping rule for every element that renders Markdown.

Streamlit renders Markdown (GitHub flavour, plus `$math$`, `:color[text]` directives and
`:material/icon:` / emoji shortcodes) in st.markdown/write/caption/title/header/subheader, the alert
boxes (info/success/warning/error), toasts, and in the labels of widgets, buttons, expanders, tabs,
metrics and radio options, and in `help=` tooltips. Raw HTML is not rendered (no unsafe_allow_html
anywhere), but escaping `<` keeps it shown literally.

Rule: any string that did not come from this code base as a literal (names, descriptions, rule
values, customer ids, column headers, file names, messages of exceptions, which quote user values)
goes through `md()` before it meets one of those elements. Exceptions are escaped where they are
shown (`show_error`, `error_text`), not where they are raised: services stay free of Markdown.

Pure functions (no streamlit import) so they are easy to test.
"""
from __future__ import annotations

import re

# CommonMark lets any ASCII punctuation be backslash-escaped, and an escaped character is always
# shown literally. Escaping all of it (rather than a hand-picked list) covers links, images,
# emphasis, code, HTML, `:color[...]` directives, `$math$`, tables (`|`), strikethrough (`~`) and
# headings/lists/quotes at a line start.
_ASCII_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# Streamlit's Markdown (remark-gfm) also turns URLs and e-mail addresses in plain text into links AFTER
# escapes are resolved (checked in Chromium: `https\://evil\.example` still became a link). An
# invisible WORD JOINER after the scheme / `www` / `@` keeps them from matching and shows the same text.
WORD_JOINER = "\u2060"
_AUTOLINK_STARTS = re.compile(r"(?i)(https?|ftp|mailto|xmpp|www)(?=[:.])|@")
# A line break inside a label or a sentence would start a new block (a heading, a list, a code
# block): user text is shown on one line.
_LINE_BREAKS = re.compile(r"\r\n|[\r\n\u2028\u2029\x0b\x0c\x85]")


def md(text: object) -> str:
    """`text` (any value; None -> "") escaped so Markdown shows it as written (on one line, links inert)."""
    if text is None:
        return ""
    one_line = _LINE_BREAKS.sub(" ", str(text))
    unlinked = _AUTOLINK_STARTS.sub(lambda m: m.group(0) + WORD_JOINER, one_line)
    return _ASCII_PUNCTUATION.sub(r"\\\1", unlinked)


def md_lines(text: object) -> str:
    """Like `md`, but keeps line breaks as Markdown hard breaks (for multi-line messages)."""
    if text is None:
        return ""
    return "  \n".join(md(line) for line in re.split(r"\r\n|\r|\n", str(text)))


def error_text(exc: BaseException) -> str:
    """An exception's message for st.error: escaped (messages quote user values), never empty."""
    return md_lines(str(exc) or type(exc).__name__)
