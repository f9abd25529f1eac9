"""Contributor tools: ``python -m calc preset new|check|schema``, the committed schema, the changed-preset preview.

A preset is added in one pull request: copy the model's config.json, run ``preset new``, check the preview
against the model card, open the PR. These tests hold the tools to what CONTRIBUTING.md promises.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from calc.pages import common as pc, site as ps
from calc.cli import main
from calc.errors import CalcError
from calc.families import FAMILIES, family_keys
from calc.cli.preset_tools import (PREVIEW_RANKS, SCHEMA_FILE, SCHEMA_LINE, _key_schema, config_subset, default_family,
                               hf_repo, parse_count, preset_document, preset_yaml, preview, schema_text)
from calc.presets import PRESET_DIR, get_preset, load_preset
from calc.cli.preset import one_line

REPO = Path(__file__).resolve().parents[1]
PRESET_FILES = sorted(PRESET_DIR.glob("*.yaml"))
SCHEMA_PATH = PRESET_DIR / SCHEMA_FILE

# meta-llama/Llama-2-70b-hf config.json as published (https://huggingface.co/meta-llama/Llama-2-70b-hf):
# not one of the bundled presets. Meta states 70B; the model has 68,976,648,192 parameters.
LLAMA_2_70B = {
    "_name_or_path": "meta-llama/Llama-2-70b-hf", "architectures": ["LlamaForCausalLM"], "bos_token_id": 1,
    "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 8192, "initializer_range": 0.02,
    "intermediate_size": 28672, "max_position_embeddings": 4096, "model_type": "llama", "num_attention_heads": 64,
    "num_hidden_layers": 80, "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": None, "tie_word_embeddings": False, "torch_dtype": "float16",
    "transformers_version": "4.32.0.dev0", "use_cache": True, "vocab_size": 32000,
}
LLAMA_2_70B_URL = "https://huggingface.co/meta-llama/Llama-2-70b-hf/blob/main/config.json"
LLAMA_2_70B_TOTAL = 68_976_648_192

LLAMA_2_70B_YAML = f"""{SCHEMA_LINE}
id: llama-2-70b
name: Llama-2-70b-hf
family: Llama-2
source_url: https://huggingface.co/meta-llama/Llama-2-70b-hf/blob/main/config.json
stated_params: 70000000000
stated_params_source: https://huggingface.co/meta-llama/Llama-2-70b-hf
config:
  model_type: llama
  hidden_size: 8192
  intermediate_size: 28672
  max_position_embeddings: 4096
  num_attention_heads: 64
  num_hidden_layers: 80
  num_key_value_heads: 8
  tie_word_embeddings: false
  vocab_size: 32000
"""

# google/gemma-3-4b-pt config.json, abridged to the keys that matter here: a multimodal config whose
# text_config lists only some of the text model's keys (the bundled gemma-3-4b preset writes the others).
GEMMA_3_4B = {
    "architectures": ["Gemma3ForConditionalGeneration"], "boi_token_index": 255999, "eoi_token_index": 256000,
    "image_token_index": 262144, "mm_tokens_per_image": 256, "model_type": "gemma3",
    "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
                    "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                    "sliding_window": 1024},
    "torch_dtype": "bfloat16", "transformers_version": "4.50.0.dev0",
    "vision_config": {"hidden_size": 1152, "image_size": 896, "intermediate_size": 4304, "model_type": "siglip_vision_model",
                      "num_attention_heads": 16, "num_hidden_layers": 27, "patch_size": 14},
}
GEMMA_3_4B_DEFAULTS = ["vocab_size=262208", "num_attention_heads=8", "num_key_value_heads=4", "head_dim=256",
                       "tie_word_embeddings=true", "max_position_embeddings=131072"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def new_args(config: Path, out: Path, preset_id: str = "llama-2-70b", *extra: str) -> list[str]:
    return ["preset", "new", "--from-config", str(config), "--id", preset_id, "--source-url", LLAMA_2_70B_URL,
            "--stated-params", "70B", "--out", str(out), *extra]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


# -- the committed schema ---------------------------------------------------------------------------------------

def test_the_committed_schema_is_current():
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), (
        "calc/presets/schema.json is stale: run `python -m calc preset schema > calc/presets/schema.json`")


def test_preset_schema_prints_the_committed_file(capsys):
    code, out, err = run(capsys, "preset", "schema")
    assert (code, err) == (0, "")
    assert out == SCHEMA_PATH.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", PRESET_FILES, ids=lambda p: p.stem)
def test_every_preset_file_starts_with_the_schema_line(path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == SCHEMA_LINE, f"{path.name}: the first line must be {SCHEMA_LINE!r}"
    assert (path.parent / first.split("$schema=", 1)[1]).is_file()


def test_the_schema_is_the_pydantic_models_plus_config_keys():
    from calc.presets import Preset

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    model = Preset.model_json_schema()
    assert schema["required"] == model["required"]
    assert set(schema["properties"]) == set(model["properties"])
    assert schema["additionalProperties"] is False
    branches = schema["properties"]["config"]["allOf"]
    assert {b["if"]["properties"]["model_type"]["const"] for b in branches} == set(FAMILIES)
    for branch in branches:
        family = FAMILIES[branch["if"]["properties"]["model_type"]["const"]]
        assert set(branch["then"]["properties"]) == set(family_keys(family))


def test_every_config_key_calc_reads_has_a_type():
    for family in FAMILIES.values():
        for key in family_keys(family) - {"model_type"}:
            assert _key_schema(family.aliases.get(key, key))["type"]


class _Yaml12Loader(yaml.SafeLoader):
    """Reads numbers as YAML 1.2 (yaml-language-server) does: ``7.61e9`` is a float, not a string."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def _validator():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", PRESET_FILES, ids=lambda p: p.stem)
def test_every_bundled_preset_satisfies_the_schema_as_an_editor_reads_it(path):
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in _validator().iter_errors(data)]
    assert not errors, errors


@pytest.mark.parametrize("edit, where", [
    (lambda d: d["config"].update(rope_theta=1e6), "config"),
    (lambda d: d.update(source_url="javascript:alert(1)"), "source_url"),
    (lambda d: d["config"].update(hidden_size=0), "config/hidden_size"),
    (lambda d: d["config"].update(num_hidden_layers="32"), "config/num_hidden_layers"),
    (lambda d: d.update(license="mit"), ""),
    (lambda d: d["config"].update(model_type="bert"), "config/model_type"),
])
def test_the_schema_flags_what_the_loader_rejects(edit, where):
    data = yaml.load((PRESET_DIR / "llama-3.1-8b.yaml").read_text(encoding="utf-8"), Loader=_Yaml12Loader)  # noqa: S506
    edit(data)
    errors = list(_validator().iter_errors(data))
    assert errors
    assert any("/".join(map(str, e.absolute_path)).startswith(where) for e in errors)


# -- preset new -------------------------------------------------------------------------------------------------

def test_config_subset_keeps_exactly_the_keys_calc_reads_model_type_first():
    subset = config_subset(LLAMA_2_70B)
    assert list(subset)[0] == "model_type"
    assert set(subset) == set(LLAMA_2_70B) & family_keys(FAMILIES["llama"])
    assert all(subset[k] == LLAMA_2_70B[k] for k in subset)


def test_preset_new_writes_the_schema_line_metadata_and_config_subset(capsys, tmp_path):
    config = write_json(tmp_path / "config.json", LLAMA_2_70B)
    out = tmp_path / "presets"
    out.mkdir()
    code, stdout, err = run(capsys, *new_args(config, out))
    assert (code, err) == (0, "")
    path = out / "llama-2-70b.yaml"
    assert path.read_text(encoding="utf-8") == LLAMA_2_70B_YAML
    preset = load_preset(path)
    assert preset.architecture.total_params == LLAMA_2_70B_TOTAL
    assert f"wrote {path}" in stdout
    assert f"{LLAMA_2_70B_TOTAL:,}" in stdout
    assert leftovers(out) == []


