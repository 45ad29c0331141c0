"""YAML config -> Pipeline, with errors that name the file, the key and the allowed values.

```yaml
name: demo
data: data/demo              # default dataset; `curate run --data` overrides it
id_column: id                # omit to use <shard content id>:<row index>
stages:
  - type: wfpp               # a registered stage type, or `module:function` for a @curate.stage
    t: 1.0e-7
policies:
  - type: keep_fraction      # threshold | keep_fraction | top_k
    column: wfpp.score
    fraction: 0.9
export:
  materialize: true          # write the curated dataset to <out>/curated
```
"""
from __future__ import annotations

import difflib
import inspect
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from curate.errors import ConfigError
from curate.pipeline import Pipeline
from curate.policy import policy_types
from curate.stage import Stage, make_stage, stage_types


class ExportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    materialize: bool = False


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "pipeline"
    data: str | None = None
    id_column: str | None = None
    batch_size: int = 65_536
    stages: list[dict[str, Any]]
    policies: list[dict[str, Any]] = []
    export: ExportConfig = ExportConfig()


def _pydantic_message(where: str, e: ValidationError) -> str:
    lines = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key {loc!r}")
        else:
            lines.append(f"{where}: {loc}: {err['msg']}")
    return "\n".join(lines)


def _build(kind: str, where: str, spec: dict[str, Any], factory: Any, signature_of: Any) -> Any:
    """Call a stage or policy constructor, turning unknown or missing parameters into clear errors."""
    params = {k: v for k, v in spec.items() if k != "type"}
    sig = inspect.signature(signature_of)
    allowed = [p for p in sig.parameters if p not in ("self", "args", "kwargs")]
    if not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        for key in params:
            if key not in allowed:
                near = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise ConfigError(f"{where} ({kind}): unknown parameter {key!r}{hint}; allowed: {', '.join(allowed)}")
        missing = [p.name for p in sig.parameters.values()
                   if p.default is p.empty and p.name != "self" and p.name not in params
                   and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        if missing:
            raise ConfigError(f"{where} ({kind}): missing required parameter(s) {missing}; allowed: {', '.join(allowed)}")
    try:
        return factory(**params)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from e
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where} ({kind}): {e}") from e


def pipeline_from_dict(raw: Any, source: str = "<config>") -> tuple[Pipeline, str | None]:
    """The pipeline and the default dataset path a config describes."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_pydantic_message(source, e)) from e
    stages: list[Stage] = []
    for i, spec in enumerate(cfg.stages):
        where = f"{source}: stages[{i}]"
        kind = spec.get("type")
        if not isinstance(kind, str):
            raise ConfigError(f"{where}: every stage needs a `type`; known types: {', '.join(sorted(stage_types()))}")
        cls = stage_types().get(kind)
        if cls is None:
            try:
                stages.append(make_stage(kind, **{k: v for k, v in spec.items() if k != "type"}))
            except ConfigError as e:
                raise ConfigError(f"{where}: {e}") from e
        else:
            stages.append(_build(kind, where, spec, cls, cls.__init__))
    policies = []
    for i, spec in enumerate(cfg.policies):
        where = f"{source}: policies[{i}]"
        kind = spec.get("type")
        types = policy_types()
        if kind not in types:
            raise ConfigError(f"{where}: unknown policy type {kind!r}; known types: {', '.join(sorted(types))}")
        policies.append(_build(kind, where, spec, types[kind], types[kind].__init__))
    try:
        pipeline = Pipeline(stages=stages, policies=policies, id_column=cfg.id_column, batch_size=cfg.batch_size,
                            name=cfg.name, config=raw, materialize=cfg.export.materialize)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from e
    return pipeline, cfg.data


def load_config(path: str | os.PathLike) -> tuple[Pipeline, str | None]:
    """Read a YAML config; a relative `data` path is resolved against the current directory."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"config {path} not found; configs live in configs/ (e.g. configs/demo.yaml)") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from e
    return pipeline_from_dict(raw, str(path))
