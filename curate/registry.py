"""The stage and policy types a config can name, and where each class lives.

One table per kind, `type -> "module:Class"`, imported on first use: a pipeline imports only the
methods it names. A new method adds its lines here (a test checks every entry's `type`), and a line in
NEEDS if its package needs an extra beyond the core (`curate.extras`): a config naming it is then refused
before any compute, with the `pip install` line, when that extra is missing.
A config may also name any Stage class, Policy class or `@curate.stage` function as `module:attr`.
"""
from __future__ import annotations

import copy
import difflib
import importlib
from typing import Any

from curate import extras
from curate.errors import ConfigError
from curate.policy import Policy
from curate.stage import Stage

STAGES = {
    "wfpp": "curate.methods.wfpp:WFPP",
    "zipfit": "curate.methods.zipfit:ZipFit",
    "icc": "curate.methods.icc:ICC",
    "embed": "curate.methods.embed:Embed",
    "semdedup": "curate.methods.semdedup:SemDeDup",
    "dbp": "curate.methods.dbp:DBP",
    "sens": "curate.methods.sens:Sensitivity",
    "el2n": "curate.methods.el2n:EL2N",
    "autofj": "curate.methods.autofj:AutoFJ",
    "exact_dedup": "curate.methods.dedup:ExactDedup",
    "minhash_dedup": "curate.methods.dedup:MinHashDedup",
    "image_hash": "curate.methods.dedup:ImageHash",
    "langid": "curate.methods.langid:LangID",
    "tokens": "curate.methods.tokens:Tokens",
    "words": "curate.methods.webtext:Words",
    "gopher_quality": "curate.methods.webtext:GopherQuality",
    "gopher_repetition": "curate.methods.webtext:GopherRepetition",
    "c4": "curate.methods.webtext:C4",
    "fineweb": "curate.methods.webtext:FineWeb",
    "pii": "curate.methods.pii:PII",
    "decontaminate": "curate.methods.decontaminate:Decontaminate",
    "quality_classifier": "curate.methods.quality_classifier:QualityClassifier",
    "image_info": "curate.methods.images:ImageInfo",
    "clip_score": "curate.methods.clip_score:ClipScore",
    "head": "curate.methods.clip_score:Head",
}

POLICIES = {
    "threshold": "curate.policy:Threshold",
    "keep_fraction": "curate.policy:KeepFraction",
    "top_k": "curate.policy:TopK",
    "semdedup": "curate.methods.semdedup:SemDeDupPolicy",
    "cluster_quota": "curate.methods.dbp:ClusterQuota",
    "sample": "curate.methods.sens:Sample",
    "el2n_keep": "curate.methods.el2n:El2nKeep",
    "dedup": "curate.methods.dedup:Dedup",
    "languages": "curate.methods.langid:Languages",
    "gopher_quality": "curate.methods.webtext:GopherQualityPolicy",
    "gopher_repetition": "curate.methods.webtext:GopherRepetitionPolicy",
    "c4": "curate.methods.webtext:C4Policy",
    "fineweb": "curate.methods.webtext:FineWebPolicy",
    "pii": "curate.methods.pii:PIIPolicy",
    "decontaminate": "curate.methods.decontaminate:DecontaminatePolicy",
    "image_size": "curate.methods.images:ImageSize",
    "clip_score": "curate.methods.clip_score:ClipScorePolicy",
}

# The extra each method package needs beyond the core (its stages and policies alike); others need the core only.
NEEDS = {
    "curate.methods.embed": "embed",
    "curate.methods.semdedup": "embed",
    "curate.methods.dbp": "embed",
    "curate.methods.sens": "embed",
    "curate.methods.el2n": "embed",
    "curate.methods.clip_score": "embed",
    "curate.methods.autofj": "join",
    "curate.methods.dedup": "dedup",
    "curate.methods.langid": "text",
    "curate.methods.tokens": "text",
    "curate.methods.webtext": "text",
    "curate.methods.decontaminate": "text",  # numba (kernels/ngramindex.py)
    "curate.methods.quality_classifier": "text",
}

