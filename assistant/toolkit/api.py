"""What a tool is: a typed, documented function (or a method of a :class:`Toolbox`).

The JSON schema the LLM sees comes from the type hints (through pydantic), the description from
the docstring (Google style; each ``Args:`` entry describes its parameter). A tool declares a
:class:`Risk` class; security-sensitive and off-device tools ask for confirmation before they
run. A tool may contribute **sentence templates** (hassil syntax, ``{slot}`` = a parameter) so the
fast path runs it without any LLM.

A tool returns a sentence to say (``str``), or JSON-able data; data with a ``"say"`` key is
spoken as that sentence by the fast path, and the LLM reads the whole of it.
"""

from __future__ import annotations

import enum
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Literal, get_args, get_origin, get_type_hints

import docstring_parser
import pydantic

__all__ = ["Risk", "Tool", "ToolSpec", "Toolbox", "tool", "tool_from_function"]


class Risk(str, enum.Enum):
    """How much harm a tool call can do; decides whether it asks for confirmation first."""

    READ_ONLY = "read_only"
    """Only reads (the time, a sensor, a search of local notes)."""
    HOME = "home"
    """Changes the home (lights, media, thermostat, timers)."""
    SECURITY = "security"
    """Security-sensitive: locks, alarms, garage doors. Asks for confirmation by default."""
    OFF_DEVICE = "off_device"
    """Spends money or sends data off the device (web search, purchases). Asks by default."""


@dataclass(frozen=True)
class ToolSpec:
    """What the :func:`tool` decorator records on a function."""

    name: str | None = None
    risk: Risk = Risk.READ_ONLY
    templates: tuple[str, ...] = ()
    timeout_s: float | None = None
    escalate: Callable[..., Risk | Awaitable[Risk]] | str | None = None
    confirm_prompt: str | None = None
    dictated: tuple[str, ...] = ()


def tool(
    func: Callable | None = None,
    *,
    name: str | None = None,
    risk: Risk = Risk.READ_ONLY,
    templates: list[str] | tuple[str, ...] = (),
    timeout_s: float | None = None,
    escalate: Callable[..., Risk | Awaitable[Risk]] | str | None = None,
    confirm_prompt: str | None = None,
    dictated: list[str] | tuple[str, ...] = (),
):
    """Mark a function (or a :class:`Toolbox` method) as a tool.

    Args:
        name: Tool name (default: the function's name). Lower-case with underscores.
        risk: The tool's risk class.
        templates: Sentence templates (hassil syntax) that run this tool on the fast path, e.g.
            ``"set [a] timer for {minutes} minute[s]"``; ``{minutes}`` fills the ``minutes`` argument.
        timeout_s: Per-call timeout (default: the config's ``tools.timeout_s``).
        escalate: Optional ``(**arguments) -> Risk`` raising the risk of a particular call (the home
            tool returns ``Risk.SECURITY`` when the target is a lock or a garage door); for a
            Toolbox method, the name of another method of the toolbox.
        confirm_prompt: Question asked before a risky call; ``{arg}`` placeholders are filled in.
            For a Toolbox method, it may name another method that returns the question.
        dictated: Parameters whose value is the user's own words, taken as said (a list item, a
            note): when the request was spoken and the recogniser was unsure of its words
            (``tools.confirm_dictation_below``), the call asks "Add “…”?"-style first, so a
            misheard item is not written down (:meth:`ToolRegistry.call`).

    Usable bare (``@tool``) or with options (``@tool(risk=Risk.HOME)``).
    """
    spec = ToolSpec(name=name, risk=Risk(risk), templates=tuple(templates), timeout_s=timeout_s, escalate=escalate, confirm_prompt=confirm_prompt,
                    dictated=tuple(dictated))

    def mark(f: Callable) -> Callable:
        f.__jarvis_tool__ = spec  # type: ignore[attr-defined]
        return f

    return mark(func) if func is not None else mark


class Toolbox:
    """Base class for stateful tools: every method marked with :func:`tool` becomes a tool.

    Override :meth:`start` to open connections or start schedulers and :meth:`close` to release
    them; the registry calls both. ``name`` prefixes nothing: tool names stay as written.
    """

    name: str = ""

    async def start(self) -> None:
        """Called once before the first tool call."""

    async def close(self) -> None:
        """Called on shutdown."""

    def tools(self) -> list["Tool"]:
        out = []
        for attr in dir(type(self)):
            member = getattr(type(self), attr, None)
            if callable(member) and hasattr(member, "__jarvis_tool__"):
                out.append(tool_from_function(getattr(self, attr)))
        return out


