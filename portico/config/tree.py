"""The parsed configuration tree: directives and sections with their file:line.

The lexer and preprocessor produce this tree (Include, Define, ${VAR}, <IfDefine> and
<IfModule> already resolved); the directive registry walks it to build the frozen model.
"""

from __future__ import annotations

__all__ = ["Node"]

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Node:
    """A directive (``children is None``) or a section (``children`` is a tuple).

    ``name`` keeps the spelling of the config file; compare it case-insensitively (httpd
    directive names are case-insensitive). ``args`` are the words after the name, with quotes
    removed and escapes resolved; for a section they are the words inside ``<Name ...>``.
    """

    name: str
    args: tuple[str, ...]
    file: str
    line: int
    children: tuple[Node, ...] | None = None

    @property
    def is_section(self) -> bool:
        return self.children is not None
