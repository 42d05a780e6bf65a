"""A statement's `FORMAT` clause found as ClickHouse's lexer finds it: past comments (`--`, `# `, `#!`,
nested `/* */`), strings, quoted names and heredocs, outside parentheses, with a `SETTINGS` clause, comments
or a `;` after it. The local server (local_server.py) streams a read only when this says which format the
engine writes; anything it cannot tell runs whole, so an answer is never blocks of another format spliced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# One token at a time: runs of what no rule below cares about (digits, commas, operators) in one match, so a
# read of a long IN list is scanned in few steps; `other` is one character the loop looks at itself.
_TOKEN = re.compile(
    rb"""(?P<space>[ \t\r\n\f\v]+)
    |(?P<plain>[^ \t\r\n\f\v'"`$\#/\-()A-Za-z_;]+)
    |(?P<word>[A-Za-z_][A-Za-z0-9_$]*)
    |(?P<comment>--[^\n]*(?:\n|\Z)|\#[ !][^\n]*(?:\n|\Z)|\#\Z)
    |(?P<string>'(?:[^'\\]|\\.|'')*')
    |(?P<name>"(?:[^"\\]|\\.|"")*"|`(?:[^`\\]|\\.|``)*`)
    |(?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)
_HEREDOC = re.compile(rb"\$([A-Za-z0-9_]*)\$")


class Unreadable(ValueError):
    """A statement the scanner cannot follow to its end (an unterminated string, comment or name)."""


@dataclass(frozen=True)
class Token:
    kind: str  # "word", "name" (quoted), "string", "plain" (digits, operators, commas), "comment", "punct"
    start: int  # where it starts in the statement
    end: int  # where it ends
    depth: int  # parentheses around it


def _block_comment(sql: bytes, at: int) -> int:
    """The end of the (nested) block comment opened at `at`."""
    depth, k = 0, at
    while k < len(sql) - 1:
        pair = sql[k : k + 2]
        if pair == b"/*":
            depth, k = depth + 1, k + 2
        elif pair == b"*/":
            depth, k = depth - 1, k + 2
            if depth == 0:
                return k
        else:
            k += 1
    raise Unreadable(f"unterminated comment at {at}")


def _other(sql: bytes, at: int) -> tuple[str, int]:
    """The kind and end of the token at `at` that `_TOKEN` left to the loop (one character matched)."""
    c = sql[at : at + 1]
    if sql[at : at + 2] == b"/*":
        return "comment", _block_comment(sql, at)
    if c == b"$" and (heredoc := _HEREDOC.match(sql, at)):  # $tag$ ... $tag$
        end = sql.find(heredoc.group(0), heredoc.end())
        if end < 0:
            raise Unreadable(f"unterminated heredoc at {at}")
        return "string", end + len(heredoc.group(0))
    if c in (b"'", b'"', b"`"):
        raise Unreadable(f"unterminated {c.decode()} at {at}")
    return "punct", at + 1


def tokens(sql: bytes) -> list[Token]:
    """The statement's tokens, whitespace left out."""
    out, at, depth = [], 0, 0
    while at < len(sql):
        match = _TOKEN.match(sql, at)
        kind, end = match.lastgroup, match.end()
        if kind == "space":
            at = end
            continue
        if kind == "other":
            kind, end = _other(sql, at)
        if kind == "punct" and sql[at] == 0x29:  # )
            depth = max(0, depth - 1)
        out.append(Token(kind, at, end, depth))
        if kind == "punct" and sql[at] == 0x28:  # (
            depth += 1
        at = end
    return out


@dataclass(frozen=True)
class FormatClause:
    name: str  # the format, as written
    start: int  # where `FORMAT` starts
    end: int  # where its name ends
    tail: bytes  # what follows it but comments and a final `;` (a SETTINGS clause)


def _word(sql: bytes, token: Token) -> bytes:
    return sql[token.start : token.end].upper() if token.kind == "word" else b""


def _settings_only(sql: bytes, rest: list[Token]) -> bool:
    """Whether `rest` is nothing but `SETTINGS name = value, ...` and a `;` (its words and values, flat)."""
    rest = [t for t in rest if t.kind != "comment"]
    if rest and sql[rest[-1].start : rest[-1].end] == b";":
        rest = rest[:-1]
    if not rest:
        return True
    return _word(sql, rest[0]) == b"SETTINGS" and all(t.depth == rest[0].depth for t in rest)


def format_clause(sql: bytes) -> FormatClause | None:
    """The statement's own `FORMAT <name>` (outside parentheses, only a SETTINGS clause, comments or a `;`
    after it), or None if it has none. `Unreadable` when the scanner cannot follow it, or a top-level
    `FORMAT` is followed by something else (the engine judges such a statement; it is not streamed)."""
    if b"format" not in sql.lower():  # most statements: no token to look for (a read of a long IN list)
        return None
    found = tokens(sql)
    for k in range(len(found) - 1, -1, -1):
        token = found[k]
        if token.depth or _word(sql, token) != b"FORMAT":
            continue
        following = [t for t in found[k + 1 :] if t.kind != "comment"]
        if following and following[0].kind in ("word", "name") and _settings_only(sql, following[1:]):
            name_token = following[0]
            name = sql[name_token.start : name_token.end].decode()
            if name_token.kind == "name":
                name = name[1:-1]
            after = [t for t in found[found.index(name_token) + 1 :] if t.kind != "comment"]
            if after and sql[after[-1].start : after[-1].end] == b";":
                after = after[:-1]
            tail = b" ".join(sql[t.start : t.end] for t in after)
            return FormatClause(name, token.start, name_token.end, tail)
        raise Unreadable("a FORMAT that does not end the statement")
    return None


__all__ = ["FormatClause", "Token", "Unreadable", "format_clause", "tokens"]