@dataclass
class Tool:
    """A registered tool."""

    name: str
    description: str
    """What the tool does (the docstring's first paragraph); the LLM reads it."""
    parameters: dict[str, Any]
    """JSON schema (``type: object``) of the arguments."""
    risk: Risk
    func: Callable[..., Any]
    is_async: bool
    args_model: type[pydantic.BaseModel]
    templates: tuple[str, ...] = ()
    timeout_s: float | None = None
    escalate: Callable[..., Any] | None = None
    confirm_prompt: str | Callable[..., str] | None = None
    plugin: str = ""
    """Name of the plugin (entry point) that registered it."""
    param_docs: dict[str, str] = field(default_factory=dict)
    always_confirm: bool = False
    """Ask before every call whatever the risk policy (an MCP tool that does not say it is
    read-only, or says it is destructive); ``tools.never_confirm_tools`` still wins."""
    omit_unset: bool = False
    """Pass only the arguments the caller gave (an MCP server's schema may forbid nulls)."""
    dictated: tuple[str, ...] = ()
    """Parameters taken word for word from what the user said (see :func:`tool`)."""

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Check and coerce arguments against the schema.

        Raises:
            pydantic.ValidationError: Missing, unknown or ill-typed arguments.
        """
        return self.args_model.model_validate(arguments).model_dump(exclude_unset=self.omit_unset)

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "risk": self.risk.value, "plugin": self.plugin}

    def openai_schema(self) -> dict[str, Any]:
        """The tool in OpenAI's function-calling shape."""
        return {"type": "function", "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's titles, inline $defs, so small models see a compact schema."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                ref = node["$ref"].split("/")[-1]
                return walk(dict(defs[ref]))
            return {k: walk(v) for k, v in node.items() if k != "title"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def tool_from_function(func: Callable, *, plugin: str = "", spec: ToolSpec | None = None) -> Tool:
    """Build a :class:`Tool` from a typed, documented function or bound method.

    Raises:
        TypeError: A parameter has no type hint, the name is invalid, or there is no docstring.
    """
    spec = spec or getattr(func, "__jarvis_tool__", None) or ToolSpec()
    name = spec.name or func.__name__
    if not _NAME_RE.match(name):
        raise TypeError(f"tool name {name!r} must be lower_case_with_underscores (max 64 chars)")
    doc = docstring_parser.parse(inspect.getdoc(func) or "")
    if not doc.short_description:
        raise TypeError(f"tool {name!r} needs a docstring: its first line is what the LLM reads")
    description = doc.short_description.strip()
    if doc.long_description:
        description += " " + doc.long_description.strip().split("\n\n")[0].replace("\n", " ")
    param_docs = {p.arg_name: (p.description or "").replace("\n", " ") for p in doc.params}
    sig = inspect.signature(func)
    hints = get_type_hints(func)
    fields: dict[str, Any] = {}
    for pname, param in sig.parameters.items():
        if pname in ("self", "cls") or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if pname not in hints:
            raise TypeError(f"parameter {pname!r} of tool {name!r} needs a type hint")
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (hints[pname], pydantic.Field(default, description=param_docs.get(pname) or None))
    escalate = spec.escalate
    if isinstance(escalate, str):
        owner = getattr(func, "__self__", None)
        if owner is None or not hasattr(owner, escalate):
            raise TypeError(f"tool {name!r}: escalate={escalate!r} names no method of its toolbox")
        escalate = getattr(owner, escalate)
    confirm_prompt: Any = spec.confirm_prompt
    owner = getattr(func, "__self__", None)
    if isinstance(confirm_prompt, str) and confirm_prompt.isidentifier() and owner is not None and hasattr(owner, confirm_prompt):
        confirm_prompt = getattr(owner, confirm_prompt)  # a method that words the question
    model = pydantic.create_model(f"{name}_args", __config__=pydantic.ConfigDict(extra="forbid"), **fields)
    schema = _clean_schema(model.model_json_schema())
    schema.setdefault("properties", {})
    return Tool(
        name=name, description=description, parameters=schema, risk=spec.risk, func=func,
        is_async=inspect.iscoroutinefunction(func), args_model=model, templates=spec.templates,
        timeout_s=spec.timeout_s, escalate=escalate, confirm_prompt=confirm_prompt,
        plugin=plugin, param_docs=param_docs, dictated=tuple(d for d in spec.dictated if d in fields),
    )


def literal_values(annotation: Any) -> list[str] | None:
    """The allowed values of a ``Literal[...]`` or Enum annotation (also inside ``Optional``)."""
    origin = get_origin(annotation)
    if origin is Literal:
        return [str(v) for v in get_args(annotation)]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [str(m.value) for m in annotation]
    for arg in get_args(annotation):
        if arg is type(None):
            continue
        vals = literal_values(arg)
        if vals:
            return vals
    return None
