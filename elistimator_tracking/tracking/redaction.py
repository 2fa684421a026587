"""Secrets out of what a run stores: the model function's source, error text, names and values.

One vocabulary: ``is_secret_name`` says whether a name (a variable, a param or tag key, any
part of a flattened key, a query parameter, the left side of ``name=value``) looks secret, by
the words in ``SECRET_WORDS`` (a word ending in a long one of them, too: ``PGPASSWORD``) and
``<prefix> key`` for the prefixes in ``SECRET_KEY_PREFIXES``.

``redact_text`` (error text, run names, param and tag values) scans every ``name=value``,
``name: value``, ``"name": "value"``, ``--name value`` and ``<name>value</name>`` pair, wherever
it stands in the text, and redacts the value of a secret-looking name; also user info in URLs
and DSNs (``postgresql://<redacted>@host/db``) and bearer tokens.

``redact_source`` reads source code with Python's own tokenizer and redacts every string
literal bound to a secret-looking name or passed beside one: assigned to it (plain, annotated,
augmented, chained, tuple-unpacked pairwise, attribute or subscript targets such as
``os.environ["TOKEN"]``, the walrus), given to it as a keyword or default argument, a dict
entry under it, compared with it, an argument of a call that also takes a secret-looking name as
a string (``os.getenv("DB_PASSWORD", "...")``, ``.get("token", "...")``), an argument of a call of a
secret-looking function (``set_password("...")``), or anything a secret-looking function returns
(every literal in its body). Bytes, raw, f- and triple-quoted strings and implicit concatenations
across lines count alike. Every other literal and every comment goes through ``redact_text``.
The result is still valid Python with the same lines. Source the tokenizer cannot read is
withheld whole.
"""

from __future__ import annotations

import io
import re
import token
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

REDACTED = "<redacted>"
WITHHELD = "# elistimator_tracking: source withheld (it could not be tokenized, so secrets could not be redacted)\n"
#: a name holding one of these words (or its plural) looks secret: "db.password", "apiToken", "pwd"
SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "passphrase",
        "secret",
        "token",
        "credential",
        "auth",
        "authorization",
        "bearer",
        "cookie",
        "signature",
        "sig",
        "apikey",
        "accesskey",
        "privatekey",
        "secretkey",
        "sshkey",
    }
)
#: ... and so does "<one of these> key": "api_key", "aws_access_key_id", "ssh-key", "private key"
SECRET_KEY_PREFIXES = frozenset(
    {"api", "access", "private", "ssh", "secret", "signing", "encryption", "client", "master", "account", "session"}
)
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


#: ... and so does a word ending in one of these: "PGPASSWORD", "dbpasswd", "githubtoken"
SECRET_ENDINGS = tuple(word for word in SECRET_WORDS if len(word) >= 5)


def is_secret_name(name: Any) -> bool:
    """Whether ``name`` looks like it names a secret (see ``SECRET_WORDS``)."""
    words = [word.lower() for word in _WORDS.findall(str(name))]
    for i, word in enumerate(words):
        if word in SECRET_WORDS or word.rstrip("s") in SECRET_WORDS or word.rstrip("s").endswith(SECRET_ENDINGS):
            return True
        if word == "key" and i and words[i - 1] in SECRET_KEY_PREFIXES:
            return True
    return False


# -- text -------------------------------------------------------------------------------------------

_URL_USER_INFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@]+@")
_BEARER = re.compile(r"(?i)\b(bearer|basic|digest)\s+[\w\-.~+/]+=*")
_PAIR = re.compile(r"""(["']?)([A-Za-z_][\w.\-]*)\1(\s*(?:=>|=|:)\s*|\s+(?=[^\s\-=:]))""")
_SCHEME = re.compile(r"(?i)(?:bearer|basic|digest|token)\s+")
_VALUE = re.compile(r"""[bBrRuU]{0,2}"[^"\n]*"|[bBrRuU]{0,2}'[^'\n]*'|[^\s&,;)\]}"'<>]+""")
_ELEMENT = re.compile(r"<([A-Za-z_][\w.\-]*)>([^<\n]*)</\1>")


def redact_text(text: str) -> str:
    """``text`` with credentials in it redacted (see the module docstring)."""
    text = _URL_USER_INFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    text = _ELEMENT.sub(
        lambda m: f"<{m.group(1)}>{REDACTED}</{m.group(1)}>" if is_secret_name(m.group(1)) else m.group(0), text
    )
    out, position = [], 0
    for match in _PAIR.finditer(text):
        if match.start() < position or not is_secret_name(match.group(2)):
            continue
        spaced = not match.group(3).strip()  # "--password hunter2": only after a flag
        if spaced and not text[max(0, match.start() - 2) : match.start()].endswith("-"):
            continue
        start = match.end()
        scheme = _SCHEME.match(text, start)
        if scheme:
            start = scheme.end()
        value = _VALUE.match(text, start)
        if value is None:
            continue
        out.append(text[position:start] + _quoted_like(value.group(0)))
        position = value.end()
    text = "".join(out) + text[position:]
    return _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)