# Parameter values that need an extra their stage's package does not: (stage type, parameter) -> value -> extra.
NEEDS_FOR_PARAMS = {
    ("icc", "backend"): {"probe": "embed", "icc-student": "embed"},
    ("tokens", "tokenizer"): {None: "embed"},  # the default tokenizer ships with the embed extra's MiniLM
}

_TABLES = {"stage": (STAGES, Stage), "policy": (POLICIES, Policy)}


def _import(path: str) -> Any:
    module, _, attr = path.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as e:
        extra = extras.extra_of_module(e.name or "")
        hint = f"; it is part of the {extra!r} extra: {extras.install_line(extra)}" if extra else ""
        raise ConfigError(f"cannot import {attr!r} from {module!r} ({e}){hint}") from e
    except AttributeError as e:
        raise ConfigError(f"cannot import {attr!r} from {module!r} ({e})") from e


def extra_needed(kind: str, type_name: str, params: dict[str, Any] | None = None) -> tuple[str | None, str]:
    """(the extra a registered type with these parameters needs beyond the core, or None; what needs it)."""
    table, _ = _TABLES[kind]
    if type_name not in table:
        return None, ""
    for (stage_type, param), by_value in NEEDS_FOR_PARAMS.items():
        value = (params or {}).get(param)
        if kind == "stage" and type_name == stage_type and value in by_value:
            return by_value[value], f"stage {type_name!r} with {param}: {value}"
    return NEEDS.get(table[type_name].partition(":")[0]), f"{kind} {type_name!r}"


def check_installed(kind: str, type_name: str, params: dict[str, Any] | None = None) -> None:
    """Refuse, with the `pip install` line, a registered type whose extra is not installed."""
    extra, what = extra_needed(kind, type_name, params)
    if extra:
        extras.require(extra, what)


def lookup(kind: str, type_name: str) -> Any:
    """The class registered under `type_name` (or a `module:attr` path) for kind `stage` or `policy`."""
    table, base = _TABLES[kind]
    if type_name in table:
        check_installed(kind, type_name)
        return _import(table[type_name])
    if ":" in type_name:
        obj = _import(type_name)
        if (isinstance(obj, type) and issubclass(obj, base)) or (kind == "stage" and isinstance(obj, Stage)):
            return obj
        raise ConfigError(f"{kind} type {type_name!r} is not a {base.__name__} class"
                          + (" or a @curate.stage function" if kind == "stage" else ""))
    near = difflib.get_close_matches(type_name, table, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    raise ConfigError(f"unknown {kind} type {type_name!r}{hint}; known types: {', '.join(sorted(table))}"
                      + (", or 'module:function' for a custom @curate.stage" if kind == "stage" else
                         ", or 'module:Class' for a custom Policy"))


def types(kind: str, installed_only: bool = False) -> dict[str, type]:
    """Every registered class of a kind, by type name (imports every method: for listings and docs);
    `installed_only` leaves out those whose extra is missing."""
    table = _TABLES[kind][0]
    names = [n for n in table if not installed_only or extras.installed(extra_needed(kind, n)[0])]
    return {name: _import(table[name]) for name in names}


def build(kind: str, type_name: str, params: dict[str, Any]) -> Any:
    """A stage or policy from its type name and parameters; a shared @curate.stage function is copied."""
    check_installed(kind, type_name, params)
    obj = lookup(kind, type_name)
    if isinstance(obj, Stage):  # a decorated function: naming this use must not rename other uses
        extra = sorted(set(params) - {"name"})
        if extra:
            raise ConfigError(f"stage {type_name!r} is a decorated function and takes only `name`; got {extra}")
        obj = copy.copy(obj)
        obj.name = params.get("name") or obj.name
        return obj
    return obj(**params)