def test_preset_new_uses_a_multimodal_configs_text_config_and_set_values(capsys, tmp_path):
    config = write_json(tmp_path / "config.json", GEMMA_3_4B)
    args = ["preset", "new", "--from-config", str(config), "--id", "gemma-3-4b", "--out", str(tmp_path),
            "--source-url", "https://huggingface.co/google/gemma-3-4b-pt/blob/main/config.json",
            "--stated-params", "4.0e9", "--name", "Gemma 3 4B", "--family", "Gemma 3"]
    for item in GEMMA_3_4B_DEFAULTS:
        args += ["--set", item]
    code, _, err = run(capsys, *args)
    assert (code, err) == (0, "")
    made = load_preset(tmp_path / "gemma-3-4b.yaml")
    bundled = get_preset("gemma-3-4b")
    assert made.config == bundled.config
    assert made.architecture.total_params == bundled.architecture.total_params
    text = (tmp_path / "gemma-3-4b.yaml").read_text(encoding="utf-8")
    assert "vocab_size: 262208  # absent from config.json" in text
    assert "sliding_window" not in text and "siglip" not in text


def test_preset_new_without_the_text_defaults_names_the_missing_key(capsys, tmp_path):
    config = write_json(tmp_path / "config.json", GEMMA_3_4B)
    code, out, err = run(capsys, "preset", "new", "--from-config", str(config), "--id", "gemma-x",
                         "--source-url", "https://huggingface.co/google/gemma-3-4b-pt/blob/main/config.json",
                         "--stated-params", "4B", "--out", str(tmp_path))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "gemma-x.yaml" in err and "config.vocab_size: is required" in err
    assert not (tmp_path / "gemma-x.yaml").exists()
    assert leftovers(tmp_path) == []


def test_preset_new_requires_the_publishers_stated_size(capsys, tmp_path):
    config = write_json(tmp_path / "config.json", LLAMA_2_70B)
    args = [a for a in new_args(config, tmp_path) if a not in ("--stated-params", "70B")]
    code, out, err = run(capsys, *args)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("error: --stated-params: required")
    assert not (tmp_path / "llama-2-70b.yaml").exists()


def test_preset_new_refuses_to_overwrite_without_force(capsys, tmp_path):
    config = write_json(tmp_path / "config.json", LLAMA_2_70B)
    target = tmp_path / "llama-2-70b.yaml"
    target.write_text("# someone's work\n", encoding="utf-8")
    code, _, err = run(capsys, *new_args(config, tmp_path))
    assert code == 2 and "--force" in err and err.count("\n") == 1
    assert target.read_text(encoding="utf-8") == "# someone's work\n"
    code, _, err = run(capsys, *new_args(config, tmp_path), "--force")
    assert (code, err) == (0, "")
    assert target.read_text(encoding="utf-8") == LLAMA_2_70B_YAML
    assert leftovers(tmp_path) == []


def test_preset_new_never_leaves_an_invalid_file(capsys, tmp_path):
    bad = dict(LLAMA_2_70B, num_key_value_heads=7)
    config = write_json(tmp_path / "config.json", bad)
    code, out, err = run(capsys, *new_args(config, tmp_path))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "llama-2-70b.yaml: config.num_key_value_heads:" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_preset_new_refuses_an_id_that_reads_like_a_bundled_one(capsys, tmp_path):
    config = write_json(tmp_path / "config.json", LLAMA_2_70B)
    code, _, err = run(capsys, *new_args(config, tmp_path, "llama_3.1_8b"))
    assert code == 2 and "llama-3.1-8b.yaml already has this id" in err


@pytest.mark.parametrize("content, message", [
    ("[" * 100_000, "invalid JSON (nested too deeply)"),
    ('{"model_type": "llama", "vocab_size": 1' + "0" * 5000 + "}", "invalid JSON (Exceeds the limit"),
    ('{"model_type": "llama",', "invalid JSON at line 1"),
    ('{"model_type": "bert", "hidden_size": 768}', "model_type: unsupported 'bert'"),
    ('{"model_type": ["llama"]}', "model_type: unsupported a list"),
    ('["not", "an", "object"]', "must be a JSON object"),
])
def test_preset_new_reports_a_bad_config_json_in_one_line(capsys, tmp_path, content, message):
    config = tmp_path / "config.json"
    config.write_text(content, encoding="utf-8")
    code, out, err = run(capsys, *new_args(config, tmp_path))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "config.json" in err and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


