"""The QLoRA, NF4, training-memory, adapter-file and validation pages: calc.pages_data and their macros.

calc.pages_data is checked against independent expectations: hand derivations from each model's config.json
(written out below), the QLoRA paper's figures (4.5 and 4.127 bits per parameter at blocksize 64, a saving of
0.373 bits; "approximately 3 GB" saved on a 65B model), bitsandbytes' constants (the NF4 table of
``get_4bit_type("nf4")``, paged state from 1e5 elements, 8-bit state blocks of 256) and the research notes'
memory coefficients (``24h + 4h_kv + 8I + 14r + 4a + 8`` bytes per token and layer for PEFT's fp32 adapters under
autocast, ``12V`` for the loss). The macros are rendered under jinja2's StrictUndefined with the registration
shape of the real environment, and the numbers they print are compared with calc's.
"""

from __future__ import annotations

import math
import re
import statistics
from pathlib import Path

import jinja2
import numpy as np
import pytest

import macros
from calc.pages import common as pc, memory as pm, quant as pq
from calc.errors import CalcError
from calc.gpus import get_gpu
from calc.memory import TrainingSetup
from calc.presets import get_preset
from macros import memory_pages, quant_pages, rot
from tests.test_macros import FakeEnv, chart_parts

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("qlora.md", "nf4.md", "memory.md", "adapters.md", "validation.md")
GIB = 2**30
MIB = 2**20

# bitsandbytes/functional.py get_4bit_type("nf4"), copied from that source (QLoRA Appendix E).
BNB_NF4 = (-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
           -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
           0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023,
           1.0)

# Llama-3.1-8B config.json: hidden 4096, intermediate 14336, 32 layers, 32 heads, 8 KV heads x 128, vocab 128256.
H, I_, L, A, KV, V = 4096, 14336, 32, 32, 1024, 128_256
LLAMA8B_PARAMS = 8_030_261_248
LORA8B_R16 = L * 16 * (4 * H + 2 * H + 2 * KV + 3 * (H + I_))      # q,o: 2h each; k,v: h+kv; gate,up,down: h+I


def arch(preset_id: str):
    return get_preset(preset_id).architecture


# == NF4 =================================================================================================================
def test_lora_8b_hand_count_is_the_published_figure():
    assert LORA8B_R16 == 41_943_040


def test_nf4_levels_are_bitsandbytes_table_and_normal_quantiles():
    levels = pq.nf4_levels()
    assert [lv.code for lv in levels] == list(range(16))
    assert [lv.value for lv in levels] == pytest.approx(BNB_NF4, abs=1e-7)
    assert [lv.bits for lv in levels[:3]] == ["0000", "0001", "0010"] and levels[15].bits == "1111"
    # 7 negative + zero + 8 positive (QLoRA: 2^(k-1) for the negative part, 2^(k-1)+1 for the positive)
    assert (pq.nf4_sides().negative, pq.nf4_sides().zero, pq.nf4_sides().positive) == (7, 1, 8)
    # outermost probability 0.9677083; its quantile 1.8481 (memory-model §2.2)
    assert levels[0].probability == pytest.approx(0.9677083, abs=1e-7) == levels[15].probability
    assert pq.nf4_outer_quantile() == pytest.approx(1.8481, abs=1e-4)
    # positive probabilities are linspace(offset, 0.5, 9)[:-1]: evenly spaced by (offset - 0.5) / 8
    pos = [lv.probability for lv in levels if lv.side == "positive"]
    assert np.diff(pos) == pytest.approx([(0.9677083 - 0.5) / 8] * 7, abs=1e-6)
    for lv in levels:
        assert lv.value == pytest.approx(lv.quantile / pq.nf4_outer_quantile(), abs=1e-6)


def test_code_books_by_hand():
    nf4, fp4, int4 = pq.code_books()
    assert (nf4.distinct_count, nf4.zero_codes) == (16, 1)
    assert (fp4.distinct_count, fp4.zero_codes) == (15, 2)
    assert fp4.min_gap == pytest.approx(0.0625 / 12, abs=1e-7)       # bitsandbytes' FP4 subnormal 0.0625, max 12
    assert (int4.distinct_count, int4.zero_codes) == (15, 2)
    assert int4.max_gap == pytest.approx(1 / 7, abs=1e-6) and int4.min_gap == pytest.approx(1 / 7, abs=1e-6)
    assert nf4.max_gap == pytest.approx(1 - 0.6961928009986877, abs=1e-6)   # between -1 and the next level


def _nearest_lower(scaled: float, levels: np.ndarray) -> int:
    """The index of the nearest level, a tie going to the lower one (bitsandbytes' bucketize rule)."""
    d = np.abs(levels.astype(np.float64) - scaled)
    best = np.flatnonzero(d == d.min())
    return int(best[0])


