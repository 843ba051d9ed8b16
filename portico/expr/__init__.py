"""The ap_expr subset: what ProxyHCExpr (and later other conditions) need (reference §11).

``compile_expr(text, file, line)`` parses and compiles once (ExprError with the column on a
mistake); ``Expr.evaluate(EvalContext(...))`` answers a bool, cheaply and without side effects.
"""

from portico.expr.context import EvalContext
from portico.expr.errors import ExprError
from portico.expr.evaluate import Expr, compile_expr

__all__ = ["EvalContext", "Expr", "ExprError", "compile_expr"]
