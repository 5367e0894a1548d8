"""Calculator and unit conversion tool plugin (pint: a parser for arithmetic with units, no eval).

pint evaluates with Python numbers, and Python integers have no size limit: ``9**9**9`` would
hold the interpreter for hours (big-integer power does not release the GIL, so no timeout can
stop it). Every number in an expression is therefore made a float before evaluation — floats
overflow to an error in microseconds — and expressions are bounded in length.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Literal

from assistant.errors import ToolError, require
from assistant.toolkit import Risk, hookimpl, tool

__all__ = ["calculate", "convert_units", "register_tools"]


@functools.lru_cache(maxsize=1)
def _ureg():
    pint = require("pint", "calc", "the calculator")
    return pint.UnitRegistry(autoconvert_offset_to_baseunit=True)


def _fmt(x: float) -> str:
    if abs(x) >= 1e15:
        return f"{x:.6g}"
    if isinstance(x, int) or float(x).is_integer():
        return f"{int(x):,}".replace(",", " ") if abs(x) >= 10000 else str(int(x))
    return f"{x:.6g}"


MAX_EXPRESSION = 200
"""Longest expression accepted, characters."""
_INTEGER = re.compile(r"(?<![\w.])(\d+)(?![\w.])")


def _evaluate(expression: str):
    ureg = _ureg()
    text = expression.strip().replace("×", "*").replace("÷", "/").replace("^", "**")
    if not text:
        raise ToolError("Give me something to calculate.")
    if len(text) > MAX_EXPRESSION:
        raise ToolError(f"That expression is too long (over {MAX_EXPRESSION} characters).")
    text = _INTEGER.sub(r"\1.0", text)  # floats overflow fast; Python's unbounded integers do not
    try:
        return ureg.parse_expression(text)
    except ZeroDivisionError:
        raise ToolError("That divides by zero.") from None
    except OverflowError:
        raise ToolError("That number is too large to work out.") from None
    except Exception as exc:  # pint raises several parse/definition errors
        raise ToolError(f"I can't calculate {expression!r}: {exc}") from None


@tool(risk=Risk.READ_ONLY)
def calculate(expression: str) -> dict:
    """Evaluate arithmetic, optionally with units: "12 * (3 + 4)", "2 ** 10", "5 km + 300 m".

    Args:
        expression: The expression, with + - * / ** and parentheses.
    """
    value = _evaluate(expression)
    if hasattr(value, "magnitude"):
        mag, unit = value.magnitude, str(value.units)
        if unit in ("dimensionless", ""):
            unit = ""
    else:
        mag, unit = value, ""
    if isinstance(mag, float) and (math.isnan(mag) or math.isinf(mag)):
        raise ToolError("That has no finite answer.")
    text = _fmt(mag) + (f" {unit}" if unit else "")
    return {"say": f"{expression.strip()} is {text}.", "value": mag, "unit": unit}


@tool(risk=Risk.READ_ONLY, templates=["what is {a} {operation} {b}", "what's {a} {operation} {b}", "(calculate|compute) {a} {operation} {b}"])
def arithmetic(a: int, operation: Literal["plus", "minus", "times", "divided by"], b: int) -> dict:
    """Add, subtract, multiply or divide two numbers.

    Args:
        a: First number.
        operation: plus, minus, times or divided by.
        b: Second number.
    """
    if operation == "divided by" and b == 0:
        raise ToolError("I can't divide by zero.")
    value = {"plus": a + b, "minus": a - b, "times": a * b, "divided by": a / b if b else math.nan}[operation]
    return {"say": f"{a} {operation} {b} is {_fmt(value)}.", "value": value}


@tool(risk=Risk.READ_ONLY)
def convert_units(value: float, from_unit: str, to_unit: str) -> dict:
    """Convert a quantity between units: 5 miles to kilometres, 70 degF to degC, 2 cups to ml.

    Args:
        value: The number.
        from_unit: Its unit, e.g. "mile", "degF", "pound".
        to_unit: The wanted unit, e.g. "km", "degC", "kg".
    """
    ureg = _ureg()
    try:
        q = ureg.Quantity(value, from_unit.strip())
        out = q.to(to_unit.strip())
    except Exception as exc:  # undefined unit, incompatible dimensions
        raise ToolError(f"I can't convert {from_unit} to {to_unit}: {exc}") from None
    return {"say": f"{_fmt(value)} {from_unit} is {_fmt(round(out.magnitude, 4))} {to_unit}.", "value": out.magnitude, "unit": to_unit}


@hookimpl
def register_tools(register) -> None:
    for fn in (calculate, arithmetic, convert_units):
        register(fn)
