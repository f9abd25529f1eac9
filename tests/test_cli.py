"""The command line: ``python -m calc params|presets``.

Good input prints a table or one JSON object; bad input prints exactly one line on stderr and exits 2,
never a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from calc.cli import main
from calc.presets import PRESET_DIR

REPO = Path(__file__).resolve().parents[1]


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_process(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "calc", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


def params_json(capsys, *argv: str) -> dict:
    code, out, err = run_main(capsys, "params", *argv, "--json")
    assert (code, err) == (0, "")
    return json.loads(out)


TINY_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 1000, "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "rope_theta": 500000.0, "torch_dtype": "bfloat16", "rms_norm_eps": 1e-5, "bos_token_id": 1,
}


# -- params ---------------------------------------------------------------------------------------------

def test_params_json_reports_totals_and_modules(capsys):
    result = params_json(capsys, "qwen2.5-3b", "--rank", "16", "--targets", "q_proj,v_proj")
    assert {"total_params", "trainable_params", "trainable_percent", "modules"} <= set(result)
    assert result["trainable_params"] == 3_686_400          # PEFT README, Qwen2.5-3B r=16 q,v
    assert result["total_params"] == 3_085_938_688
    assert round(result["trainable_percent"], 4) == 0.1193
    for m in result["modules"]:
        assert {"name", "in_features", "out_features", "count", "lora_params"} <= set(m)
    q = next(m for m in result["modules"] if m["name"] == "self_attn.q_proj")
    assert (q["in_features"], q["out_features"], q["count"], q["lora_params"]) == (2048, 2048, 36,
                                                                                   36 * 16 * (2048 + 2048))


@pytest.mark.parametrize("preset_id", ["llama-3.1-8b", "gpt2", "mixtral-8x7b", "deepseek-v2-lite"])
def test_module_rows_sum_to_the_trainable_total_for_plain_lora(capsys, preset_id):
    result = params_json(capsys, preset_id)
    assert sum(m["lora_params"] for m in result["modules"]) == result["trainable_params"]


def test_default_alpha_is_twice_the_rank(capsys):
    result = params_json(capsys, "llama-3.2-1b", "--rank", "8")
    assert result["lora_alpha"] == 16
    assert result["scaling"] == 2.0


def test_rslora_flag_scales_by_alpha_over_sqrt_r(capsys):
    result = params_json(capsys, "llama-3.2-1b", "--rank", "16", "--alpha", "32", "--rslora")
    assert result["scaling"] == 32 / 4


def test_dora_flag_adds_magnitude_vectors(capsys):
    plain = params_json(capsys, "llama-3.2-3b", "--rank", "32", "--targets", "qv")
    dora = params_json(capsys, "llama-3.2-3b", "--rank", "32", "--targets", "qv", "--dora")
    assert (plain["trainable_params"], dora["trainable_params"]) == (9_175_040, 9_289_728)


def test_params_table_mentions_the_totals(capsys):
    code, out, err = run_main(capsys, "params", "qwen2.5-3b", "--rank", "16", "--targets", "qv")
    assert (code, err) == (0, "")
    assert "self_attn.q_proj" in out and "self_attn.v_proj" in out
    assert "3,686,400" in out          # trainable
    assert "3,085,938,688" in out      # base model
    assert "0.1193%" in out


def test_params_reads_a_config_json_with_keys_calc_does_not_use(capsys, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(TINY_CONFIG), encoding="utf-8")
    result = params_json(capsys, str(path), "--rank", "4", "--targets", "q_proj,k_proj")
    # head_dim 64/4 = 16; q 64 -> 64, k 64 -> 2x16; 2 layers
    assert result["trainable_params"] == 2 * 4 * ((64 + 64) + (64 + 32))
    per_layer = 2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128 + 2 * 64
    assert result["total_params"] == 1000 * 64 * 2 + 2 * per_layer + 64


def test_params_reads_the_text_config_of_a_multimodal_config_json(capsys, tmp_path):
    text = {k: v for k, v in TINY_CONFIG.items() if k != "architectures"}
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "llava", "architectures": ["X"], "text_config": text}),
                    encoding="utf-8")
    assert params_json(capsys, str(path), "--targets", "q_proj", "--rank", "1")["trainable_params"] == 2 * 128


def test_modules_to_save_are_listed_and_counted(capsys):
    result = params_json(capsys, "gpt2", "--rank", "8", "--targets", "c_attn", "--modules-to-save", "lm_head")
    assert result["modules_to_save"] == [{"name": "lm_head", "params": 50257 * 768}]
    assert result["trainable_params"] == 12 * 8 * (768 + 2304) + 50257 * 768


# -- presets --------------------------------------------------------------------------------------------

def test_presets_lists_every_preset_id(capsys):
    code, out, err = run_main(capsys, "presets")
    assert (code, err) == (0, "")
    ids = {p.stem for p in PRESET_DIR.glob("*.yaml")}
    listed = {line.split()[0] for line in out.splitlines()[2:] if line.strip()}
    assert ids <= listed


def test_presets_json_gives_each_id_its_model_type_and_total(capsys):
    code, out, _ = run_main(capsys, "presets", "--json")
    assert code == 0
    rows = {row["id"]: row for row in json.loads(out)}
    assert rows["llama-3.1-8b"]["total_params"] == 8_030_261_248
    assert rows["llama-3.1-8b"]["model_type"] == "llama"


# -- errors: one line, exit 2 ---------------------------------------------------------------------------

def _bad_files(tmp_path: Path) -> dict[str, Path]:
    invalid = tmp_path / "invalid.json"
    invalid.write_text('{"model_type": "llama",', encoding="utf-8")
    bert = tmp_path / "bert.json"
    bert.write_text(json.dumps({"model_type": "bert", "hidden_size": 768}), encoding="utf-8")
    directory = tmp_path / "directory.json"
    directory.mkdir()
    return {"missing": tmp_path / "missing.json", "directory": directory, "invalid": invalid, "bert": bert}


@pytest.mark.parametrize("argv, needles", [
    (["params", "llama-3.1-8"], ["unknown preset", "llama-3.1-8b"]),
    (["params", "{missing}"], ["missing.json", "cannot read"]),
    (["params", "{directory}"], ["directory.json", "cannot read"]),
    (["params", "{invalid}"], ["invalid.json", "invalid JSON"]),
    (["params", "{bert}"], ["bert.json", "unsupported model_type 'bert'"]),
    (["params", "llama-3.1-8b", "--targets", "w1"], ["no module 'w1'"]),
    (["params", "llama-3.1-8b", "--rank", "0"], ["--rank"]),
    (["params", "llama-3.1-8b", "--rank", "-1"], ["--rank"]),
    (["params", "llama-3.1-8b", "--rank", "x"], ["--rank"]),
    (["params", "llama-3.1-8b", "--alpha", "0"], ["--alpha"]),
    (["params"], ["required", "config"]),
    (["params", "llama-3.1-8b", "--bias", "bogus"], ["--bias", "bogus"]),
    (["params", "mixtral-8x7b", "--targets", "w1"], ["w3"]),
    (["params", "gpt2", "--modules-to-save", "c_fc"], ["--modules-to-save", "c_fc"]),
    (["bogus-command"], ["bogus-command"]),
], ids=lambda v: " ".join(v) if isinstance(v, list) and v and v[0] in ("params", "bogus-command") else None)
def test_bad_input_prints_one_line_and_exits_2(capsys, tmp_path, argv, needles):
    files = _bad_files(tmp_path)
    argv = [a.format(**files) for a in argv]
    code, out, err = run_main(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err


def test_a_zero_head_count_in_config_json_is_one_line_not_a_crash(capsys, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**TINY_CONFIG, "num_attention_heads": 0}), encoding="utf-8")
    code, _, err = run_main(capsys, "params", str(path))
    assert code == 2 and "num_attention_heads" in err


def test_a_missing_subcommand_names_the_program_once(capsys):
    code, _, err = run_main(capsys)
    assert code == 2
    assert "calc calc" not in err


# -- as a real process ----------------------------------------------------------------------------------

def test_python_m_calc_params_runs_as_a_process():
    proc = run_process("params", "llama-3.2-1b", "--rank", "8", "--targets", "q_proj", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["trainable_params"] == 524_288


@pytest.mark.parametrize("argv", [["params", "llama-3.1-8"], ["params"], ["params", "gpt2", "--rank", "-1"]])
def test_python_m_calc_errors_are_one_line_without_traceback(argv):
    proc = run_process(*argv)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr
