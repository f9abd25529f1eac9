"""calc.headline: the derived figures of the home page, the catalogue and the FAQ equal the calc functions
they combine, and the unit conversions are exact."""

from __future__ import annotations

import math

import pytest

from calc.pages import common as pc, site as ps
from calc.adapters import adapter_file_bytes, merged_model_bytes
from calc.gpus import all_gpus, fit, get_gpu
from calc.lora import count_lora
from calc.memory import CUDA_CONTEXT_BYTES, estimate_memory
from calc.presets import all_presets, get_preset

MODEL = "llama-3.1-8b"


def test_units():
    assert pc.gib(3 << 30) == 3.0 and pc.mib(5 << 20) == 5.0


def test_lora_spec_defaults_alpha_to_twice_the_rank():
    assert pc.lora_spec(16).lora_alpha == 32
    assert pc.lora_spec(16, 8).lora_alpha == 8
    assert pc.lora_spec(4, None, ["q_proj"]).target_modules == ("q_proj",)


# -- catalogue ------------------------------------------------------------------------------------------------
def test_catalogue_has_every_preset_once_in_family_then_size_order():
    rows = ps.catalogue()
    assert sorted(f.preset.id for f in rows) == sorted(all_presets())
    keys = [(f.preset.family, f.total_params) for f in rows]
    assert keys == sorted(keys)


@pytest.mark.parametrize("preset_id, kv, width, experts, tied", [
    ("llama-3.1-8b", 8, 14336, 1, False),
    ("falcon-7b", 1, 18176, 1, True),        # multi_query: one K/V head; ffn_hidden_size = 4 * 4544
    ("gpt2", 12, 3072, 1, True),             # n_inner null: 4 * n_embd
    ("mixtral-8x7b", 8, 14336, 8, False),
    ("deepseek-v2-lite", 16, 10944, 64, False),
])
def test_preset_facts(preset_id, kv, width, experts, tied):
    f = ps.preset_facts(get_preset(preset_id))
    assert (f.num_key_value_heads, f.intermediate_size, f.experts, f.tie_word_embeddings) == (kv, width, experts, tied)
    assert f.total_params == get_preset(preset_id).architecture.total_params
    assert f.stated_deviation == pytest.approx(f.total_params / f.stated_params - 1)


def test_largest_stated_deviation_is_the_maximum():
    worst = ps.largest_stated_deviation()
    assert all(abs(f.stated_deviation) <= abs(worst.stated_deviation) for f in ps.catalogue())


# -- memory ---------------------------------------------------------------------------------------------------
def test_compare_methods_adds_the_context_to_the_peak():
    arch = get_preset(MODEL).architecture
    rows = pc.compare_methods(MODEL, pc.lora_spec(16))
    assert [m.method for m in rows] == ["full", "lora", "qlora"]
    for m in rows:
        est = estimate_memory(arch, m.setup)
        assert m.peak_bytes == est.device_bytes
        assert m.context_bytes == CUDA_CONTEXT_BYTES
        assert m.required_bytes == m.peak_bytes + m.context_bytes
        assert m.required_gib == m.required_bytes / 2**30
        assert m.weights_bytes == est.component("weights")
        for key, value in pc.DEFAULT_CONDITIONS.items():
            assert getattr(m.setup, key) == value
    full, lora, qlora = rows
    assert full.required_bytes > lora.required_bytes > qlora.required_bytes
    assert pc.memory_ratio(full, qlora) == full.required_bytes / qlora.required_bytes


def test_method_setup_conditions_can_be_overridden():
    s = pc.method_setup("lora", None, gradient_checkpointing=False, seq_len=512)
    assert (s.gradient_checkpointing, s.seq_len, s.lora.r, s.lora.lora_alpha) == (False, 512, 16, 32)
    assert pc.method_setup("full", pc.lora_spec(8)).lora is None


def test_gpus_like_and_fit_gpus_agree_with_calc_gpus():
    like = pc.gpus_like("rtx-4090")
    assert get_gpu("rtx-4090") in like
    assert {g.marketed for g in like} == {"24 GB"}
    assert len(like) == sum(g.marketed == "24 GB" for g in all_gpus().values())
    mem = pc.compare_methods("qwen2.5-7b", pc.lora_spec(16), ("qlora",))[0]
    for row in pc.fit_gpus(mem, like):
        ref = fit(row.gpu, mem.peak_bytes, mem.context_bytes)
        assert (row.usable_bytes, row.required_bytes, row.headroom_bytes, row.fits) == (
            ref.usable_bytes, ref.required_bytes, ref.headroom_bytes, ref.fits)
        assert row.headroom_gib == row.headroom_bytes / 2**30


# -- LoRA choices ---------------------------------------------------------------------------------------------
def test_target_choices_equal_count_lora():
    arch = get_preset(MODEL).architecture
    rows = ps.target_choices(MODEL, 16)
    for row in rows:
        c = count_lora(arch, pc.lora_spec(16, None, row.target_modules))
        assert (row.trainable_params, row.trainable_percent) == (c.trainable_params, c.trainable_percent)
    by = {r.target_modules: r.trainable_params for r in rows}
    assert by["qv"] < by["attention"] < by["all-linear"]
    assert by["attention"] + by["mlp"] == by["all-linear"]


def test_rank_choices_scale_with_r_and_match_the_adapter_file():
    arch = get_preset(MODEL).architecture
    rows = ps.rank_choices(MODEL, (8, 16, 32))
    assert [r.lora_alpha for r in rows] == [16, 32, 64]
    assert rows[1].trainable_params == 2 * rows[0].trainable_params
    for row in rows:
        assert row.adapter_bytes == adapter_file_bytes(arch, pc.lora_spec(row.r)).bytes
        assert row.adapter_mib == row.adapter_bytes / 2**20


def test_scaling_choices():
    (a, b) = ps.scaling_choices([(16, 32), (64, 16)])
    assert (a.lora_scaling, a.rslora_scaling) == (2.0, 8.0)
    assert (b.lora_scaling, b.rslora_scaling) == (0.25, 2.0)


# -- storage and merging --------------------------------------------------------------------------------------
def test_weight_storage():
    ws = ps.weight_storage(MODEL)
    arch = get_preset(MODEL).architecture
    assert ws.bf16_bytes == 2 * arch.total_params
    assert ws.nf4_bytes < ws.nf4_single_bytes < ws.bf16_bytes
    assert ws.nf4_bits == pytest.approx(4.127, abs=5e-4) and ws.nf4_single_bits == 4.5   # QLoRA §3
    assert (ws.blocksize, ws.dq_blocksize) == (64, 256)
    assert 0 < ws.quantized_share < 1
    assert ws.ratio == ws.bf16_bytes / ws.nf4_bytes


def test_merge_sizes():
    arch = get_preset(MODEL).architecture
    ms = ps.merge_sizes(MODEL, pc.lora_spec(16))
    assert ms.merged_bytes == merged_model_bytes(arch, "bf16") == 2 * arch.total_params
    assert ms.merged_fp32_bytes == 4 * arch.total_params
    assert ms.adapter_bytes == adapter_file_bytes(arch, pc.lora_spec(16)).bytes
    assert ms.merged_gib == ms.merged_bytes / 2**30


def test_nf4_levels():
    levels = ps.nf4_level_values()
    assert len(levels) == 16 and levels[0] == -1.0 and levels[-1] == 1.0 and 0.0 in levels
    assert all(math.isfinite(v) for v in levels)


# -- the page macros that format these figures ----------------------------------------------------------------
def test_site_page_macros_render_with_units():
    import jinja2

    from macros import site_pages

    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    names = {name: getattr(site_pages, name) for name in site_pages.MACROS}
    page = env.from_string(
        "{{ memory_required('llama-3.1-8b', 'qlora') }}|{{ weights_size('llama-3.1-8b', 'nf4') }}|"
        "{{ adapter_size('llama-3.1-8b', 16) }}|{{ trainable_share('llama-3.1-8b') }}|"
        "{{ fit_question('qwen2.5-7b', 'qlora', 16, 'rtx-4090') }}|{{ lora_scaling(16) }}|{{ lora_default('r') }}"
    ).render(**names)
    required, nf4, adapter, share, question, scale, default_r = page.split("|")
    assert required.endswith(" GiB") and nf4.endswith(" GiB") and adapter.endswith(" MiB") and share.endswith(" %")
    assert question == "Will Qwen2.5 7B QLoRA at r = 16 fit on a 24 GB card?"
    assert (scale, default_r) == ("2", "8")
    assert site_pages.preset_catalogue().count("\n") == len(all_presets()) + 1
    with pytest.raises(KeyError):
        site_pages.lora_default("target_modules")   # calc's default is not PEFT's there