@pytest.mark.parametrize("flag, value, message", [
    ("--id", "Llama-2-70B", "--id: must be lower case"),
    ("--stated-params", "seventy", "--stated-params: must be a number"),
    ("--stated-params", "0", "--stated-params: must be a positive number"),
    ("--set", "rope_theta=10000", "--set: 'rope_theta' is not a key calc reads"),
    ("--set", "vocab_size", "--set: must be KEY=VALUE"),
    ("--source-url", "javascript:alert(1)", "--name: required unless"),
])
def test_preset_new_names_the_bad_flag(capsys, tmp_path, flag, value, message):
    config = write_json(tmp_path / "config.json", LLAMA_2_70B)
    args = new_args(config, tmp_path)
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    code, out, err = run(capsys, *args)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and message in err, err


def test_a_non_http_source_url_is_rejected_by_the_loader(capsys, tmp_path):
    config = write_json(tmp_path / "config.json", LLAMA_2_70B)
    args = new_args(config, tmp_path, "llama-2-70b", "--name", "L", "--stated-params-source", "https://x.org/a")
    args[args.index("--source-url") + 1] = "file:///etc/passwd"
    code, _, err = run(capsys, *args)
    assert code == 2 and "llama-2-70b.yaml: source_url: must be an http(s) URL" in err


def test_preset_yaml_round_trips_awkward_strings(tmp_path):
    doc, set_keys = preset_document(LLAMA_2_70B, preset_id="odd", source_url=LLAMA_2_70B_URL, stated_params=7e10,
                                    name="a: b # c", family="'quoted' \"too\"", stated_params_note="yes\nno: 1")
    path = tmp_path / "odd.yaml"
    path.write_text(preset_yaml(doc, set_keys), encoding="utf-8")
    assert load_preset(path).model_dump(exclude_none=True) == doc


def test_parse_count_default_family_and_hf_repo():
    assert parse_count("7.61e9") == parse_count("7.61B") == 7.61e9
    assert parse_count("494M") == 494e6 and parse_count("1,234,567") == 1_234_567 and parse_count(8e9) == 8e9
    for bad in ("", "B", "7.6 billion", "nan", "inf", "0", "-1"):
        with pytest.raises(CalcError):
            parse_count(bad)
    assert default_family("Qwen2.5-Coder-7B") == "Qwen2.5-Coder"
    assert default_family("Mixtral-8x7B-v0.1") == "Mixtral"
    assert default_family("phi-4") == "phi-4"
    assert hf_repo(LLAMA_2_70B_URL) == ("meta-llama", "Llama-2-70b-hf")
    assert hf_repo("https://huggingface.co/datasets/x/y") is None
    assert hf_repo("https://example.com/a/b") is None


# -- preset check -----------------------------------------------------------------------------------------------

def test_preset_check_validates_every_bundled_preset(capsys):
    code, out, err = run(capsys, "preset", "check")
    assert (code, err) == (0, "")
    headers = [line for line in out.splitlines() if line.startswith("== ")]
    assert len(headers) == len(PRESET_FILES)
    for r in PREVIEW_RANKS:
        assert out.count(f"LoRA r={r}, lora_alpha={2 * r}, all-linear: trainable") == len(PRESET_FILES)
    assert out.count(" GiB with CUDA context") == 2 * len(PRESET_FILES)