def test_blockwise_example_by_hand():
    ex = pq.blockwise_example()
    assert ex.blocksize == 64 and len(ex.values) == 64 and ex.packed_bytes == 32
    xs = np.array([v.x for v in ex.values])
    assert ex.absmax == pytest.approx(np.abs(xs).max(), rel=1e-7)
    assert ex.absmax_index == int(np.argmax(np.abs(xs)))
    levels = np.array(BNB_NF4, dtype=np.float32)
    for v in ex.values:
        assert -1.0 <= v.scaled <= 1.0
        assert v.code == _nearest_lower(v.scaled, levels)
        assert v.level == pytest.approx(BNB_NF4[v.code], abs=1e-7)
        assert v.dequantized == pytest.approx(v.level * ex.absmax, rel=1e-6)
        assert v.error == pytest.approx(v.dequantized - v.x, abs=1e-6)
    top = ex.values[ex.absmax_index]
    assert top.code in (0, 15) and top.error == 0.0
    c0, c1 = ex.values[0].code, ex.values[1].code
    assert ex.packed_hex[0] == f"0x{(c0 << 4) | c1:02X}"          # first code in the high nibble
    assert ex.shown[-1].index == ex.absmax_index and len(ex.shown) == pq.EXAMPLE_SHOWN + 1
    assert ex.mse == pytest.approx(np.mean([v.error ** 2 for v in ex.values]), rel=1e-6)


def test_bits_per_parameter_are_the_qlora_papers():
    assert pq.bits_at(64, False).bits == 4.5                        # 4 + 32/64
    assert pq.bits_at(64, True).bits == pytest.approx(4.127, abs=5e-4)   # "8/64 + 32/(64·256) = 0.127"
    assert pq.bits_at(64, True).scale_bits == 8 / 64 + 32 / (64 * 256)
    assert pq.dq_saving_bits() == pytest.approx(0.373, abs=5e-4)    # "a reduction of 0.373 bits per parameter"
    assert pq.bits_at(32, False).bits == 5.0 and pq.bits_at(256, False).bits == 4.125
    int8 = next(r for r in pq.bits_rows() if r.storage.startswith("int8"))
    assert int8.bits == 8 + 32 / 4096
    bf16 = next(r for r in pq.bits_rows() if r.storage.startswith("bf16"))
    assert bf16.bytes_per_param == 2 and bf16.percent_of_bf16 == 100
    with pytest.raises(CalcError):
        pq.bits_at(48)


def test_one_4096_square_weight_by_hand():
    n = 4096 * 4096
    dq = pq.weight_breakdown(4096, 4096, "nf4", True)
    # packed n/2 + code 16·4 + absmax uint8 n/64 + offset 4 + state2.absmax 4·(n/64/256) + state2.code 256·4
    assert dq.total_bytes == n // 2 + 64 + n // 64 + 4 + 4 * (n // 64 // 256) + 1024 == 8_655_940
    # every tensor rounded up to 512 bytes by the caching allocator
    assert dq.allocated_bytes == n // 2 + 512 + n // 64 + 512 + 4 * (n // 64 // 256) + 1024
    single = pq.weight_breakdown(4096, 4096, "nf4", False)
    assert single.total_bytes == n // 2 + 64 + 4 * (n // 64) == 9_437_248
    assert [t.name for t in single.tensors] == ["weight", "quant_state.code", "quant_state.absmax"]
    assert pq.weight_breakdown(4096, 4096, "bf16", False).total_bytes == 2 * n
    assert dq.bits_per_weight == pytest.approx(8 * 8_655_940 / n)


def test_quantization_errors_match_a_naive_reimplementation():
    rows = pq.quantization_errors()
    by = {(r.code, r.double_quant): r for r in rows}
    x = np.random.default_rng(pq.ERROR_SEED).standard_normal(pq.ERROR_SAMPLES, dtype=np.float32)
    blocks = x.reshape(-1, pq.ERROR_BLOCKSIZE).astype(np.float64)
    absmax = np.abs(blocks).max(axis=1, keepdims=True)
    levels = np.array(BNB_NF4)
    scaled = blocks / absmax
    idx = np.abs(scaled[..., None] - levels).argmin(axis=-1)
    mse = float(np.mean((levels[idx] * absmax - blocks) ** 2))
    assert by[("nf4", False)].mse == pytest.approx(mse, rel=1e-4)
    assert by[("nf4", False)].mse < by[("int4", False)].mse < by[("fp4", False)].mse
    assert by[("nf4", True)].mse_vs_nf4 == pytest.approx(1.0, abs=0.01)   # double quantization adds almost nothing
    assert by[("int4", False)].max_abs < by[("nf4", False)].max_abs       # evenly spaced: the smallest worst case
    for r in rows:
        assert r.rmse == pytest.approx(math.sqrt(r.mse)) and r.numel == pq.ERROR_SAMPLES


