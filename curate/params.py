"""Parameters the scikit-learn way: a stage's or policy's constructor arguments are its parameters.

Each argument is declared once, in the constructor's signature: its type hint is checked at
construction (strictly: `true` is not a number, `'0.5'` is not a float, NaN is refused unless a hint
allows it), and `Annotated[..., Field(ge=0, le=1, description=...)]` adds a range and a one-line doc.
The constructor stores every argument under its own name, so `get_params()` reads them back and
`type(obj)(**obj.get_params())` rebuilds an equal object.
"""
from __future__ import annotations

import functools
import inspect
import typing
from typing import Any, ClassVar

from pydantic import ConfigDict, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from curate.errors import ConfigError

_STRICT = ConfigDict(strict=True, arbitrary_types_allowed=True, allow_inf_nan=False)


class _Checked(type):
    """Checks the arguments against the constructor's declarations before the constructor runs."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        cls.check_arguments(*args, **kwargs)
        return super().__call__(*args, **kwargs)


class Params(metaclass=_Checked):
    """Base of stages and policies: parameters are the constructor's arguments, kept as attributes."""

    kind: ClassVar[str] = "object"       # "stage" or "policy", for messages
    type: ClassVar[str] = ""
    # Parameters that change how the work is cut, never the result (tiles, devices, partitions):
    # left out of the key that marks stored outputs done.
    unkeyed: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def param_names(cls) -> list[str]:
        return [p.name for p in _signature(cls).parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    @classmethod
    def param_specs(cls) -> dict[str, ParamSpec]:
        """Each parameter's hint, default and doc, read from the constructor (for checks and docs)."""
        return _specs(cls)

    def get_params(self) -> dict[str, Any]:
        """The constructor's arguments, as given (or as normalised by the constructor)."""
        return {name: getattr(self, name) for name in self.param_names()}

    def keyed_params(self) -> dict[str, Any]:
        """The parameters that decide the results (all but `name` and `unkeyed`)."""
        return {k: v for k, v in self.get_params().items() if k != "name" and k not in self.unkeyed}

    @classmethod
    def check_arguments(cls, *args: Any, **kwargs: Any) -> None:
        """Check constructor arguments against their declared types and ranges; ConfigError names the first bad one."""
        try:
            bound = _signature(cls).bind(None, *args, **kwargs)
        except TypeError as e:
            raise ConfigError(f"{cls.kind} {cls.type or cls.__name__}: {e}") from None
        specs = cls.param_specs()
        for name, value in list(bound.arguments.items())[1:]:
            problem = specs[name].problem(value) if name in specs else None
            if problem:
                raise ConfigError(f"{cls.kind} {cls.type or cls.__name__}: parameter {name!r} {problem}")

    def implied_name(self) -> str | None:
        """The `name` an object gets when none is given (not shown by repr)."""
        return None

    def __repr__(self) -> str:
        specs = self.param_specs()
        shown = [f"{k}={v!r}" for k, v in self.get_params().items()
                 if not (k == "name" and v == self.implied_name())
                 and (k not in specs or specs[k].default is inspect.Parameter.empty or not _same(v, specs[k].default))]
        return f"{type(self).__name__}({', '.join(shown)})"


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError):
        return a is b


class ParamSpec:
    """One declared parameter: its type hint (with Field constraints), default and doc."""

    def __init__(self, name: str, hint: Any, default: Any):
        self.name, self.hint, self.default = name, hint, default
        self.doc = ""
        self.constraints: dict[str, Any] = {}
        if typing.get_origin(hint) is typing.Annotated:
            for extra in hint.__metadata__:
                if isinstance(extra, FieldInfo):
                    self.doc = extra.description or self.doc
                    for m in extra.metadata:
                        self.constraints.update({a: getattr(m, a) for a in ("gt", "ge", "lt", "le")
                                                 if getattr(m, a, None) is not None})
        self._adapter: TypeAdapter | None = None

    @property
    def adapter(self) -> TypeAdapter:
        if self._adapter is None:
            self._adapter = TypeAdapter(self.hint, config=_STRICT)
        return self._adapter

    def problem(self, value: Any) -> str | None:
        if self.hint is typing.Any:
            return None
        try:
            self.adapter.validate_python(value)
        except ValidationError as e:
            msgs = sorted({err["msg"] for err in e.errors()})
            return f"is {value!r}; expected {type_text(self.hint)} ({'; '.join(msgs)})"
        return None


def type_text(hint: Any) -> str:
    """A short readable form of a type hint, constraints included: `float in [0, 1]`, `int | 'auto'`."""
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        base = type_text(typing.get_args(hint)[0])
        spec = ParamSpec("", hint, None)
        c = spec.constraints
        lo = f"[{c['ge']}" if "ge" in c else f"({c['gt']}" if "gt" in c else None
        hi = f"{c['le']}]" if "le" in c else f"{c['lt']})" if "lt" in c else None
        if lo or hi:
            return f"{base} in {lo or '(-inf'}, {hi or 'inf)'}"
        return base
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(hint))
    if origin in (typing.Union, __import__("types").UnionType):
        return " | ".join(type_text(a) for a in typing.get_args(hint))
    if origin is not None:
        args = ", ".join(type_text(a) for a in typing.get_args(hint))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if hint is type(None):
        return "None"
    return getattr(hint, "__name__", str(hint).replace("typing.", ""))


def _signature(cls: type) -> inspect.Signature:
    return inspect.signature(cls.__init__)


@functools.cache
def _specs(cls: type) -> dict[str, ParamSpec]:
    sig = _signature(cls)
    try:
        hints = typing.get_type_hints(cls.__init__, include_extras=True)
    except (NameError, TypeError) as e:
        raise TypeError(f"{cls.__name__}.__init__: type hints must resolve at run time ({e})") from e
    return {p.name: ParamSpec(p.name, hints.get(p.name, typing.Any), p.default)
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