def _quoted_like(value: str) -> str:
    """``<redacted>`` in the quotes ``value`` had (none: none)."""
    quote = next((c for c in value if c in "\"'"), None)
    return f"{quote}{REDACTED}{quote}" if quote and value.endswith(quote) else REDACTED


# -- source -------------------------------------------------------------------------------------------


@dataclass
class _Token:
    kind: int
    text: str
    start: tuple[int, int]
    end: tuple[int, int]
    index: int = 0  # position among the significant tokens of the file


def redact_source(text: str) -> str:
    """Source code as a run may hold it (see the module docstring)."""
    try:
        tokens = list(_tokens(text))
    except (tokenize.TokenError, SyntaxError):
        return WITHHELD
    if any(t.kind == token.ERRORTOKEN and not t.text.isspace() for t in tokens):  # an unclosed string, ...
        return WITHHELD
    significant = [t for t in tokens if t.kind not in (token.NL, token.COMMENT, token.INDENT, token.DEDENT)]
    for i, t in enumerate(significant):
        t.index = i
    secret: set[int] = set()
    for statement in _statements(significant):
        secret |= _bound_to_secrets(statement)
    secret |= _in_secret_functions(tokens)
    replaced = {}
    for t in tokens:
        if t.kind == token.STRING:
            replaced[t.start] = (t.end, _redacted_literal(t.text) if id(t) in secret else redact_text(t.text))
        elif t.kind == token.COMMENT:
            replaced[t.start] = (t.end, redact_text(t.text))
    return _rebuilt(text, replaced)


def _tokens(text: str) -> Iterator[_Token]:
    """The tokens of ``text``; an f-string (several tokens since Python 3.12) as one STRING token."""
    fstring_start = getattr(token, "FSTRING_START", None)
    fstring_end = getattr(token, "FSTRING_END", None)
    depth, opened = 0, None  # opened: where the outermost f-string began
    for t in tokenize.generate_tokens(io.StringIO(text).readline):
        if fstring_start is not None and t.type == fstring_start:
            depth += 1
            opened = opened or t.start
            continue
        if depth:
            if t.type == fstring_end:
                depth -= 1
                if not depth and opened is not None:
                    yield _Token(token.STRING, "f''", opened, t.end)
                    opened = None
            continue
        yield _Token(t.type, t.string, t.start, t.end)


def _statements(tokens: list[_Token]) -> Iterator[list[_Token]]:
    current: list[_Token] = []
    for t in tokens:
        if t.kind in (token.NEWLINE, token.ENDMARKER):
            if current:
                yield current
            current = []
        else:
            current.append(t)
    if current:
        yield current


def _is(t: _Token, *texts: str) -> bool:
    return t.kind == token.OP and t.text in texts


def _split(tokens: list[_Token], *separators: str) -> list[list[_Token]]:
    """``tokens`` split at the ``separators`` that are not inside brackets."""
    parts: list[list[_Token]] = []
    current: list[_Token] = []
    depth = 0
    for t in tokens:
        if _is(t, "(", "[", "{"):
            depth += 1
        elif _is(t, ")", "]", "}"):
            depth -= 1
        if depth == 0 and _is(t, *separators):
            parts.append(current)
            current = []
        else:
            current.append(t)
    parts.append(current)
    return parts


AUGMENTED = ("+=", "-=", "*=", "/=", "//=", "%=", "**=", "|=", "&=", "^=", ">>=", "<<=", "@=")


def _bound_to_secrets(statement: list[_Token]) -> set[int]:
    """The ids of the string tokens of one logical line bound to (or passed beside) a secret name."""
    secret: set[int] = set()
    parts = _split(statement, "=", *AUGMENTED)
    if len(parts) > 1:
        value = parts[-1]
        for target in parts[:-1]:
            secret |= _assigned(_split(target, ":")[0], value)
    for group in _groups(statement):
        secret |= _in_group(group)
    for i, t in enumerate(statement):  # password == "...", "..." != token
        if _is(t, "==", "!=") and 0 < i < len(statement) - 1:
            left, right = statement[i - 1], statement[i + 1]
            for name, literal in ((left, right), (right, left)):
                if literal.kind == token.STRING and _names_secret([name]):
                    secret.add(id(literal))
    return secret


def _assigned(target: list[_Token], value: list[_Token]) -> set[int]:
    """Strings of ``value`` bound to a secret-looking part of ``target`` (tuples pair by position)."""
    names = _split(_unwrapped(target), ",")
    values = _split(_unwrapped(value), ",")
    if len(names) > 1 and len(names) == len(values):
        return {id(t) for name, item in zip(names, values, strict=True) if _names_secret(name) for t in _strings(item)}
    return {id(t) for t in _strings(value)} if any(_names_secret(name) for name in names) else set()


