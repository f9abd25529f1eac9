"""The LoRA pages (lora.md, rank.md, alpha.md, target-modules.md): calc.pages.lora and the page macros.

calc.pages.lora is checked against independent expectations: hand derivations written out from each model's
config.json, and the counts PEFT publishes (Qwen2.5-3B r=16 q,v = 3,686,400; Llama-3.2-3B r=32 q,v =
9,175,040 and with DoRA 9,289,728; Llama-3.2-1B r=8 q = 524,288). The macros are rendered under jinja2's
StrictUndefined with the registration shape of the real environment, and the numbers they print are
compared with calc's. The pages themselves must carry no hand-typed number outside code, macros and an
allowlist of names.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import jinja2
import pytest

import macros
from calc.pages import lora as g
from calc.errors import CalcError
from calc.lora import LoraSpec, count_lora, scaling
from calc.presets import get_preset
from macros import lora_pages, rot
from tests.test_macros import FakeEnv, chart_parts

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("lora.md", "rank.md", "alpha.md", "target-modules.md")


def arch(preset_id: str):
    return get_preset(preset_id).architecture


# -- unit conversions and shares ------------------------------------------------------------------------------

def test_mib_and_gib_are_binary():
    assert g.bytes_to_mib(1_048_576) == 1.0
    assert g.bytes_to_mib(3 * 2**19) == 1.5
    assert g.bytes_to_gib(2**30) == 1.0
    assert g.bytes_to_gib(5 * 2**29) == 2.5


def test_percent_and_its_zero_guard():
    assert g.percent(1, 8) == 12.5
    with pytest.raises(CalcError):
        g.percent(1, 0)


# -- one projection -------------------------------------------------------------------------------------------

def test_llama_3_1_8b_q_proj_by_hand():
    # config.json: hidden 4096, 32 heads x 128, 32 layers. q_proj 4096 -> 4096; at r=16: A 16x4096, B 4096x16.
    p = g.projection_lora(arch("llama-3.1-8b"), "self_attn.q_proj", 16)
    assert (p.in_features, p.out_features, p.count) == (4096, 4096, 32)
    assert p.a_shape == (16, 4096) and p.b_shape == (4096, 16)
    assert p.weight_params == 4096 * 4096 == 16_777_216
    assert p.lora_per_instance == 16 * 4096 + 4096 * 16 == 131_072
    assert p.lora_total == 32 * 131_072 == 4_194_304
    assert p.percent_of_weight == pytest.approx(100 * 131_072 / 16_777_216)   # 0.78125 %


def test_llama_3_1_8b_k_proj_is_gqa_narrow():
    # 8 key/value heads x 128 = 1024 outputs
    p = g.projection_lora(arch("llama-3.1-8b"), "self_attn.k_proj", 16)
    assert (p.in_features, p.out_features) == (4096, 1024)
    assert p.lora_per_instance == 16 * (4096 + 1024) == 81_920
    assert p.percent_of_weight == pytest.approx(100 * 81_920 / (4096 * 1024))   # 1.953125 %


def test_llama_3_2_1b_r8_q_proj_is_peft_published_524_288():
    # PEFT: LoraConfig(r=8, target_modules=["q_proj"]) on Llama-3.2-1B trains 524,288 (16 layers x 8 x 4096)
    assert g.projection_lora(arch("llama-3.2-1b"), "self_attn.q_proj", 8).lora_total == 16 * 8 * (2048 + 2048) \
        == 524_288


def test_projection_of_an_unknown_module_is_a_calc_error():
    with pytest.raises(CalcError):
        g.projection_lora(arch("llama-3.1-8b"), "self_attn.nope")


# -- whole-model tables ----------------------------------------------------------------------------------------

def test_llama_3_1_8b_all_linear_r16_is_41_943_040_by_hand():
    # r·(9h + 2·h_kv + 3I) per layer: h=4096, h_kv=1024, I=14336, 32 layers
    by_hand = 32 * 16 * (9 * 4096 + 2 * 1024 + 3 * 14336)
    t = g.module_table(arch("llama-3.1-8b"), 16)
    assert by_hand == 41_943_040 == t.lora_params == t.trainable_params
    assert [r.name for r in t.rows] == ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                        "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
    assert math.isclose(sum(r.percent_of_lora for r in t.rows), 100.0)
    down = t.rows[-1]
    assert down.per_layer == 16 * (14336 + 4096) and down.lora_params == 32 * down.per_layer


def test_qwen2_5_3b_qv_r16_matches_peft_readme():
    t = g.module_table(arch("qwen2.5-3b"), 16, "qv")
    assert t.trainable_params == 3_686_400 == 36 * 16 * ((2048 + 2048) + (2048 + 256))


def test_mixtral_gate_up_gets_twice_the_rank_and_alpha_and_the_same_scale():
    rows = {r.name: r for r in g.module_table(arch("mixtral-8x7b"), 16, include_untargeted=True).rows}
    gu = rows["mlp.experts.gate_up_proj"]
    assert (gu.r, gu.lora_alpha, gu.scale) == (32, 64, 2.0)
    # 8 experts x rank 32 x (4096 + 2x14336) per layer, 32 layers
    assert gu.lora_params == 32 * 8 * 32 * (4096 + 28672) == 268_435_456
    router = rows["mlp.gate"]
    assert router.targeted and router.lora_params == 32 * 16 * (4096 + 8)


def test_qwen_moe_routed_experts_get_nothing_and_shared_expert_gate_does():
    t = g.module_table(arch("qwen1.5-moe-a2.7b"), 16, include_untargeted=True)
    untargeted = {r.name for r in t.untargeted}
    assert untargeted == {"mlp.gate", "mlp.experts.gate_up_proj", "mlp.experts.down_proj"}
    rows = {r.name: r for r in t.rows}
    assert rows["mlp.shared_expert_gate"].lora_params == 24 * 16 * (2048 + 1)
    assert rows["mlp.experts.gate_up_proj"].weight_params == 24 * 60 * 2048 * 2816


def test_deepseek_v2_dense_mlp_and_shared_experts_get_nothing():
    t = g.module_table(arch("deepseek-v2-lite"), 16, include_untargeted=True)
    assert {r.name for r in t.untargeted} == {
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
        "mlp.shared_experts.gate_proj", "mlp.shared_experts.up_proj", "mlp.shared_experts.down_proj"}
    rows = {r.name: r for r in t.rows}
    assert rows["mlp.experts.gate_up_proj"].r == 32
    assert rows["mlp.shared_experts.gate_proj"].weight_params == 26 * 2048 * 2816


# -- splits, sweeps and ratios -------------------------------------------------------------------------------------

def test_param_split_is_count_lora():
    s = g.param_split(get_preset("llama-3.1-8b"), 16)
    assert (s.frozen_params, s.trainable_params) == (8_030_261_248, 41_943_040)
    assert s.frozen_per_trainable == pytest.approx(8_030_261_248 / 41_943_040)
    assert s.trainable_percent == pytest.approx(100 * 41_943_040 / (8_030_261_248 + 41_943_040))


def test_rank_sweep_is_linear_in_r_and_the_file_is_four_bytes_per_parameter_plus_a_header():
    pts = g.rank_sweep(arch("llama-3.2-1b"))
    assert [p.r for p in pts] == list(g.RANK_GRID)
    base = pts[0].trainable_params // pts[0].r
    assert all(p.trainable_params == base * p.r for p in pts)
    for p in pts:
        header = p.adapter_bytes - 4 * p.trainable_params
        assert 8 < header < 200_000 and header % 8 == 0   # u64 length + JSON padded to 8
        assert p.adapter_mib == p.adapter_bytes / 2**20


def test_rank_cost_256_vs_16_on_llama_3_1_8b():
    c = g.rank_cost(get_preset("llama-3.1-8b"))
    assert (c.low.r, c.high.r) == (16, 256)
    assert c.low.trainable_params == 41_943_040 and c.high.trainable_params == 16 * 41_943_040
    assert c.params_ratio == 16.0
    assert 15.9 < c.bytes_ratio < 16.0   # the header does not grow with r
    assert c.extra_params == 15 * 41_943_040
    assert c.extra_mib == pytest.approx((c.high.adapter_bytes - c.low.adapter_bytes) / 2**20)


def test_seven_b_class_is_the_dense_presets_in_range():
    ids = [p.id for p in g.presets_in_class()]
    assert "llama-3.1-8b" in ids and "mistral-7b-v0.3" in ids and "qwen2.5-7b" in ids
    assert "mixtral-8x7b" not in ids and "llama-3.2-3b" not in ids
    sizes = [get_preset(i).architecture.total_params for i in ids]
    assert sizes == sorted(sizes) and all(6_500_000_000 <= s < 9_000_000_000 for s in sizes)


# -- scaling ------------------------------------------------------------------------------------------------------

def test_scale_rules_by_hand():
    by = {(p.rule, p.r): p for p in g.scale_curves()}
    assert by[("α = r", 64)].scale == 1.0
    assert by[("α = 2r", 4)].scale == 2.0
    assert by[("α = 16 (fixed)", 64)].scale == 0.25
    assert by[("rsLoRA, α = 2r", 16)].scale == pytest.approx(2 * 16 / 4)
    assert by[("rsLoRA, α = 16 (fixed)", 256)].scale == pytest.approx(1.0)
    assert len(g.scale_curves()) == len(g.SCALE_RULES) * len(g.RANK_GRID) < 100


def test_alpha_pairs_and_scale_ratio():
    pairs = {(a.r, a.lora_alpha): a for a in g.alpha_pairs()}
    assert pairs[(8, 8)].scale == 1.0 and pairs[(8, 8)].rslora_scale == pytest.approx(8 / math.sqrt(8))
    assert pairs[(64, 16)].scale == 0.25 and pairs[(64, 16)].rslora_scale == 2.0
    assert g.scale_ratio(16, 64, 16) == 0.25
    assert g.scale_ratio(16, 64, 16, use_rslora=True) == 0.5


def test_peft_defaults_match_the_installed_peft():
    peft = pytest.importorskip("peft")
    cfg = peft.LoraConfig()
    assert (cfg.r, cfg.lora_alpha, cfg.use_rslora, cfg.use_dora) == (
        g.PEFT_DEFAULTS.r, g.PEFT_DEFAULTS.lora_alpha, g.PEFT_DEFAULTS.use_rslora, g.PEFT_DEFAULTS.use_dora)
    assert g.PEFT_DEFAULTS.scale == 1.0


# -- targets, DoRA, modules_to_save, fused modules -------------------------------------------------------------------

def test_target_set_costs_on_llama_3_1_8b_by_hand():
    ts = {t.target_set: t for t in g.target_set_costs(arch("llama-3.1-8b"), 16)}
    qv = 32 * 16 * ((4096 + 4096) + (4096 + 1024))
    assert ts["qv"].trainable_params == qv
    assert ts["attention"].trainable_params == 2 * qv
    assert ts["mlp"].trainable_params == 32 * 16 * 3 * (4096 + 14336)
    assert ts["all-linear"].percent_of_all_linear == 100.0
    assert ts["qv"].percent_of_all_linear == pytest.approx(100 * qv / 41_943_040)


def test_dora_on_llama_3_2_3b_matches_peft_published_counts():
    d = g.dora_cost(arch("llama-3.2-3b"), 32, ("q_proj", "v_proj"))
    assert d.lora_params == 9_175_040 and d.dora_params == 9_289_728
    assert d.magnitude_params == 28 * (3072 + 1024) == 9_289_728 - 9_175_040
    assert d.overhead_percent == pytest.approx(100 * 114_688 / 9_175_040)


def test_modules_to_save_copies_a_tied_lm_head_in_full():
    c = g.modules_to_save_cost(get_preset("llama-3.2-1b"))
    assert c.tied
    assert c.copy_params == 128_256 * 2048
    assert c.trainable_params == c.lora_params + c.copy_params
    # the copy is saved in the base dtype (bf16): 2 bytes per element, plus a slightly longer header
    assert 2 * c.copy_params <= c.bytes_with - c.bytes_without < 2 * c.copy_params + 1024
    both = g.modules_to_save_cost(get_preset("llama-3.2-1b"), ("lm_head", "embed_tokens"))
    assert both.copy_params == 2 * 128_256 * 2048


def test_fused_rows_by_hand():
    rows = {(f.preset_id, f.module): f for f in g.fused_rows(g.FUSED_PRESETS, 16)}
    qkv = rows[("phi-3-mini-4k", "self_attn.qkv_proj")]
    assert (qkv.in_features, qkv.out_features) == (3072, 3 * 3072)
    assert qkv.lora_params == 32 * 16 * (3072 + 9216)
    falcon = rows[("falcon-7b", "self_attention.query_key_value")]
    assert falcon.out_features == 4544 + 2 * 64        # multi-query: one k head and one v head of 64
    assert rows[("gpt2", "attn.c_attn")].lora_params == 12 * 16 * (768 + 3 * 768)


# -- rank guidance data ---------------------------------------------------------------------------------------------

def test_rank_guidance_entries_cite_known_references_and_only_state_sourced_ranks():
    from calc.references import load_references

    entries = g.rank_guidance()
    assert len({e.id for e in entries}) == len(entries)
    refs = load_references()
    assert all(e.cite in refs for e in entries)
    by_id = {e.id: e for e in entries}
    assert by_id["peft-default"].ranks == (g.PEFT_DEFAULTS.r,)
    assert by_id["qlora-all-linear"].ranks == (64,)
    assert set(by_id["biderman-cpt"].ranks) == {16, 64, 256}


def test_rank_guidance_rejects_unknown_references(tmp_path):
    bad = tmp_path / "g.yaml"
    bad.write_text("- {id: x, use_case: u, ranks: [8], lora_alpha: '8', target_modules: t, finding: f, "
                   "cite: nosuchpaper, where: w}\n", encoding="utf-8")
    with pytest.raises(CalcError, match="unknown reference"):
        g.rank_guidance.__wrapped__(bad)
    bad.write_text("- {id: x, use_case: u, ranks: [0], lora_alpha: '8', target_modules: t, finding: f, "
                   "cite: hu2021, where: w}\n", encoding="utf-8")
    with pytest.raises(CalcError, match="positive integers"):
        g.rank_guidance.__wrapped__(bad)


# -- macros ------------------------------------------------------------------------------------------------------------



@pytest.fixture(scope="module")
def render():
    env = FakeEnv()
    macros.define_env(env)
    for name in lora_pages.MACROS:
        assert env.macros[name] is getattr(lora_pages, name), f"macro {name} is registered by another module too"
    jinja = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return lambda source: jinja.from_string(source).render(**env.macros)


def test_inline_macros_print_calcs_numbers(render):
    assert render('{{ lora_count("llama-3.1-8b") }}') == f"{count_lora(arch('llama-3.1-8b'), LoraSpec(r=16)).trainable_params:,}"
    assert render('{{ lora_count("llama-3.2-3b", 32, ["q_proj", "v_proj"], use_dora=True) }}') == "9,289,728"
    assert render('{{ projection_value("llama-3.1-8b", "self_attn.q_proj", "lora_per_instance") }}') == "131,072"
    assert render('{{ projection_value("llama-3.1-8b", "self_attn.k_proj", "a_shape") }}') == "16 × 4096"
    assert render('{{ rank_cost_value("llama-3.1-8b", "params_ratio", "g") }}') == "16"
    assert render("{{ scale_value(64, 16) }}") == "0.25"
    assert render("{{ scale_ratio_value(16, 64, 16, True) }}") == "0.5"
    assert render('{{ guide("peft_r") }}/{{ guide("peft_alpha") }}') == "8/8"
    # QLoRA's recipe is r = 64, lora_alpha = 16 (Dettmers et al. 2023; artidoro/qlora's Guanaco scripts): 16/64
    assert render('{{ guide("qlora_r") }}/{{ guide("qlora_alpha") }}') == "64/16"
    assert render('{{ scale_value(guide_value("qlora_r"), guide_value("qlora_alpha")) }}') == "0.25"
    assert render('{{ guide_value("dora_rank") + 0 }}') == "32"
    assert render('{{ module_value("mixtral-8x7b", "mlp.experts.gate_up_proj", "r") }}') == "32"
    assert render('{{ mts_value("llama-3.2-1b", "copy_params") }}') == f"{128_256 * 2048:,}"
    assert render('{{ model_name("llama-3.1-8b") }}') == "Llama 3.1 8B"
    assert render('{{ module_list("gpt2", ["c_proj"]) }}') == "<code>attn.c_proj</code>, <code>mlp.c_proj</code>"
    assert render('{{ family_name("deepseek-v2-lite") }}') == "DeepSeek-V2"
    assert render('{{ target_set_value("mixtral-8x7b", "attention") }}') == f"{32 * 16 * 2 * (4096 + 4096 + 4096 + 1024):,}"
    assert render('{{ target_set_value("llama-3.1-8b", "qv", "percent_of_all_linear", "pct:1") }}') == \
        f"{100 * 32 * 16 * (8192 + 5120) / 41_943_040:.1f} %"


def test_every_macro_of_the_module_is_exercised_by_a_test():
    source = Path(__file__).read_text(encoding="utf-8")
    missing = [name for name in lora_pages.MACROS if f"{{{{ {name}(" not in source and f'"{name}"' not in source]
    assert not missing, f"untested macros: {missing}"


def test_rank_guidance_findings_link_their_sources(render):
    out = render("{{ rank_guidance_findings() }}")
    assert out.count("\n- ") == len(g.rank_guidance()) - 1
    assert "(references.md#ref-dettmers2023)" in out and "(references.md#ref-biderman2024)" in out


def test_per_module_table_equals_calc(render):
    out = render('{{ rot_table("rot-per-module-qwen2-5-7b") }}')
    row = next(line for line in out.splitlines() if line.startswith("| k\\_proj |"))
    assert row.startswith("| k\\_proj | 3,584 | 512 | 28 | 65,536 | 1,835,008 |")   # 16·(3584+512) = 65,536; x28
    assert f"| all modules | — | — | — | — | {40_370_176:,} | 100.0 % |" in out


def test_peft_printout_has_peft_s_format(render):
    out = render('{{ peft_printout("qwen2.5-3b", 16, "qv") }}')
    assert out == ("```text\ntrainable params: 3,686,400 || all params: 3,089,625,088 || trainable%: 0.1193\n```")


def test_projection_table_shows_calcs_shapes(render):
    out = render('{{ projection_table("llama-3.1-8b", ["self_attn.q_proj", "self_attn.k_proj"]) }}')
    assert "| LoRA elements `r·(in+out)` | 131,072 | 81,920 |" in out
    assert "| `A` shape (r × in) | 16 × 4096 | 16 × 4096 |" in out


LORA_ROT_IDS = (
    "rot-per-module-llama-3-1-8b", "rot-dora-extra-parameters", "rot-trainable-params-by-rank",
    "rot-adapter-size-by-rank", "rot-rank-by-use-case", "rot-high-rank-cost", "rot-alpha-scale-factors",
    "rot-per-module-qwen2-5-7b", "rot-target-set-cost", "rot-fused-modules", "rot-moe-all-linear",
    "rot-modules-to-save-cost",
)


@pytest.mark.parametrize("table_id", LORA_ROT_IDS)
def test_rot_tables_render_with_anchor_conditions_and_rows(render, table_id):
    out = render(f'{{{{ rot_table("{table_id}") }}}}')
    assert f"{{ #{table_id} }}" in out
    assert "*Conditions:*" in out
    t = rot.table_for(table_id)
    assert t.rows and t.source.startswith("calc.")
    assert all(len(row) == len(t.columns) for row in t.rows)


def test_rank_table_numbers_equal_calc(render):
    out = render('{{ rot_table("rot-trainable-params-by-rank") }}')
    row = next(line for line in out.splitlines() if line.startswith("| Llama 3.1 8B |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    expected = [f"{count_lora(arch('llama-3.1-8b'), LoraSpec(r=r)).trainable_params:,}" for r in g.RANK_GRID]
    assert cells[1:] == expected


def test_high_rank_table_numbers_equal_calc(render):
    out = render('{{ rot_table("rot-high-rank-cost") }}')
    row = next(line for line in out.splitlines() if line.startswith("| Llama 3.1 8B |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    c = g.rank_cost(get_preset("llama-3.1-8b"))
    assert cells[1:4] == [f"{c.low.trainable_params:,}", f"{c.high.trainable_params:,}", "16.00"]
    assert cells[5] == f"{c.high.adapter_mib:,.1f}" and cells[6] == f"{c.extra_mib:,.1f}"


def test_moe_table_marks_untargeted_modules_with_a_dash(render):
    out = render('{{ rot_table("rot-moe-all-linear") }}')
    row = next(line for line in out.splitlines() if "Qwen1.5-MoE" in line and "experts.gate\\_up\\_proj" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[4] == "—" and cells[5] == "0"


CHARTS = ("chart_trainable_vs_frozen", "chart_params_vs_rank", "chart_adapter_size_vs_rank", "chart_scale_vs_rank",
          "chart_target_sets")


@pytest.mark.parametrize("name", CHARTS)
def test_every_chart_has_caption_aria_label_and_a_data_table(render, name):
    parts = chart_parts(render(f"{{{{ {name}() }}}}"))
    assert len(parts.table_lines) - 2 < 100     # small data


def test_chart_data_equals_calc(render):
    out = render("{{ chart_params_vs_rank() }}")
    expected = f"{count_lora(arch('llama-3.1-70b'), LoraSpec(r=256)).trainable_params:,}"
    assert f"| Llama 3.1 70B | 256 | {expected} |" in out
    out = render("{{ chart_scale_vs_rank() }}")
    assert f"| rsLoRA, α = 2r | 64 | 128 | {scaling(64, 128, True):,.4f} |" in out


# -- the pages --------------------------------------------------------------------------------------------------------------

# Names that contain digits but are not quantities (the project's allowlist).
ALLOWED_NAMES = re.compile(r"bf16|fp16|fp32|NF4|int8|4-bit|Llama 3\.1|Qwen2\.5|Phi-3|GPT-2|Gemma 2")


def prose(markdown: str) -> str:
    """The page without code fences, inline code, Jinja expressions/statements and attribute lists."""
    out = re.sub(r"^(\s*)(```|~~~).*?^\1\2\s*$", "", markdown, flags=re.S | re.M)
    out = re.sub(r"\{\{.*?\}\}|\{%.*?%\}", "", out, flags=re.S)
    out = re.sub(r"`[^`\n]*`", "", out)
    out = re.sub(r"\{\s*[#:][^}]*\}", "", out)
    return ALLOWED_NAMES.sub("", out)


@pytest.mark.parametrize("page", PAGES)
def test_pages_have_no_hand_typed_numbers(page):
    text = prose((ROOT / "docs" / page).read_text(encoding="utf-8"))
    offenders = [line for line in text.splitlines() if re.search(r"\d", line)]
    assert not offenders, f"{page}: digits outside code and macros:\n" + "\n".join(offenders)


@pytest.mark.parametrize("page", PAGES)
def test_pages_use_spaced_anchors_and_start_with_a_summary(page):
    source = (ROOT / "docs" / page).read_text(encoding="utf-8")
    assert "{#" not in source
    lines = source.splitlines()
    assert lines[0].startswith("# ")
    summary = lines[2:lines.index("", 2)]
    assert summary and not summary[0].startswith(("#", "{{", "!!!", "===", "|")), "the page opens with a paragraph"


def test_prose_scanner_catches_digits():
    assert re.search(r"\d", prose("rank 16 here"))
    assert not re.search(r"\d", prose("rank `r = 16` and {{ guide('example_rank') }} on Llama 3.1"))
