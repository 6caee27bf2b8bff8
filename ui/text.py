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
# shown literally. Escaping all of it (rather than a hand-picked list) also breaks GFM's autolink
# literals (`https://`, `www.`, `a@b.c`: the `:`, `.` and `@` no longer join), `:color[...]`
# directives, `$math$`, tables (`|`), strikethrough (`~`), headings/lists/quotes at a line start.
_ASCII_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# A line break inside a label or a sentence would start a new block (a heading, a list, a code
# block): user text is shown on one line.
_LINE_BREAKS = re.compile(r"\r\n|[\r\n\u2028\u2029\x0b\x0c\x85]")


def md(text: object) -> str:
    """`text` (any value; None -> "") escaped so Markdown shows it exactly as written, on one line."""
    if text is None:
        return ""
    one_line = _LINE_BREAKS.sub(" ", str(text))
    return _ASCII_PUNCTUATION.sub(r"\\\1", one_line)


def md_lines(text: object) -> str:
    """Like `md`, but keeps line breaks as Markdown hard breaks (for multi-line messages)."""
    if text is None:
        return ""
    return "  \n".join(md(line) for line in re.split(r"\r\n|\r|\n", str(text)))


def error_text(exc: BaseException) -> str:
    """An exception's message for st.error: escaped (messages quote user values), never empty."""
    return md_lines(str(exc) or type(exc).__name__)