def _unwrapped(tokens: list[_Token]) -> list[_Token]:
    """``(a, b)`` / ``[a, b]`` without the outer brackets (when they enclose the whole)."""
    if len(tokens) >= 2 and _is(tokens[0], "(", "[") and _is(tokens[-1], ")", "]"):
        depth = 0
        for i, t in enumerate(tokens):
            depth += 1 if _is(t, "(", "[", "{") else -1 if _is(t, ")", "]", "}") else 0
            if depth == 0:
                return tokens[1:-1] if i == len(tokens) - 1 else tokens  # the first bracket closes last
    return tokens


def _names_secret(target: list[_Token]) -> bool:
    """Whether a target (``password``, ``self.db.password``, ``env["TOKEN"]``, ``*tokens``) names a secret."""
    target = [t for t in target if not _is(t, "*", "**")]
    if not target:
        return False
    if _is(target[-1], "]") and len(target) >= 3 and target[-2].kind == token.STRING:
        return is_secret_name(_literal_text(target[-2]))
    names = [t for t in target if t.kind == token.NAME]
    return bool(names) and target[-1].kind == token.NAME and is_secret_name(names[-1].text)


def _groups(statement: list[_Token]) -> Iterator[tuple[_Token | None, list[_Token], str]]:
    """Every bracketed group of the statement: (the token before it, its inside, its opening bracket)."""
    stack: list[int] = []
    for i, t in enumerate(statement):
        if _is(t, "(", "[", "{"):
            stack.append(i)
        elif _is(t, ")", "]", "}") and stack:
            start = stack.pop()
            yield (statement[start - 1] if start else None), statement[start + 1 : i], statement[start].text


def _in_group(group: tuple[_Token | None, list[_Token], str]) -> set[int]:
    before, inside, bracket = group
    elements = [e for e in _split(inside, ",") if e]
    secret: set[int] = set()
    for element in elements:
        for separator in ("=", ":=", ":"):
            parts = _split(element, separator)
            if len(parts) < 2:
                continue
            key, value = parts[0], parts[-1] if separator != ":" else parts[1]
            if separator == ":" and bracket != "{":
                continue  # an annotation or a slice, not a dict entry
            key = _split(key, ":")[0]  # def f(token: str = "...")
            if _names_secret(key) or (len(key) == 1 and key[0].kind == token.STRING and _secret_literal(key[0])):
                secret |= {id(t) for t in _strings(value)}
            break
    called_secret = bracket == "(" and before is not None and before.kind == token.NAME and is_secret_name(before.text)
    beside_secret = bracket == "(" and any(len(e) == 1 and _secret_literal(e[0]) for e in elements)
    if called_secret or beside_secret:
        secret |= {id(t) for e in elements if not (len(e) == 1 and _secret_literal(e[0])) for t in _strings(e)}
    return secret


def _secret_literal(t: _Token) -> bool:
    """A string literal that is a secret-looking name (``"DB_PASSWORD"``, ``'api-key'``), not prose."""
    if t.kind != token.STRING:
        return False
    value = _literal_text(t)
    return bool(re.fullmatch(r"[A-Za-z_][\w.\-]*", value)) and is_secret_name(value)


def _literal_text(t: _Token) -> str:
    return t.text.lstrip("bBrRuUfF").strip("\"'")


def _strings(tokens: list[_Token]) -> list[_Token]:
    return [t for t in tokens if t.kind == token.STRING]


def _in_secret_functions(tokens: list[_Token]) -> set[int]:
    """Every string literal in the body of a function with a secret-looking name (what it returns)."""
    secret: set[int] = set()
    level, inside = 0, []  # the indentation levels of the secret functions we are in
    pending = False
    for i, t in enumerate(tokens):
        if t.kind == token.INDENT:
            level += 1
            if pending:
                inside.append(level)
                pending = False
        elif t.kind == token.DEDENT:
            if inside and inside[-1] == level:
                inside.pop()
            level -= 1
        elif t.kind == token.NAME and t.text == "def" and i + 1 < len(tokens) and is_secret_name(tokens[i + 1].text):
            pending = True
        elif t.kind == token.STRING and (inside or pending):
            secret.add(id(t))
    return secret


def _redacted_literal(literal: str) -> str:
    """``<redacted>`` as a literal of the same kind (bytes stay bytes) spanning the same lines."""
    prefix = "".join(c for c in literal[: len(literal) - len(literal.lstrip("bBrRuUfF"))] if c in "bB")
    lines = literal.count("\n")
    return f'{prefix}"""{REDACTED}' + "\n" * lines + '"""' if lines else f'{prefix}"{REDACTED}"'


def _rebuilt(text: str, replaced: dict[tuple[int, int], tuple[tuple[int, int], str]]) -> str:
    """``text`` with the spans ``replaced`` maps (start -> (end, new text)) swapped in."""
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def offset(position: tuple[int, int]) -> int:
        return offsets[position[0] - 1] + position[1]

    out, last = [], 0
    for start, (end, new) in sorted(replaced.items()):
        out.append(text[last : offset(start)] + new)
        last = offset(end)
    return "".join(out) + text[last:]
