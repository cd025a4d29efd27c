"""Text that came from a scenario file, made safe to show.

Scenario files are shared, so a name, a path or a value quoted from one may hold anything
TOML strings can hold: ANSI and OSC escape sequences, other control characters, bidi
overrides.  :func:`for_terminal` shows those as visible escapes; :func:`csv_cell` keeps a
cell from being read as a formula by a spreadsheet (OWASP's CSV-injection advice);
:func:`quote` is a short, escaped rendering of a value for an error message.
"""

from __future__ import annotations

import re
import reprlib
from typing import Any

#: characters a spreadsheet reads as the start of a formula (OWASP CSV injection)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

#: anything but printable ASCII, newline and tab (checked further by _visible)
_NOT_PLAIN = re.compile(r"[^\x20-\x7e\n\t]")

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60
_short.maxlist = _short.maxtuple = 6
_short.maxdict = 4
_short.maxlevel = 3


def _visible(ch: str) -> str:
    if ch.isprintable() or ch in "\n\t":
        return ch
    return ch.encode("unicode_escape").decode("ascii")


def for_terminal(text: str) -> str:
    """``text`` with every character a terminal would act on (escape sequences, other
    control characters, bidi overrides, lone surrogates) shown as a backslash escape;
    newlines and tabs are kept."""
    if _NOT_PLAIN.search(text) is None:
        return text
    return _NOT_PLAIN.sub(lambda m: _visible(m.group()), text)


def csv_cell(value: str) -> str:
    """A CSV cell a spreadsheet shows as text: a leading ``'`` before ``= + - @``, a tab
    or a carriage return."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def quote(value: Any) -> str:
    """A short repr of ``value`` for an error message: long strings and deep or long
    containers are cut, control characters escaped."""
    return for_terminal(_short.repr(value))
