"""Fuzzing config.json input: whatever a config holds, calc returns a sound architecture or a CalcError.

Hypothesis generates configs two ways: bundled presets' configs with a few mutations (keys dropped, values
replaced by wrong types, zero, negative or huge numbers, nested junk, an unknown or unhashable model_type,
extra keys), and dictionaries of random keys and values. Every config goes through
:meth:`calc.architecture.Architecture.from_hf_config`, and through the CLI in-process
(``calc.cli.main(["params", PATH, "--json"])``): exit 0 with one JSON object, or exit 2 with one line on
stderr, never an exception. The runs are derandomized (the same examples every time) so CI is stable:
1,200 examples in all, about 20 s.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from calc.architecture import Architecture
from calc.cli import main
from calc.errors import CalcError
from calc.families import FAMILIES, family_keys
from calc.lora import LoraSpec, count_lora
from calc.cli.preset_tools import preview
from calc.presets import all_presets

FUZZ = settings(derandomize=True, database=None, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])

BASE_CONFIGS = [dict(p.config) for p in all_presets().values()]
KEYS = sorted(set().union(*(family_keys(f) for f in FAMILIES.values())))
MODEL_TYPES = sorted(FAMILIES) + ["bert", "llava", "", "LLAMA", "t5", "gemma3"]

small_ints = st.integers(min_value=1, max_value=96)
edge_ints = st.sampled_from([0, -1, -4096, 1, 2, 3, 7, 1 << 20, (1 << 20) + 1, 1 << 40, 2**63, 10**30, 10**4000])
scalars = st.one_of(st.none(), st.booleans(), small_ints, edge_ints, st.integers(),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
junk = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                    max_leaves=12)
values = st.one_of(small_ints, small_ints, edge_ints, scalars, junk)
model_types = st.one_of(st.sampled_from(MODEL_TYPES), junk)


@st.composite
def configs(draw) -> dict:
    """A config.json object: usually a real preset's config with a few changes, sometimes random keys."""
    if draw(st.integers(0, 3)) > 0:
        cfg = dict(draw(st.sampled_from(BASE_CONFIGS)))
        for _ in range(draw(st.integers(0, 4))):
            op = draw(st.sampled_from(["drop", "set", "set", "add", "model_type", "wrap"]))
            if op == "drop" and cfg:
                cfg.pop(draw(st.sampled_from(sorted(cfg))))
            elif op == "set":
                cfg[draw(st.sampled_from(KEYS))] = draw(values)
            elif op == "add":
                cfg[draw(st.text(max_size=12))] = draw(junk)
            elif op == "model_type":
                cfg["model_type"] = draw(model_types)
            elif op == "wrap":  # a multimodal config: the text model under text_config
                cfg = {"model_type": "llava", "text_config": cfg, "vision_config": {"hidden_size": 1024}}
        return cfg
    cfg = draw(st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=10)), values, max_size=14))
    if draw(st.booleans()):
        cfg["model_type"] = draw(model_types)
    return cfg


def _unwrap(cfg: dict) -> dict:
    """What calc.cli.read_config_json hands on (a multimodal config's text_config)."""
    text = cfg.get("text_config")
    return text if isinstance(text, dict) and "model_type" in text and "num_hidden_layers" not in cfg else cfg


def check_architecture(arch: Architecture) -> None:
    parts = (sum(m.count * (m.experts * m.in_features * m.out_features + (m.out_features if m.bias else 0))
                 for m in arch.modules)
             + sum(n.params for n in arch.norms) + arch.final_norm.params
             + sum(e.rows * e.cols for e in arch.embeddings)
             + (0 if arch.tie_word_embeddings else arch.lm_head.rows * arch.lm_head.cols))
    assert arch.total_params > 0
    assert arch.total_params == parts
    for m in arch.modules:
        assert m.in_features > 0 and m.out_features > 0 and m.count > 0 and m.experts > 0, m
    for r in (1, 8):
        count = count_lora(arch, LoraSpec(r=r, lora_alpha=2 * r))
        assert count.trainable_params >= 0
        assert all(m.lora_params >= 0 for m in count.modules)
        assert count.trainable_params == sum(m.lora_params for m in count.modules) + count.bias_params + sum(
            p for _, p in count.modules_to_save)


@settings(FUZZ, max_examples=700)
@given(cfg=configs())
@example(cfg={"model_type": "llama", "vocab_size": 10**5000, "hidden_size": 64})
@example(cfg={"model_type": "llama", "vocab_size": 32, "hidden_size": 64, "intermediate_size": 64,
              "num_hidden_layers": 1, "num_attention_heads": 4, "tie_word_embeddings": 10**5000})
@example(cfg={"model_type": ["llama"]})
@example(cfg={"model_type": {"a": 1}})
@example(cfg={"model_type": "gpt2", "n_embd": 64, "hidden_size": 128, "n_layer": 1, "n_head": 4, "vocab_size": 8})
def test_from_hf_config_returns_a_sound_architecture_or_a_calc_error(cfg):
    try:
        arch = Architecture.from_hf_config(_unwrap(cfg))
    except CalcError as err:
        assert err.field is None or isinstance(err.field, str)
        assert len(err.message) < 1000
        return
    check_architecture(arch)


@pytest.fixture(scope="module")
def config_path(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "config.json"


@settings(FUZZ, max_examples=400)
@given(cfg=configs())
def test_the_cli_prints_json_or_one_error_line(cfg, config_path, capsys):
    try:
        text = json.dumps(cfg)
    except ValueError:  # an int beyond Python's str conversion limit cannot be written as JSON
        return
    config_path.write_text(text, encoding="utf-8")
    capsys.readouterr()
    code = main(["params", str(config_path), "--json"])
    out, err = capsys.readouterr()
    if code == 0:
        result = json.loads(out)
        assert err == ""
        assert result["total_params"] > 0 and result["trainable_params"] >= 0
        assert result["total_params"] == Architecture.from_hf_config(_unwrap(cfg)).total_params
    else:
        assert code == 2
        assert out == ""
        assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err[:500]
        assert "Traceback" not in err


@settings(FUZZ, max_examples=100)
@given(cfg=configs())
def test_the_preset_preview_works_for_every_architecture_that_builds(cfg):
    try:
        arch = Architecture.from_hf_config(_unwrap(cfg))
    except CalcError:
        return
    p = preview(arch, 1e9)
    assert p.total_params == arch.total_params
    assert all(r.trainable_params >= 0 for r in p.ranks)
    assert all(0 < m.peak_bytes <= m.required_bytes for m in p.memory)


@pytest.mark.parametrize("content", ["[" * 100_000, '{"model_type": "llama", "vocab_size": 1' + "0" * 5000 + "}"],
                         ids=["deep-nesting", "huge-integer"])
def test_the_cli_reports_json_the_parser_itself_rejects(tmp_path, capsys, content):
    path = tmp_path / "config.json"
    path.write_text(content, encoding="utf-8")
    code = main(["params", str(path), "--json"])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1
