"""YAML config -> Pipeline, with errors that name the file, the key and the allowed values.

```yaml
name: demo
data: data/demo              # default dataset; `curate run --data` overrides it
id_column: id                # omit to use <shard content id>:<row index>
unit_timeout: 300            # ray: a unit with no result after 300 s is presumed lost (`curate run --unit-timeout`)
stages:
  - type: wfpp               # a registered stage type, or `module:function` for a @curate.stage
    t: 1.0e-7
policies:
  - type: keep_fraction      # threshold | keep_fraction | top_k
    column: wfpp.score
    fraction: 0.9
export:
  materialize: true          # write the curated dataset to <out>/curated (or give a folder or URI)
```
"""
from __future__ import annotations

import difflib
import inspect
import os
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from curate import registry
from curate.errors import ConfigError
from curate.pipeline import Pipeline
from curate.stage import Stage


class ExportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    materialize: bool | str = False  # true: <out>/curated; or a folder or URI, as `curate export --materialize DIR`


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "pipeline"
    data: str | None = None
    format: Literal["parquet", "jsonl", "csv", "webdataset"] | None = None  # else by file suffix
    id_column: str | None = None
    batch_size: int = 65_536
    unit_timeout: float | None = Field(None, gt=0)  # Ray: seconds before a unit with no result is presumed lost
    shuffle: Literal["auto", "flat", "two-level"] = "auto"  # the shuffles' layout (engine/shuffle.py)
    stages: list[dict[str, Any]]
    policies: list[dict[str, Any]] = []
    export: ExportConfig = ExportConfig()

    @field_validator("data")
    @classmethod
    def _a_usable_path(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:  # the OS would refuse it later, with a bare ValueError
            raise ValueError(f"a path cannot contain a NUL byte (\\x00): {value!r}")
        return value


def _pydantic_message(where: str, e: ValidationError) -> str:
    lines = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key {loc!r}")
        else:
            lines.append(f"{where}: {loc}: {err['msg']}")
    return "\n".join(lines)


_EMPTY = inspect.Parameter.empty


def _build(kind: str, where: str, spec: dict[str, Any]) -> Any:
    """A stage or policy from its config entry; unknown, missing and mistyped parameters become clear errors."""
    type_name = spec.get("type")
    if not isinstance(type_name, str):
        known = ", ".join(sorted(registry.STAGES if kind == "stage" else registry.POLICIES))
        raise ConfigError(f"{where}: every {kind} needs a `type`; known types: {known}")
    params = {k: v for k, v in spec.items() if k != "type"}
    try:
        cls = registry.lookup(kind, type_name)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from e
    try:
        if isinstance(cls, type):
            allowed = cls.param_names()
            for key in params:
                if key not in allowed:
                    near = difflib.get_close_matches(key, allowed, n=1)
                    hint = f" (did you mean {near[0]!r}?)" if near else ""
                    raise ConfigError(f"unknown parameter {key!r}{hint}; allowed: {', '.join(allowed)}")
            specs = cls.param_specs()
            missing = [n for n in allowed if specs[n].default is _EMPTY and n not in params]
            if missing:
                raise ConfigError(f"missing required parameter(s) {missing}; allowed: {', '.join(allowed)}")
        return registry.build(kind, type_name, params)
    except ConfigError as e:
        raise ConfigError(f"{where} ({type_name}): {e}") from e
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where} ({type_name}): {e}") from e


def pipeline_from_dict(raw: Any, source: str = "<config>") -> tuple[Pipeline, str | None]:
    """The pipeline and the default dataset path a config describes."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_pydantic_message(source, e)) from e
    stages: list[Stage] = [_build("stage", f"{source}: stages[{i}]", spec) for i, spec in enumerate(cfg.stages)]
    policies = [_build("policy", f"{source}: policies[{i}]", spec) for i, spec in enumerate(cfg.policies)]
    try:
        pipeline = Pipeline(stages=stages, policies=policies, id_column=cfg.id_column, batch_size=cfg.batch_size,
                            name=cfg.name, config=raw, materialize=cfg.export.materialize,
                            format=cfg.format, unit_timeout=cfg.unit_timeout, shuffle=cfg.shuffle)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from e
    return pipeline, cfg.data


def user_code_paths(config: Path) -> None:
    """Let `module:attr` types import from the current directory and the config's folder: appended to
    sys.path (after the installed packages, so a local folder never shadows one), once, for the whole process
    (a custom module may import its siblings later, when it scores)."""
    for folder in (Path.cwd(), config.resolve().parent):
        if str(folder) not in sys.path and os.fspath(folder) not in sys.path:
            sys.path.append(str(folder))


def _entry_name(section: str, entry: dict[str, Any]) -> str:
    """A config entry's name as the pipeline will call it: `name`, else a stage's type or a policy's column stage."""
    if entry.get("name"):
        return str(entry["name"])
    if section == "policies" and isinstance(entry.get("column"), str):
        return entry["column"].split(".", 1)[0]
    return str(entry.get("type"))


def apply_overrides(raw: dict[str, Any], overrides: list[str], source: str) -> dict[str, Any]:
    """`key=value` overrides (values read as YAML): `stages.<name>.<param>`, `policies.<name>.<param>`, or a
    top-level key. A stage or policy is named by its `name`, else its `type`."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        value = yaml.safe_load(text)
        path = key.split(".")
        if path[0] in ("stages", "policies") and len(path) == 3:
            entries = [e for e in raw.get(path[0]) or [] if isinstance(e, dict)]
            names = [_entry_name(path[0], e) for e in entries]
            named = [e for e, n in zip(entries, names) if n == path[1]]
            if len(named) != 1:
                raise ConfigError(f"--set {item!r}: {source} has no single {path[0].rstrip('s').replace('ie', 'y')} "
                                  f"named {path[1]!r}; names: {', '.join(map(str, names))}")
            named[0][path[2]] = value
        elif len(path) == 1:
            raw[path[0]] = value
        else:
            raise ConfigError(f"--set {item!r}: use stages.<name>.<param>, policies.<name>.<param> or a top-level key")
    return raw


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> tuple[Pipeline, str | None]:
    """Read a YAML config (with `--set` overrides); a relative `data` path is resolved against the current directory.

    A `type: module:function` is imported as `python -m` would from the current directory, then from the
    config file's folder (`user_code_paths`), so a custom filter beside the config needs no PYTHONPATH."""
    path = Path(path)
    user_code_paths(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"config {path} not found; configs live in configs/ (e.g. configs/demo.yaml)") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from e
    if overrides and isinstance(raw, dict):
        raw = apply_overrides(raw, overrides, str(path))
    return pipeline_from_dict(raw, str(path))
