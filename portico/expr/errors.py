"""The one exception type of the expression language."""

from __future__ import annotations

__all__ = ["ExprError"]


class ExprError(Exception):
    """An expression that cannot be parsed (or, inside ``Expr.explain``, evaluated).

    ``file``/``line`` say where the expression was written (the config directive);
    ``column`` is the 1-based position inside the expression text, when known.
    """

    def __init__(self, message: str, file: str = "<expr>", line: int = 0,
                 column: int | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" (column {self.column})" if self.column is not None else ""
        return f"{self.file}:{self.line}: {self.message}{where}"
