"""Model presets: every bundled file loads, matches its publisher's size, and bad files fail loudly.

A bad preset must fail with one message that names the file and the field, so a contributor can fix
it without reading a traceback.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from calc.errors import CalcError
from calc.families import FAMILIES
from calc.presets import PRESET_DIR, get_preset, load_preset, load_presets

PRESET_FILES = sorted(PRESET_DIR.glob("*.yaml"))


@pytest.fixture(scope="module")
def presets():
    return load_presets()


# -- the bundled presets ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", PRESET_FILES, ids=lambda p: p.stem)
def test_every_bundled_preset_loads(path):
    preset = load_preset(path)
    assert preset.id == path.stem
    assert preset.architecture.total_params > 0


def test_there_are_at_least_40_presets(presets):
    assert len(presets) >= 40


def test_every_supported_family_has_a_preset(presets):
    covered = {p.config["model_type"] for p in presets.values()}
    assert set(FAMILIES) - covered == set()


def test_every_preset_cites_the_config_json_it_was_copied_from(presets):
    for p in presets.values():
        assert p.source_url.startswith("https://") and p.source_url.endswith("config.json"), p.id


# Publishers round ("8B" for 8.03B), so a computed total within 5% of the stated size is a match.
DEFAULT_TOLERANCE = 0.05
# Presets whose stated size is only a nominal name, with the computed total further off than that:
TOLERANCE = {
    # "OLMo 2 13B" is the model's name; the config builds 13.72B (+5.5%) and the card gives no exact count.
    "olmo-2-13b": 0.06,
}


@pytest.mark.parametrize("path", PRESET_FILES, ids=lambda p: p.stem)
def test_computed_total_is_close_to_the_publishers_stated_size(path):
    preset = load_preset(path)
    total = preset.architecture.total_params
    off = abs(total / preset.stated_params - 1)
    assert off <= TOLERANCE.get(preset.id, DEFAULT_TOLERANCE), (
        f"{preset.id}: computed {total:,} vs stated {preset.stated_params:,.0f} ({off:.1%} off)")


@pytest.mark.parametrize("preset_id", sorted(TOLERANCE))
def test_each_tolerance_exception_is_still_needed(preset_id):
    preset = get_preset(preset_id)
    assert abs(preset.architecture.total_params / preset.stated_params - 1) > DEFAULT_TOLERANCE


def test_get_preset_suggests_the_closest_id():
    with pytest.raises(CalcError, match="did you mean llama-3.1-8b"):
        get_preset("llama-3.1-8")


# -- the loader's errors ---------------------------------------------------------------------------------

BASE = {
    "id": "tiny",
    "name": "Tiny",
    "family": "Tiny",
    "source_url": "https://huggingface.co/example/tiny/blob/main/config.json",
    "stated_params": 1.0e6,
    "stated_params_source": "https://huggingface.co/example/tiny",
    "config": {
        "model_type": "llama", "vocab_size": 1000, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    },
}


def write(directory: Path, data: dict, stem: str | None = None) -> Path:
    path = directory / f"{stem or data['id']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_a_minimal_preset_loads_and_counts_by_hand(tmp_path):
    preset = load_preset(write(tmp_path, BASE))
    # head_dim 16; q, o 64x64; k, v 64 -> 2x16; gate, up, down 64 <-> 128; two RMSNorms; untied
    per_layer = 2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128 + 2 * 64
    assert preset.architecture.total_params == 1000 * 64 * 2 + 2 * per_layer + 64


def _without(key):
    def edit(d):
        del d[key]
    return edit


def _top(key, value):
    def edit(d):
        d[key] = value
    return edit


def _cfg(key, value):
    def edit(d):
        d["config"][key] = value
    return edit


@pytest.mark.parametrize("edit, field", [
    (_without("stated_params_source"), "stated_params_source"),
    (_without("config"), "config"),
    (_top("license", "mit"), "license"),
    (_cfg("rope_theta", 500000.0), "config.rope_theta"),
    (_cfg("num_hidden_layers", "2"), "config.num_hidden_layers"),
    (_cfg("tie_word_embeddings", "no"), "config.tie_word_embeddings"),
    (_cfg("hidden_size", "64"), "config.hidden_size"),
    (_top("stated_params", "lots"), "stated_params"),
    (_cfg("num_hidden_layers", 0), "config.num_hidden_layers"),
    (_cfg("intermediate_size", -128), "config.intermediate_size"),
    (_top("stated_params", 0), "stated_params"),
    (_cfg("num_key_value_heads", 3), "config.num_key_value_heads"),
    (_cfg("model_type", "bert"), "config.model_type"),
    (_top("source_url", "ftp://example.com/config.json"), "source_url"),
    (_top("source_url", "file:///etc/passwd"), "source_url"),
    (_top("stated_params_source", "huggingface.co/example/tiny"), "stated_params_source"),
    (_top("name", "Two\nlines"), "name"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_a_bad_preset_names_the_file_and_the_field(tmp_path, edit, field):
    data = copy.deepcopy(BASE)
    edit(data)
    path = write(tmp_path, data)
    with pytest.raises(CalcError) as exc:
        load_preset(path)
    message = str(exc.value)
    assert path.name in message
    assert field in message
    assert exc.value.field == field


def test_id_must_equal_the_file_name(tmp_path):
    path = write(tmp_path, BASE, stem="other")
    with pytest.raises(CalcError, match="must equal the file name") as exc:
        load_preset(path)
    assert "other.yaml" in str(exc.value)
    assert exc.value.field == "id"


def test_two_files_cannot_claim_the_same_id(tmp_path):
    write(tmp_path, BASE, stem="tiny")
    write(tmp_path, BASE, stem="tiny2")
    with pytest.raises(CalcError) as exc:
        load_presets(tmp_path)
    assert "tiny2.yaml" in str(exc.value)
    assert exc.value.field == "id"


def test_yaml_aliases_are_rejected(tmp_path):
    path = tmp_path / "tiny.yaml"
    text = yaml.safe_dump(BASE, sort_keys=False).replace("name: Tiny", "name: &n Tiny").replace(
        "family: Tiny", "family: *n")
    assert "*n" in text
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CalcError, match="alias") as exc:
        load_preset(path)
    assert "tiny.yaml" in str(exc.value)


def test_a_non_utf8_file_is_rejected(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_bytes(yaml.safe_dump(BASE, sort_keys=False).replace("Tiny", "Caf\u00e9", 1).encode("latin-1"))
    with pytest.raises(CalcError, match="UTF-8") as exc:
        load_preset(path)
    assert "tiny.yaml" in str(exc.value)


def test_invalid_yaml_names_the_file_and_line(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text("id: tiny\nname: [unclosed\n", encoding="utf-8")
    with pytest.raises(CalcError, match="invalid YAML") as exc:
        load_preset(path)
    assert "tiny.yaml" in str(exc.value)
    assert "line" in str(exc.value)


def test_a_yaml_list_instead_of_a_mapping_is_rejected(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text("- id: tiny\n", encoding="utf-8")
    with pytest.raises(CalcError, match="mapping") as exc:
        load_preset(path)
    assert "tiny.yaml" in str(exc.value)


def test_load_presets_fails_on_the_first_bad_file(tmp_path):
    write(tmp_path, BASE)
    bad = copy.deepcopy(BASE)
    bad["id"] = "zzz"
    bad["config"]["num_key_value_heads"] = 3
    write(tmp_path, bad)
    with pytest.raises(CalcError) as exc:
        load_presets(tmp_path)
    assert "zzz.yaml" in str(exc.value)