@pytest.mark.parametrize("preset_id", ["llama-3.1-8b", "mixtral-8x7b", "gpt2"])
def test_the_preview_shows_the_sites_numbers(capsys, preset_id):
    code, out, err = run(capsys, "preset", "check", str(PRESET_DIR / f"{preset_id}.yaml"), "--json")
    assert (code, err) == (0, "")
    [row] = json.loads(out)
    preset = get_preset(preset_id)
    assert row["total_params"] == preset.architecture.total_params
    ranks = ps.rank_choices(preset_id, PREVIEW_RANKS)
    assert [(x["r"], x["trainable_params"]) for x in row["lora"]] == [(c.r, c.trainable_params) for c in ranks]
    site = {m.method: m for m in pc.compare_methods(preset_id, None, ("lora", "qlora"))}
    for m in row["memory"]:
        assert m["required_bytes"] == site[m["method"]].required_bytes
        assert m["peak_bytes"] == site[m["method"]].peak_bytes
    assert row["conditions"] == pc.DEFAULT_CONDITIONS
    text = run(capsys, "preset", "check", str(PRESET_DIR / f"{preset_id}.yaml"))[1]
    assert f"{preset.architecture.total_params:,}" in text
    assert f"{site['qlora'].required_bytes / (1 << 30):,.2f} GiB with CUDA context" in text


def test_preview_is_pure_and_matches_count_lora():
    arch = get_preset("qwen2.5-7b").architecture
    p = preview(arch, 7.61e9)
    assert p.total_params == arch.total_params and p.stated_deviation == pytest.approx(arch.total_params / 7.61e9 - 1)
    assert [r.r for r in p.ranks] == list(PREVIEW_RANKS)
    assert all(r.lora_alpha == 2 * r.r for r in p.ranks)
    assert [m.method for m in p.memory] == ["lora", "qlora"]
    assert p.memory[1].required_bytes < p.memory[0].required_bytes


def test_preset_check_prints_good_files_and_one_line_per_bad_file(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\n", encoding="utf-8")
    code, out, err = run(capsys, "preset", "check", str(PRESET_DIR / "gpt2.yaml"), str(bad),
                         str(tmp_path / "missing.yaml"))
    assert code == 2
    assert out.startswith("== gpt2: ")
    lines = err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"error: {bad}: name: Field required")
    assert lines[1].startswith(f"error: {tmp_path / 'missing.yaml'}: cannot read")


def test_one_line_escapes_control_characters():
    assert one_line("a\nb\x1b[2J\tc") == "a\\nb\\x1b[2J\\tc"
    assert one_line("Café – ok") == "Café – ok"


# -- the changed-preset preview -----------------------------------------------------------------------------------

def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main",
                    *args], cwd=cwd, check=True, capture_output=True)


def _script(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "preview_changed_presets.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_preview_changed_presets_prints_only_the_branchs_presets(tmp_path):
    repo = tmp_path / "repo"
    presets = repo / "calc" / "presets"
    presets.mkdir(parents=True)
    for stem in ("acme-1b", "acme-2b", "acme-3b"):
        text = (PRESET_DIR / "llama-3.2-1b.yaml").read_text(encoding="utf-8").replace("id: llama-3.2-1b", f"id: {stem}")
        (presets / f"{stem}.yaml").write_text(text, encoding="utf-8")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "base")
    _git(repo, "checkout", "-q", "-b", "feature")
    (presets / "acme-1b.yaml").write_text((presets / "acme-1b.yaml").read_text() + "# edited\n", encoding="utf-8")
    (presets / "acme-3b.yaml").unlink()
    new = (PRESET_DIR / "gpt2.yaml").read_text(encoding="utf-8").replace("id: gpt2", "id: acme-gpt")
    (presets / "acme-gpt.yaml").write_text(new, encoding="utf-8")
    (presets / "notes.txt").write_text("not a preset\n", encoding="utf-8")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "change")
    proc = _script("--root", str(repo))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("== preview of 2 preset(s) changed against main")
    assert [line.split(":")[0] for line in proc.stdout.splitlines() if line.startswith("== acme")] == [
        "== acme-1b", "== acme-gpt"]
    (presets / "acme-gpt.yaml").write_text(new.replace("n_head: 12", "n_head: 7"), encoding="utf-8")
    _git(repo, "commit", "-q", "-am", "break it")
    proc = _script("--root", str(repo))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "acme-gpt.yaml: config.hidden_size:" in proc.stderr


def test_preview_changed_presets_is_silent_without_a_git_base(tmp_path):
    env_root = tmp_path / "not-a-repo"
    env_root.mkdir()
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "preview_changed_presets.py"), "--root",
                           str(env_root)], cwd=env_root, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path)})
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