# == QLoRA ===============================================================================================================
def test_qlora_storage_by_hand():
    llama = pq.qlora_storage_row("llama-3.1-8b")
    quantized = L * (2 * H * H + 2 * H * KV + 3 * H * I_)
    assert llama.quantized_params == quantized == 6_979_321_856
    assert llama.bf16_gib == 2 * LLAMA8B_PARAMS / GIB
    assert "lm_head" in llama.kept_16bit and "embeddings" in llama.kept_16bit
    mixtral = pq.qlora_storage_row("mixtral-8x7b")
    assert mixtral.quantized_params == 32 * (2 * 4096 * 4096 + 2 * 4096 * 1024)   # attention only, experts stay bf16
    assert "MoE expert stacks" in mixtral.kept_16bit
    falcon = pq.qlora_storage_row("falcon-7b")
    assert falcon.quantized_params == 0 and falcon.ratio == 1.0
    assert llama.ratio < pq.qlora_storage_row("llama-3.1-70b").ratio     # larger models shrink more


def test_double_quant_saving_on_70b_is_about_the_papers_3_gb():
    h, inter, kv, layers = 8192, 28672, 1024, 80
    saving = 0
    for n, count in ((h * h, 2), (h * kv, 2), (h * inter, 3)):
        b = -(-n // 64)
        saving += count * (4 * b - (b + 4 + 4 * -(-b // 256) + 1024))
    assert pq.double_quant_saving("llama-3.1-70b").saving_gib == pytest.approx(layers * saving / GIB, rel=1e-12)
    assert 2.5 < pq.double_quant_saving("llama-3.1-70b").saving_gib < 3.5    # QLoRA §1: "approximately 3 GB" (65B)


def test_dequant_transient_is_the_mlp_weight_in_bf16():
    d = pq.dequant_transient("llama-3.1-8b")
    assert d.nbytes == 2 * H * I_ == 117_440_512 and d.module.startswith("mlp.")


def test_prepare_kbit_doubles_what_stays_16bit_and_the_checkpoint():
    k = pq.kbit_prepare("llama-3.1-8b")
    assert k.unquantized_params == LLAMA8B_PARAMS - L * (2 * H * H + 2 * H * KV + 3 * H * I_)
    assert k.weights_extra_gib == pytest.approx(2 * k.unquantized_params / GIB)
    assert (k.checkpoint_bf16, k.checkpoint_fp32) == (2 * H, 4 * H)
    assert k.peak_fp32_gib > k.peak_bf16_gib


def test_paged_optimizer_state_by_hand():
    rows = {o.optimizer: o for o in pq.optimizer_rows("llama-3.1-8b")}
    # paged from 1e5 elements: at r=16 only down_proj's A (16×14336) and gate/up's B (14336×16) qualify
    paged_elements = L * 3 * 16 * I_
    assert rows["paged_adamw_8bit"].paged_mib == 2 * paged_elements / MIB == 42.0
    assert rows["paged_adamw_32bit"].paged_mib == 8 * paged_elements / MIB == 168.0
    assert rows["adamw"].states_mib == 8 * LORA8B_R16 / MIB == 320.0
    assert rows["paged_adamw_32bit"].states_mib == 320.0 - 168.0
    # 8-bit: two uint8 states + two fp32 absmax per 256 elements (every adapter tensor is a multiple of 256)
    assert rows["adamw_8bit"].states_mib == (2 * LORA8B_R16 + 8 * LORA8B_R16 // 256) / MIB
    assert rows["paged_adamw_8bit"].states_mib + rows["paged_adamw_8bit"].paged_mib == rows["adamw_8bit"].states_mib
    assert rows["adamw"].paged_mib == 0 and rows["adamw_8bit"].paged_mib == 0
    assert pq.paged_min_numel() == 100_000


def test_method_points_are_headlines_with_the_context_added():
    for p in pq.method_points():
        assert p.required_gib == pytest.approx(p.peak_gib + 794_820_608 / GIB)
    llama = {p.method: p for p in pq.method_points() if p.preset_id == "llama-3.1-8b"}
    assert llama["full"].required_gib > llama["lora"].required_gib > llama["qlora"].required_gib
    assert "micro-batch 1" in pc.conditions_text() and "2,048" in pc.conditions_text()


# == training memory =====================================================================================================
def test_precision_rows_by_hand():
    rows = {(r.precision, r.label): r for r in pm.precision_rows("llama-3.1-8b")}
    assert rows[("fp32", "fp32")].total_gib == 4 * LLAMA8B_PARAMS / GIB
    assert rows[("bf16", "bf16 / fp16")].bits_per_param == 16


def test_bytes_per_trainable_parameter():
    rows = [(r.weights, r.gradients, r.optimizer_states, r.master_weights) for r in pm.param_bytes_rows()]
    assert rows[0] == (2, 2, 4, 0)                         # pure bf16 with torch AdamW: 8 bytes
    assert rows[1] == (4, 4, 8, 0)                         # fp32 weights, AMP: 16
    assert rows[2] == (2, 2, 8, 4)                         # DeepSpeed-style fp32 master copy: 16 (ZeRO §3.1, K=12)
    assert rows[3][2] == pytest.approx(2 + 8 / 256, abs=1e-3)   # bitsandbytes 8-bit: 2 + 2·4/256
    assert rows[4] == (4, 4, 8, 0)                         # PEFT's fp32 adapters
    assert rows[5] == (2, 2, 4, 0)
    assert rows[6][2] == 2 + 8 / 256                       # every adapter tensor is 8-bit, exactly
    for r in pm.param_bytes_rows():
        assert r.total == pytest.approx(r.weights + r.gradients + r.optimizer_states + r.master_weights)


def test_activation_coefficients_are_the_research_notes():
    rows = {a.method: a for a in pm.activation_rows("llama-3.1-8b")}
    r = 16
    assert rows["lora"].per_token_layer == 24 * H + 4 * KV + 8 * I_ + 14 * r + 4 * A + 8 == 217_448
    assert rows["full"].per_token_layer == 20 * H + 4 * KV + 8 * I_ + 4 * A + 8 == 200_840
    assert rows["lora"].checkpoint_per_token_layer == 2 * H                 # Korthikanti et al.: 2sbhL
    assert rows["qlora"].checkpoint_per_token_layer == 4 * H                # fp32 residual after the upcast
    assert rows["lora"].tokens == 2048


def test_loss_terms_are_twelve_v_per_token():
    t = pm.loss_terms("llama-3.1-8b")
    assert (t.saved_per_token, t.backward_per_token) == (4 * V + 8, 8 * V)
    assert t.total_per_token == 12 * V + 8 == 1_539_080
    assert t.total_gib == pytest.approx((12 * V + 8) * 2048 / GIB)        # 2.94 GiB (memory-model §3.4)


def test_breakdowns_add_up_and_phases_have_one_peak():
    for b in pm.breakdowns("llama-3.1-8b"):
        allocator = sum(c.gib for c in b.components if c.component != "cuda_context")
        assert allocator == pytest.approx(b.peak_gib)
        assert b.required_gib == pytest.approx(b.peak_gib + 794_820_608 / GIB)
    phases = pm.phase_rows("llama-3.1-8b", "qlora")
    assert sum(p.is_peak for p in phases) == 1
    assert max(phases, key=lambda p: p.total_gib).is_peak
    assert pm.breakdown("llama-3.1-8b", "full").phase == "optimizer_step"
    with pytest.raises(CalcError):
        pm.breakdown("llama-3.1-8b", "nope")


def test_vram_rows_are_compare_methods():
    for row in pm.vram_rows():
        ms = {m.method: m.required_gib for m in pc.compare_methods(row.preset_id)}
        assert (row.full_gib, row.lora_gib, row.qlora_gib) == (ms["full"], ms["lora"], ms["qlora"])
        assert row.full_gib > row.lora_gib
        assert row.lora_no_gc_gib >= row.lora_gib and row.qlora_no_gc_gib >= row.qlora_gib


def test_fit_matrix_is_usable_minus_required():
    cols = pm.fit_columns()
    for row in pm.fit_matrix():
        for col, cell in zip(cols, row.cells):
            usable = get_gpu(col.gpu_id).usable_bytes / GIB
            assert cell.gpu_id == col.gpu_id
            assert cell.headroom_gib == pytest.approx(usable - row.required_gib, abs=1e-9)
            assert cell.fits == (cell.headroom_gib >= 0)


def test_sharding_follows_zero_stages():
    rows = {(r.method, r.sharding): r for r in pm.sharding_rows()}
    p = arch("llama-3.1-70b").total_params
    for i, n in enumerate(pm.GPU_COUNTS):
        # ZeRO-2 also shards the bf16 gradients: per GPU it saves 2P·(1 - 1/n) bytes over ZeRO-1
        saved = (rows[("full", "zero1")].per_gpu_gib[i] - rows[("full", "zero2")].per_gpu_gib[i]) * GIB
        assert saved == pytest.approx(2 * p * (1 - 1 / n), abs=MIB)
    assert rows[("full", "zero3")].per_gpu_gib == rows[("full", "fsdp_full_shard")].per_gpu_gib
    q = rows[("qlora", "fsdp_qlora")].per_gpu_gib
    assert q[0] > q[1] > q[2] and q[0] < rows[("qlora", "none")].single_gpu_gib
    assert all(v >= rows[("lora", "none")].single_gpu_gib for v in rows[("lora", "none")].per_gpu_gib)   # DDP buckets


# == adapter files =======================================================================================================
def test_adapter_sizes_by_hand():
    rows = {(s.target_modules, s.dtype): s for s in pm.adapter_size_rows()}
    al = rows[("all-linear", "float32")]
    i16 = al.ranks.index(16)
    assert al.trainable_params[i16] == LORA8B_R16
    layout = pm.adapter_layout("llama-3.1-8b", 16)
    assert al.bytes[i16] == layout.bytes == 8 + layout.header_bytes + 4 * LORA8B_R16
    bf = rows[("all-linear", "bfloat16")]
    assert bf.bytes[i16] == 8 + pm.adapter_layout("llama-3.1-8b", 16, dtype="bfloat16").header_bytes + 2 * LORA8B_R16
    assert rows[("qv", "float32")].trainable_params[i16] == L * 16 * (2 * H + H + KV) == 6_815_744


def test_adapter_layout_of_llama_1b():
    lay = pm.adapter_layout("llama-3.2-1b", 16)
    assert lay.tensors == 16 * 7 * 2 and lay.header_bytes % 8 == 0 and 0 <= lay.header_padding < 8
    assert lay.first[0].key == "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight"
    assert lay.first[0].shape == (16, 8192) and lay.first[0].begin == 0 and lay.first[0].end == 16 * 8192 * 4
    assert lay.header_start.startswith('{"__metadata__":{"format":"pt"},')
    assert lay.dtypes_in_order == ("F32",)
    mts = pm.adapter_layout("llama-3.2-1b", 16, modules_to_save=("lm_head",))
    assert mts.dtypes_in_order == ("F32", "BF16")
    assert mts.last[0].key == "base_model.model.lm_head.weight" and mts.last[0].shape == (128_256, 2048)
    assert mts.tensor_bytes == lay.tensor_bytes + 2 * 128_256 * 2048


def test_merge_and_serving_by_hand():
    m = next(r for r in pm.merge_rows() if r.preset_id == "llama-3.1-8b")
    assert m.merged_bf16_gib == 2 * LLAMA8B_PARAMS / GIB and m.merged_fp32_gib == 4 * LLAMA8B_PARAMS / GIB
    rows = {s.n: s for s in pm.serving_rows("llama-3.1-8b")}
    adapter, base = 4 * LORA8B_R16, 2 * LLAMA8B_PARAMS
    assert rows[10].adapters_gib == 10 * adapter / GIB == 1.5625
    assert rows[10].total_gib == pytest.approx((base + 10 * adapter) / GIB)
    assert rows[10].merged_copies_gib == pytest.approx(10 * base / GIB)
    assert rows[100].saving_factor == pytest.approx(100 * base / (base + 100 * adapter))
    assert pm.adapter_memory_mib("llama-3.1-8b") == adapter / MIB == 160.0


# == validation ==========================================================================================================
def test_validation_summary_is_consistent_with_its_rows():
    s = pm.validation_summary()
    rows = pm.validation_rows()
    assert len(rows) == s.modelled == s.published_points + s.own_points
    published = [abs(r.error_pct) for r in rows if not r.own]
    assert s.median_abs_error_pct == pytest.approx(statistics.median(abs(r.error_pct) for r in rows))
    assert s.median_abs_error_pct_published == pytest.approx(statistics.median(published))
    assert s.max_abs_error_pct_published == max(published)
    assert len(pm.validation_rows(own=True)) == s.own_points and len(pm.unmodelled_rows()) == s.unmodelled
    for r in rows:
        assert r.error_pct == pytest.approx(100 * (r.estimate_gib - r.measured_gib) / r.measured_gib)
    lo, hi = pm.validation_extent()
    assert lo * pm.EXTENT_MARGIN == pytest.approx(min(min(r.measured_gib, r.estimate_gib) for r in rows))
    assert hi / pm.EXTENT_MARGIN == pytest.approx(max(max(r.measured_gib, r.estimate_gib) for r in rows))
    assert all(u.reason for u in pm.unmodelled_rows())


def test_measurement_file_summary_of_a_small_file():
    data = {"provenance": {"gpu": "G", "gpu_total_memory_bytes": 2 * GIB, "libraries": {"torch": "2"},
                           "dates_utc": ["d"], "notes": ["n"]},
            "points": [{"preset": "a", "steps": 3, "seed": 1, "max_memory_reserved_bytes": 110,
                        "max_memory_allocated_bytes": 100, "nvml_process_used_bytes_end": 3 * MIB,
                        "memory_reserved_end_bytes": MIB},
                       {"preset": "a", "steps": 3, "seed": 1, "max_memory_reserved_bytes": 130,
                        "max_memory_allocated_bytes": 100, "nvml_process_used_bytes_end": 3 * MIB,
                        "memory_reserved_end_bytes": MIB}]}
    m = pm.measurement_file(data, "p.yaml", "x", "note")
    assert (m.points, m.presets, m.steps, m.seeds, m.gpu_total_gib) == (2, ("a",), (3,), (1,), 2.0)
    assert (m.reserved_ratio_min, m.reserved_ratio_median, m.reserved_ratio_max) == pytest.approx((1.1, 1.2, 1.3))
    assert m.outside_allocator_mib == (2.0,) and m.libraries == (("torch", "2"),)


def test_our_measurement_files_and_reserved_ratios():
    files = pm.measurement_files()
    assert files and all(f.gpu == "NVIDIA H200" for f in files)
    assert sum(f.points for f in files) == pm.validation_summary().own_points
    r = pm.reserved_ratios()
    assert 1.0 <= r.min <= r.median <= r.max and r.points == sum(f.points for f in files)
    assert 758.0 in files[0].outside_allocator_mib          # = calc.memory.CUDA_CONTEXT_BYTES
    assert pc.cuda_context_mib() == 758.0 and pc.cuda_workspace_mib() == 64.0


def test_setup_text_states_the_conditions():
    t = pm.setup_text(TrainingSetup(method="qlora", micro_batch=4, seq_len=4096, gradient_checkpointing=True))
    assert t.startswith("qlora, NF4 base, r=8 on all-linear") and "b=4, s=4,096" in t and "checkpointing on" in t


# == macros ==============================================================================================================


@pytest.fixture(scope="module")
def render():
    env = FakeEnv()
    macros.define_env(env)
    for module in (quant_pages, memory_pages):
        for name in module.MACROS:
            assert env.macros[name] is getattr(module, name), f"macro {name} is registered by another module too"
    jinja = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return lambda source: jinja.from_string(source).render(**env.macros)


def test_pd_value_prints_calcs_numbers(render):
    assert render('{{ pd_value("bits_at", "bits", 64, True, fmt="fixed:3") }}') == "4.127"
    assert render('{{ pd_value("bits_at", "bits", 64, False, fmt="fixed:3") }}') == "4.500"
    assert render('{{ pd_value("dq_saving_bits", fmt="fixed:3") }}') == "0.373"
    assert render('{{ pd_value("kbit_prepare", "checkpoint_fp32", "llama-3.1-8b") }}') == "16,384"
    assert render('{{ pd_value("optimizer_rows", "optimizer=paged_adamw_8bit/paged_mib", fmt="fixed:1") }}') == "42.0"
    assert render('{{ pd_value("dequant_transient", "module", "llama-3.1-8b", fmt="code") }}') == "<code>mlp.gate_proj</code>"
    assert render('{{ pd_value("blockwise_example", "values/0/code") }}') == str(pq.blockwise_example().values[0].code)
    assert render('{{ pd_value("EXAMPLE_BLOCKSIZE") }}') == "64"
    assert render('{{ pd_value("method_memory_view", "required_gib", "llama-3.1-8b", "full", optimizer="adamw_fused", '
                  'fmt="fixed:1") }}') == f"{pm.method_memory_view('llama-3.1-8b', 'full', optimizer='adamw_fused').required_gib:.1f}"
    assert render('{{ pd_value("quantization_errors", "double_quant=True/mse_vs_nf4", fmt="fixed:4") }}') == \
        f"{pq.quantization_errors()[1].mse_vs_nf4:.4f}"
    assert render('{{ pd_value("reserved_ratios", "median", fmt="fixed:3") }}') == f"{pm.reserved_ratios().median:.3f}"
    assert render('{{ pd_value("validation_summary", "modelled") }}') == f"{pm.validation_summary().modelled:,}"
    assert render('{{ pd_value("model_name", "", "llama-3.1-70b") }}') == "Llama 3.1 70B"
    assert render('{{ pd_value("double_quant_saving", "saving_gib", "llama-3.1-70b", fmt="sign:2") }}').startswith("+")
    with pytest.raises(KeyError):
        render('{{ pd_value("get_preset", "name") }}')
    with pytest.raises(ValueError):
        render('{{ pd_value("EXAMPLE_SEED", fmt="nope:1") }}')


def test_nf4_tables(render):
    out = render("{{ nf4_level_table() }}")
    assert out.count("\n| ") == 17          # the rule line and the 16 levels
    assert "| 0 | <code>0000</code> | negative | 0.9677083 | -1.8481 | -1.0000000 |" in out
    assert "| 7 | <code>0111</code> | zero | — | 0.0000 | 0.0000000 |" in out
    out = render("{{ code_book_table() }}")
    assert "| NF4 | 16 | 1 |" in out and "| FP4 | 15 | 2 |" in out
    out = render("{{ block_example_table() }}")
    ex = pq.blockwise_example()
    assert f"| {ex.absmax_index} (absmax) |" in out
    assert f"| 0 | {ex.values[0].x:,.4f} | {ex.values[0].scaled:,.4f} | {ex.values[0].code} |" in out


def test_weight_storage_tabs(render):
    out = render("{{ weight_storage_tabs(4096, 4096) }}")
    assert out.count('=== "') == 3
    assert "**8,655,940**" in out and "**9,437,248**" in out and "**33,554,432**" in out
    assert "    | <code>quant_state.state2.code</code> | <code>float32</code> | 256 | 1,024 |" in out


def test_qlora_tables(render):
    out = render('{{ qlora_module_table("llama-3.1-8b", 4) }}')
    assert all(line.startswith("    |") for line in out.splitlines())
    assert "| <code>mlp.down_proj</code> | linear | 32 | 1,879,048,192 | nf4 |" in out
    assert "| <code>lm_head</code> | lm\\_head | 1 | 525,336,576 | bf16 | 1,002.0 |" in out
    out = render('{{ kbit_prepare_table("llama-3.1-8b") }}')
    assert "| Checkpoint kept per token and layer (bytes) | 8,192 | 16,384 |  |" in out
    out = render('{{ optimizer_table("llama-3.1-8b") }}')
    assert "| <code>paged_adamw_32bit</code> | bitsandbytes paged AdamW 32-bit | 152.0 | 168.0 |" in out


def test_memory_tables(render):
    out = render('{{ precision_table("llama-3.1-8b") }}')
    assert "| fp32 | 29.92 | 32.00 | 200.0 % |" in out
    out = render('{{ activation_table("llama-3.1-8b") }}')
    assert "| LoRA | 217,448 | 8,192 |" in out and "2,048 tokens" in out
    out = render('{{ loss_table("llama-3.1-8b") }}')
    assert "**1,539,080**" in out and "| Saved by log-softmax (fp32) and the int64 labels | 513,032 |" in out
    out = render('{{ phase_table("llama-3.1-8b", "qlora") }}')
    assert out.count("**peak**") == 1
    out = render("{{ memory_conditions_text() }}")
    assert "micro-batch 1" in out and "&lt;" not in out


def test_adapter_tables(render):
    out = render('{{ adapter_layout_table("llama-3.2-1b", 16) }}')
    assert "| <code>base_model.model.model.layers.0.mlp.down_proj.lora_A.weight</code> | <code>F32</code> | 16 × 8192 |" in out
    out = render('{{ adapter_layout_table("llama-3.2-1b", 16, "all-linear", ["lm_head"]) }}')
    assert "| <code>base_model.model.lm_head.weight</code> | <code>BF16</code> | 128256 × 2048 |" in out
    out = render('{{ adapter_header_excerpt("llama-3.2-1b", 16) }}')
    assert out.startswith('```text\n{"__metadata__":{"format":"pt"},"base_model.model.model.layers.0.') and out.endswith("```\n")
    out = render('{{ serving_table("llama-3.1-8b") }}')
    row = next(line for line in out.splitlines() if line.startswith("| 10 |"))
    s = next(x for x in pm.serving_rows("llama-3.1-8b") if x.n == 10)
    assert row == (f"| 10 | {s.base_gib:,.2f} | {s.adapters_gib:,.2f} | {s.total_gib:,.2f} | "
                   f"{s.merged_copies_gib:,.1f} | {s.saving_factor:,.1f}× |")


def test_validation_macros(render):
    out = render("{{ validation_summary_table() }}")
    s = pm.validation_summary()
    assert f"| **All points** | **{s.modelled}** | **{s.median_abs_error_pct:.2f} %** |" in out
    out = render("{{ measurement_provenance() }}")
    for f in pm.measurement_files():
        assert f.path in out and f.driver_version in out and f"{f.points} points" in out
    assert '??? note "Settings recorded in' in out and "&lt;id&gt;" in out      # notes are escaped data
    out = render("{{ unmodelled_table() }}")
    assert out.count("\n| <code>") == len(pm.unmodelled_rows())


MY_ROT_IDS = (
    "rot-bits-per-parameter", "rot-4bit-quantization-error", "rot-qlora-weight-storage",
    "rot-bytes-per-trainable-parameter", "rot-vram-by-model-size", "rot-gpu-fit-qlora", "rot-multi-gpu-llama-3-1-70b",
    "rot-adapter-size-by-targets", "rot-merged-model-size", "rot-validation-published", "rot-validation-h200",
)


@pytest.mark.parametrize("table_id", MY_ROT_IDS)
def test_rot_tables_render_with_anchor_conditions_rows_and_exports(render, table_id):
    out = render(f'{{{{ rot_table("{table_id}") }}}}')
    assert f"{{ #{table_id} }}" in out and "*Conditions:*" in out
    t = rot.table_for(table_id)
    assert t.rows and t.source.startswith("calc.pages.")
    assert all(len(row) == len(t.columns) for row in t.rows)
    assert rot.to_csv(t).count("\n") == len(t.rows) + 1 and f'"id": "{table_id}"' in rot.to_json(t)
    assert re.search(r"GiB|MiB|bits|bytes|Bytes|parameters|%", t.conditions + " ".join(c.title for c in t.columns))


def _row(out: str, start: str) -> list[str]:
    line = next(line for line in out.splitlines() if line.startswith(start))
    return [c.strip() for c in line.strip("|").split("|")]


def test_rot_numbers_equal_calc(render):
    out = render('{{ rot_table("rot-bits-per-parameter") }}')
    assert "| NF4 / FP4 | 64 | yes | 4.1270 | 0.1270 | 0.5159 | 25.8 % |" in out
    assert "| NF4 / FP4 | 64 | no | 4.5000 | 0.5000 | 0.5625 | 28.1 % |" in out
    out = render('{{ rot_table("rot-vram-by-model-size") }}')
    v = next(r for r in pm.vram_rows() if r.preset_id == "llama-3.1-8b")
    assert _row(out, "| Llama 3.1 8B |")[1:5] == [f"{LLAMA8B_PARAMS:,}", f"{v.full_gib:,.1f}", f"{v.lora_gib:,.1f}",
                                                    f"{v.qlora_gib:,.1f}"]
    out = render('{{ rot_table("rot-gpu-fit-qlora") }}')
    f = next(r for r in pm.fit_matrix() if r.preset_id == "llama-3.1-70b")
    assert _row(out, "| Llama 3.1 70B |")[2:] == [f"{c.headroom_gib:,.1f}" for c in f.cells]
    out = render('{{ rot_table("rot-multi-gpu-llama-3-1-70b") }}')
    s = next(r for r in pm.sharding_rows() if r.sharding == "fsdp_qlora")
    assert _row(out, "| QLoRA | FSDP \\+ QLoRA")[2:] == [f"{v:,.1f}" for v in (s.single_gpu_gib, *s.per_gpu_gib)]
    out = render('{{ rot_table("rot-4bit-quantization-error") }}')
    e = pq.quantization_errors()[0]
    assert _row(out, "| NF4 | no |")[2] == f"{e.mse:,.6f}"
    out = render('{{ rot_table("rot-validation-published") }}')
    assert out.count("\n| <code>") == pm.validation_summary().published_points
    out = render('{{ rot_table("rot-adapter-size-by-targets") }}')
    a = next(r for r in pm.adapter_size_rows() if r.target_modules == "all-linear" and r.dtype == "float32")
    assert _row(out, "| all-linear | float32 |")[2:] == [f"{m:,.1f}" for m in a.mib]


CHARTS = ("chart_nf4_levels", "chart_qlora_methods", "chart_memory_breakdown", "chart_adapter_size", "chart_validation")


@pytest.mark.parametrize("name", CHARTS)
def test_every_chart_has_caption_aria_label_and_a_data_table(render, name):
    parts = chart_parts(render(f"{{{{ {name}() }}}}"))
    assert parts.static.find("svg") is not None
    assert parts.details.find("summary").get_text() == "Data table"


def test_chart_data_equals_calc(render):
    out = render("{{ chart_qlora_methods() }}")
    p = next(x for x in pq.method_points() if x.preset_id == "llama-3.1-8b" and x.method == "qlora")
    assert f"| Llama 3.1 8B | QLoRA | {p.peak_gib:,.2f} | {p.context_gib:,.2f} | {p.required_gib:,.2f} |" in out
    out = render("{{ chart_nf4_levels() }}")
    assert "| NF4 | 1 | <code>0001</code> | -0.6962 |" in out
    out = render("{{ chart_validation() }}")
    assert out.count("\n| <code>") == pm.validation_summary().modelled
    out = render("{{ chart_memory_breakdown() }}")
    b = pm.breakdown("llama-3.1-8b", "qlora")
    assert f"| QLoRA, checkpointing on | **Required (peak + CUDA context)** | **{b.required_gib:,.3f}** |" in out
    out = render("{{ chart_adapter_size() }}")
    assert f"| <code>all-linear</code> | <code>float32</code> | 16 | {LORA8B_R16:,} | 160.1 |" in out


def test_chart_ids_are_unique():
    ids = []
    for name in CHARTS:
        out = getattr(quant_pages, name, None) or getattr(memory_pages, name)
        ids.append(re.search(r'<figure class="lh-chart" id="([^"]+)"', out()).group(1))
    assert len(set(ids)) == len(ids)


def test_every_macro_of_the_two_modules_is_exercised_by_a_test():
    source = Path(__file__).read_text(encoding="utf-8")
    names = quant_pages.MACROS + memory_pages.MACROS
    missing = [n for n in names if f"{{{{ {n}(" not in source and f'"{n}"' not in source]
    assert not missing, f"untested macros: {missing}"


# == the pages ===========================================================================================================
@pytest.mark.parametrize("page", PAGES)
def test_pages_open_with_a_title_and_a_summary_paragraph(page):
    lines = (ROOT / "docs" / page).read_text(encoding="utf-8").splitlines()
    start = 1 if lines[0].startswith("{%") else 0
    assert lines[start].startswith("# ")
    summary = lines[start + 2:lines.index("", start + 2)]
    assert len(summary) >= 3 and not summary[0].startswith(("#", "{{", "!!!", "===", "|"))


@pytest.mark.parametrize("page", PAGES)
def test_pages_render_under_strict_jinja(render, page):
    out = render((ROOT / "docs" / page).read_text(encoding="utf-8"))
    assert "{{" not in out and "lh-chart" in out


def test_pages_link_to_each_other():
    src = {p: (ROOT / "docs" / p).read_text(encoding="utf-8") for p in PAGES}
    assert "(nf4.md" in src["qlora.md"] and "(validation.md" in src["memory.md"] and "(memory.md" in src["validation.md"]
    assert "(qlora.md" in src["nf4.md"] and "(qlora.md" in src["memory.md"]
