"""How reports fit the Prefect UI at 1280 px: code lines wrapped to `WIDTH`, long paths behind short links,
tables whose headers all show. tests/report_width.py checks every published report against these limits."""

from __future__ import annotations

import shlex

# At 1280 px the UI's artifact pane (sidebar and padding off) is about 950 px wide: about 110 characters of
# its monospace code font and about 130 of its table text (cell padding counted as 3 characters a column).
# The limits keep a margin: a narrower window, a scrollbar.
WIDTH = 88  # characters of a code line
TABLE_WIDTH = 120  # characters up to where a table's last column starts, its header included
PATH_WIDTH = 80  # characters of a path shown in prose (a code span never wraps): a line less its label


def wrapped(command: str, width: int = WIDTH) -> str:
    """A shell command as a reader's code block shows it: past `width`, each option (with its value) and each
    override on a line of its own, continued with backslashes, so no line runs off the UI's right edge. A
    path still too long is broken after a `/` with a backslash-newline (the shell joins it back)."""
    if len(command) <= width:
        return command
    parts: list[str] = []
    for word in shlex.split(command):
        if parts and (_is_value(word) or _wants_value(parts[-1])):
            parts[-1] += " " + shlex.quote(word)
        else:
            parts.append(shlex.quote(word))
    lines = [_fold(part, width - 6) for part in parts]  # room for the indent and " \"
    return " \\\n    ".join(lines)


def unwrapped(text: str) -> str:
    """`wrapped`'s lines joined back as the shell joins them."""
    return text.replace(" \\\n    ", " ").replace("\\\n", "")


def _is_value(word: str) -> bool:
    """An argument or an option's value: it stays on its option's (or the command's) line."""
    return not (word.startswith("-") or "=" in word)


def _wants_value(part: str) -> bool:
    """A lone `--option` (its value may hold `=`, as `--param key=value` does)."""
    return part.startswith("-") and " " not in part and "=" not in part


def _fold(part: str, width: int) -> str:
    """`part` broken after a `/` wherever it runs past `width`. Quoted words are left whole: inside quotes the
    shell keeps a backslash-newline as it is."""
    if "'" in part:
        return part
    lines: list[str] = []
    while len(part) > width:
        cut = part.rfind("/", 1, width)
        if cut <= 0:
            break
        lines.append(part[: cut + 1])
        part = part[cut + 1 :]
    return "\\\n".join([*lines, part])


def short_path(uri: str) -> str:
    """A checkpoint's or file's name as people tell it apart: its folder and its name."""
    return "/".join(uri.rstrip("/").rsplit("/", 2)[-2:])


def path_link(uri: str | None) -> str:
    """`uri` for prose: whole while it is short, else its short name linking to it (the full path is the
    link's target, one click or a copied link away)."""
    if uri is None:
        return "-"
    if len(uri) <= PATH_WIDTH:
        return f"`{uri}`"
    return f"[`{short_path(uri)}`]({link_target(uri)})"


def short_link(uri: str | None) -> str:
    """A path in a table cell: its short name, linking to the full path."""
    return "-" if uri is None else f"[{short_path(uri)}]({link_target(uri)})"


def link_target(uri: str) -> str:
    """A markdown link's target; one with spaces in angle brackets (CommonMark's form)."""
    return f"<{uri}>" if " " in uri else uri
