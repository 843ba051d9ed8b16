"""Turn config files into a tree of ``Node``s, resolving what httpd resolves while reading.

Handled here, in file order, exactly once: ``Include``/``IncludeOptional`` (globs, directories,
paths relative to ServerRoot), ``Define``/``UnDefine``, ``${VAR}`` in arguments (Define'd
values first, then the process environment; an unknown name is left as written with a
warning, like httpd), ``ServerRoot`` (it changes where later Includes look, and stays in the
tree for the loader), and the conditional sections ``<IfDefine>``, ``<IfModule>``,
``<IfVersion>``, ``<IfFile>``, ``<IfDirective>`` and ``<IfSection>``, whose content is spliced
into the parent when true and skipped unread when false.

Sections must close in the file that opened them (httpd's rule), and every node keeps the
file and first physical line it came from.
"""

from __future__ import annotations

__all__ = ["HTTPD_VERSION", "Preprocessed", "preprocess"]

import glob
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from portico.config.lexer import LogicalLine, read_logical_lines, split_words
from portico.config.tree import Node
from portico.errors import ConfigError

_log = logging.getLogger("portico.config")

#: The httpd version portico answers to in <IfVersion>.
HTTPD_VERSION = (2, 4, 71)
#: httpd's AP_MAX_INCLUDE_DEPTH.
MAX_INCLUDE_DEPTH = 128

_VAR = re.compile(r"\$\{([^}]+)\}")
_GLOB_CHARS = re.compile(r"[*?\[]")
_CONDITIONALS = ("ifdefine", "ifmodule", "ifversion", "iffile", "ifdirective", "ifsection")


@dataclass
class Preprocessed:
    """The tree plus the state that reading it left behind."""

    nodes: tuple[Node, ...]
    defines: dict[str, str | None]
    server_root: str


@dataclass
class _Frame:
    name: str
    args: tuple[str, ...]
    file: str
    line: int
    transparent: bool
    children: list[Node] = field(default_factory=list)


class _Reader:
    """Reads files recursively; holds the Define table and the current ServerRoot."""

    def __init__(
        self,
        defines: dict[str, str | None],
        server_root: str,
        environ: Mapping[str, str],
        module_known: Callable[[str], bool],
        directive_known: Callable[[str, bool], bool],
    ) -> None:
        self.defines = defines
        self.server_root = server_root
        self.environ = environ
        self.module_known = module_known
        self.directive_known = directive_known
        self.stack: list[str] = []

    # -- variables -------------------------------------------------------------------------

    def substitute(self, text: str, where: LogicalLine) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            value = self.defines.get(name)
            if value is not None:
                return value
            if name in self.environ:
                return self.environ[name]
            _log.warning("%s:%d: config variable ${%s} is not defined; left as written",
                         where.file, where.line, name)
            return match.group(0)

        return _VAR.sub(replace, text)

    def words(self, raw: str, where: LogicalLine, name: str) -> tuple[str, ...]:
        try:
            return tuple(split_words(self.substitute(raw, where)))
        except ValueError as exc:
            raise ConfigError(str(exc), where.file, where.line, name) from None

    # -- files -----------------------------------------------------------------------------

    def read_file(self, path: str, origin: LogicalLine | None) -> list[Node]:
        if len(self.stack) >= MAX_INCLUDE_DEPTH:
            raise _located(f"includes nested deeper than {MAX_INCLUDE_DEPTH}; is there a loop?",
                           origin, "Include")
        real = os.path.realpath(path)
        if real in self.stack:
            raise _located(f"{path} includes itself (directly or through other files)",
                           origin, "Include")
        self.stack.append(real)
        try:
            try:
                lines = read_logical_lines(path)
            except ConfigError as exc:
                if origin is None:
                    raise
                raise ConfigError(f"{path}: {exc.message}", origin.file, origin.line,
                                  "Include") from None
            return self._parse(lines, path)
        finally:
            self.stack.pop()

    def _parse(self, lines: list[LogicalLine], path: str) -> list[Node]:
        root = _Frame("", (), path, 0, transparent=False)
        stack = [root]
        index = 0
        while index < len(lines):
            entry = lines[index]
            index += 1
            text = entry.text
            if text.startswith("</"):
                self._close(stack, entry)
            elif text.startswith("<"):
                name, raw = _section_head(entry)
                args = self.words(raw, entry, f"<{name}>")
                if name.lower() in _CONDITIONALS:
                    if not self._condition(name, args, entry):
                        index = _skip_section(lines, index, name, entry)
                        continue
                    stack.append(_Frame(name, args, entry.file, entry.line, transparent=True))
                else:
                    stack.append(_Frame(name, args, entry.file, entry.line, transparent=False))
            else:
                self._directive(stack[-1], entry)
        if len(stack) > 1:
            top = stack[-1]
            raise ConfigError(f"<{top.name}> was not closed", top.file, top.line, f"<{top.name}>")
        return root.children

    def _close(self, stack: list[_Frame], entry: LogicalLine) -> None:
        text = entry.text
        if not text.endswith(">"):
            raise ConfigError("closing section tag is missing its '>'", entry.file, entry.line,
                              text)
        name = text[2:-1].strip()
        top = stack[-1]
        if len(stack) == 1:
            raise ConfigError(f"</{name}> without a matching <{name}>", entry.file, entry.line,
                              f"</{name}>")
        if name.lower() != top.name.lower():
            raise ConfigError(
                f"expected </{top.name}> (opened at line {top.line}) but saw </{name}>",
                entry.file, entry.line, f"</{name}>")
        stack.pop()
        if top.transparent:
            stack[-1].children.extend(top.children)
        else:
            stack[-1].children.append(
                Node(top.name, top.args, top.file, top.line, tuple(top.children)))

    def _directive(self, frame: _Frame, entry: LogicalLine) -> None:
        parts = entry.text.split(None, 1)
        name = parts[0]
        raw = parts[1] if len(parts) > 1 else ""
        args = self.words(raw, entry, name)
        lowered = name.lower()
        if lowered in ("include", "includeoptional"):
            if len(args) != 1:
                raise ConfigError("expects exactly one file name or pattern", entry.file,
                                  entry.line, name)
            for included in self._include_targets(args[0], lowered == "include", entry, name):
                frame.children.extend(self.read_file(included, entry))
            return
        if lowered == "define":
            self._define(args, entry, name)
            return
        if lowered == "undefine":
            if len(args) != 1:
                raise ConfigError("expects exactly one name", entry.file, entry.line, name)
            self.defines.pop(args[0], None)
            return
        if lowered == "serverroot" and len(args) == 1:
            self.server_root = os.path.abspath(args[0])
        frame.children.append(Node(name, args, entry.file, entry.line))

    def _define(self, args: tuple[str, ...], entry: LogicalLine, name: str) -> None:
        if not 1 <= len(args) <= 2:
            raise ConfigError("expects a name and an optional value", entry.file, entry.line,
                              name)
        if ":" in args[0]:
            raise ConfigError(f"variable name {args[0]!r} must not contain ':'", entry.file,
                              entry.line, name)
        self.defines[args[0]] = args[1] if len(args) == 2 else None

    # -- Include ---------------------------------------------------------------------------

    def _include_targets(
        self, pattern: str, required: bool, entry: LogicalLine, name: str,
    ) -> list[str]:
        path = pattern if os.path.isabs(pattern) else os.path.join(self.server_root, pattern)
        if _GLOB_CHARS.search(path):
            matches = sorted(glob.glob(path))
            if not matches:
                if required:
                    raise ConfigError(
                        f"no file matches the wildcard {path!r} (use IncludeOptional if that "
                        "is expected)", entry.file, entry.line, name)
                _log.debug("%s:%d: IncludeOptional %s matched nothing", entry.file, entry.line,
                           path)
                return []
        elif os.path.exists(path):
            matches = [path]
        else:
            if required:
                raise ConfigError(f"{path} does not exist", entry.file, entry.line, name)
            _log.debug("%s:%d: IncludeOptional %s does not exist", entry.file, entry.line, path)
            return []
        files: list[str] = []
        for match in matches:
            files.extend(_expand_directory(match))
        return files

    # -- conditionals ----------------------------------------------------------------------

    def _condition(self, name: str, args: tuple[str, ...], entry: LogicalLine) -> bool:
        kind = name.lower()
        if kind == "ifversion":
            return _version_matches(args, entry, name)
        if len(args) != 1:
            raise ConfigError("expects exactly one argument", entry.file, entry.line, f"<{name}>")
        word = args[0]
        negate = word.startswith("!")
        if negate:
            word = word[1:]
        if not word:
            raise ConfigError("needs a name after '!'", entry.file, entry.line, f"<{name}>")
        if kind == "ifdefine":
            result = word in self.defines
        elif kind == "ifmodule":
            result = self.module_known(word)
        elif kind == "iffile":
            path = word if os.path.isabs(word) else os.path.join(self.server_root, word)
            result = os.path.exists(path)
        elif kind == "ifsection":
            result = self.directive_known(word, True)
        else:  # ifdirective
            result = self.directive_known(word, False)
        return result != negate


def _located(message: str, where: LogicalLine | None, directive: str) -> ConfigError:
    if where is None:
        return ConfigError(message)
    return ConfigError(message, where.file, where.line, directive)


def _section_head(entry: LogicalLine) -> tuple[str, str]:
    text = entry.text
    if not text.endswith(">"):
        name = text[1:].split(None, 1)[0] if len(text) > 1 else ""
        raise ConfigError("section line is missing its closing '>'", entry.file, entry.line,
                          f"<{name.rstrip('>')}>")
    inner = text[1:-1].strip()
    if not inner:
        raise ConfigError("empty section tag '<>'", entry.file, entry.line, "<>")
    parts = inner.split(None, 1)
    return parts[0], parts[1] if len(parts) > 1 else ""


def _skip_section(lines: list[LogicalLine], index: int, name: str, opened: LogicalLine) -> int:
    """Skip a false conditional's body unread (nested sections counted); return next index."""
    depth = 1
    while index < len(lines):
        text = lines[index].text
        index += 1
        if text.startswith("</"):
            depth -= 1
            if depth == 0:
                closing = text[2:].rstrip(">").strip()
                if closing.lower() != name.lower():
                    where = lines[index - 1]
                    raise ConfigError(
                        f"expected </{name}> (opened at line {opened.line}) but saw "
                        f"</{closing}>", where.file, where.line, f"</{closing}>")
                return index
        elif text.startswith("<"):
            depth += 1
    raise ConfigError(f"<{name}> was not closed", opened.file, opened.line, f"<{name}>")


def _expand_directory(path: str) -> list[str]:
    """A directory includes every file below it, sorted by name at each level (as httpd)."""
    if not os.path.isdir(path):
        return [path]
    found: list[str] = []
    for entry in sorted(os.listdir(path)):
        found.extend(_expand_directory(os.path.join(path, entry)))
    return found


_VERSION_WORD = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?$")


def _version_matches(args: tuple[str, ...], entry: LogicalLine, name: str) -> bool:
    """<IfVersion [[!]op] version> against HTTPD_VERSION.

    ``=``/``==`` treats missing components as wildcards (``= 2.4`` is true for any 2.4.x);
    ordering operators pad missing components with 0. ``~ re`` and ``/re/`` match the
    dotted version string.
    """
    where = f"<{name}>"
    if len(args) == 1:
        op, version = "=", args[0]
    elif len(args) == 2:
        op, version = args
    else:
        raise ConfigError("expects [[!]operator] version", entry.file, entry.line, where)
    negate = op.startswith("!")
    if negate:
        op = op[1:]
    text = ".".join(map(str, HTTPD_VERSION))
    slashed = len(version) >= 2 and version.startswith("/") and version.endswith("/")
    if op == "~" or (op in ("=", "==") and slashed):
        pattern = version[1:-1] if op != "~" else version
        try:
            result = re.search(pattern, text) is not None
        except re.error as exc:
            raise ConfigError(f"bad regular expression: {exc}", entry.file, entry.line,
                              where) from None
        return result != negate
    match = _VERSION_WORD.match(version)
    if match is None:
        raise ConfigError(f"{version!r} is not a version number", entry.file, entry.line, where)
    given = [int(part) for part in match.groups() if part is not None]
    mine = list(HTTPD_VERSION)
    if op in ("=", "=="):
        result = mine[: len(given)] == given
    else:
        padded = given + [0] * (3 - len(given))
        compare = {
            ">": mine > padded, ">=": mine >= padded, "<": mine < padded, "<=": mine <= padded,
        }
        if op not in compare:
            raise ConfigError(f"unknown operator {op!r}", entry.file, entry.line, where)
        result = compare[op]
    return result != negate


def preprocess(
    path: str,
    defines: Iterable[str] = (),
    server_root: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    module_known: Callable[[str], bool] = lambda name: False,
    directive_known: Callable[[str, bool], bool] = lambda name, section: False,
) -> Preprocessed:
    """Read ``path`` and everything it includes into a Node tree.

    ``defines`` are ``NAME`` or ``NAME=value`` strings (``-D`` on the command line).
    ``server_root`` defaults to the directory of ``path``. ``module_known`` answers
    <IfModule>, ``directive_known(name, is_section)`` answers <IfDirective>/<IfSection>.
    """
    table: dict[str, str | None] = {}
    for item in defines:
        key, sep, value = item.partition("=")
        table[key] = value if sep else None
    root = os.path.abspath(server_root or os.path.dirname(os.path.abspath(path)))
    reader = _Reader(table, root, os.environ if environ is None else environ, module_known,
                     directive_known)
    nodes = reader.read_file(path, None)
    return Preprocessed(tuple(nodes), reader.defines, reader.server_root)
