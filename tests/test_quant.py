"""calc.quant without torch: code books, blockwise 4-bit rounding, double quantization, storage bytes.

Independent sources for the expected values:
* the NF4 table published in bitsandbytes' ``functional.get_4bit_type("nf4")`` (QLoRA Appendix E),
  written here as literals;
* the QLoRA paper (arXiv 2305.14314) §3: 4.5 → 4.127 bits per parameter, "a reduction of 0.373 bits",
  §1: "approximately 3 GB for a 65B model";
* hand derivations from the bitsandbytes source (FP4 e2m1 bit layout, dynamic map extremes, packing
  order, the midpoint tie rule, byte counts of each ``QuantState`` tensor), done in the tests below;
* CUDA allocator bytes measured once with ``torch.cuda.memory_allocated()`` around
  ``bnb.nn.Params4bit(...).cuda()`` / ``Int8Params(...).cuda()`` on an H200 (bitsandbytes 0.50.2,
  torch 2.11.0+cu130, 2026-11-23).
tests/verify/test_bnb.py compares the same functions with bitsandbytes itself.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from calc import quant as Q
from calc.architecture import Architecture
from calc.cli import main
from calc.errors import CalcError

# bitsandbytes/functional.py get_4bit_type("nf4") (the QLoRA NF4 values), copied from that source.
PUBLISHED_NF4 = [
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]

LLAMA3_8B = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
             "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
             "tie_word_embeddings": False}


# -- code books ------------------------------------------------------------------------------------------
def test_nf4_shape_and_structure():
    code = Q.nf4_code()
    assert code.dtype == np.float32 and code.shape == (16,)
    assert np.all(np.diff(code) > 0)
    assert int(np.sum(code == 0)) == 1 and code[7] == 0
    assert code[0] == -1.0 and code[15] == 1.0
    assert int(np.sum(code > 0)) == 8 and int(np.sum(code < 0)) == 7  # QLoRA §3: 2^{k-1}+1 positive side


def test_nf4_equals_published_table():
    code = Q.nf4_code()
    assert np.max(np.abs(code.astype(np.float64) - np.array(PUBLISHED_NF4))) < 1e-7
    # the published values are float32 numbers: the construction reproduces them bit for bit
    assert np.array_equal(code, np.array(PUBLISHED_NF4, dtype=np.float32))


def test_nf4_levels_are_normal_quantiles():
    # Positive level k (from the top) is Φ⁻¹ of the k-th of 8 equal probability steps from the offset
    # to 1/2, divided by Φ⁻¹(offset) (≈ 1.848, memory-model §2.2). float32 inputs explain the 1e-6 slack.
    nd = NormalDist()
    top = nd.inv_cdf(Q.NF4_OFFSET)
    assert abs(top - 1.8481) < 1e-4
    code = Q.nf4_code()
    for k in range(8):
        p = Q.NF4_OFFSET - k * (Q.NF4_OFFSET - 0.5) / 8
        assert abs(code[15 - k] - nd.inv_cdf(p) / top) < 1e-6
    for k in range(7):
        p = Q.NF4_OFFSET - k * (Q.NF4_OFFSET - 0.5) / 7
        assert abs(code[k] + nd.inv_cdf(p) / top) < 1e-6


def test_fp4_is_e2m1_in_bit_pattern_order():
    # bitsandbytes FP4: bit 3 sign, bits 2..1 exponent e, bit 0 mantissa m; e>=1: 2^(4-e)·(1 + m/2),
    # e=0: subnormal m·0.0625; normalised by the largest magnitude, 12.
    expected = []
    for c in range(16):
        sign = -1.0 if c & 8 else 1.0
        e, m = (c >> 1) & 3, c & 1
        mag = m * 0.0625 if e == 0 else 2.0 ** (4 - e) * (1 + m / 2)
        expected.append(sign * mag / 12.0)
    code = Q.fp4_code()
    assert code.dtype == np.float32
    assert np.allclose(code, expected, atol=1e-7, rtol=0)
    assert code[3] == 1.0 and code[11] == -1.0


def test_int4_is_symmetric_sevenths():
    code = Q.int4_code()
    assert sorted(set(code.tolist())) == sorted({np.float32(k / 7) for k in range(-7, 8)})
    assert code[0] == 1.0 and code[15] == -1.0


def test_dynamic_map_extremes_by_hand():
    # create_dynamic_map: the top decade (i=6, scale 1) uses the 64 midpoints of linspace(0.1, 1, 65);
    # its largest is (0.9859375 + 1)/2. The smallest positive is 1e-6 · (0.1 + 1)/2 (i=0: two points).
    d = Q.dynamic_map()
    assert d.shape == (256,) and d.dtype == np.float32 and np.all(np.diff(d) >= 0)
    assert d[-1] == 1.0 and d[0] == pytest.approx(-(0.9859375 + 1) / 2, abs=1e-7)
    assert int(np.sum(d == 0)) == 1
    assert int(np.sum(d > 0)) == 128 and int(np.sum(d < 0)) == 127
    assert d[d > 0].min() == pytest.approx(1e-6 * 0.55, rel=1e-6)


def test_max_gap():
    assert Q.max_gap(Q.int4_code()) == pytest.approx(1 / 7, abs=1e-7)
    assert Q.max_gap(Q.nf4_code()) == pytest.approx(1 - 0.6961928009986877, abs=1e-7)  # between -1 and the next level


def test_code_by_name_rejects_unknown():
    with pytest.raises(CalcError) as err:
        Q.code_by_name("nf3")
    assert err.value.field == "code"


# -- rounding and packing --------------------------------------------------------------------------------
def test_packing_puts_first_element_in_high_nibble():
    # backends/default/ops.py: packed = (q[::2] << 4) | q[1::2]. With absmax 1: 1.0 → code 15, -1.0 → 0.
    packed, absmax = Q.quantize_blockwise(np.array([1.0, -1.0], np.float32), Q.nf4_code())
    assert packed.tolist() == [0xF0] and absmax.tolist() == [1.0]


def test_odd_count_padded_with_the_code_of_zero():
    # the kernel pads the scaled values with 0.0, which rounds to NF4 code 7 (0b0111)
    packed, _ = Q.quantize_blockwise(np.array([1.0, -1.0, 1.0], np.float32), Q.nf4_code())
    assert packed.tolist() == [0xF0, 0xF7]


def test_midpoint_tie_goes_to_lower_level():
    # torch.bucketize(right=False) on float32 midpoints: a value equal to a midpoint takes the lower code
    c = np.array(PUBLISHED_NF4, np.float32)
    mid = np.float32((c[14] + c[15]) / np.float32(2))
    nxt = np.nextafter(mid, np.float32(2))
    packed, _ = Q.quantize_blockwise(np.array([1.0, mid, 1.0, nxt], np.float32), c)
    assert packed.tolist() == [0xFE, 0xFF]


def test_fp4_codes_near_zero_follow_the_cpu_sort_order():
    # FP4 has two zeros (codes 0 and 8). Sorted stably, code 0 comes first: values in (-0.0026, 0] get
    # code 0, values in (0, 0.0026] get code 8 (both decode to 0.0).
    packed, _ = Q.quantize_blockwise(np.array([1.0, 0.001, -0.001, 0.0], np.float32), Q.fp4_code())
    assert packed.tolist() == [0x38, 0x00]


def test_partial_tail_block_and_zero_blocks():
    x = np.zeros(64 + 3, np.float32)
    packed, absmax = Q.quantize_blockwise(x, "nf4", 64)
    assert absmax[0] == 0.0
    assert absmax[1] == np.float32(1e-38)  # the tail block's absmax is clamped before it is stored
    assert packed.size == 34
    assert np.all(Q.dequantize_blockwise(packed, absmax, "nf4", 64, x.size) == 0)


def test_pack_unpack_round_trip():
    q = np.arange(16, dtype=np.uint8).repeat(3)[:47]
    assert np.array_equal(Q.unpack_4bit(Q.pack_4bit(q), q.size), q)
    with pytest.raises(CalcError):
        Q.pack_4bit(np.array([16], np.uint8))


@settings(max_examples=150, deadline=None)
@given(
    x=hnp.arrays(np.float32, st.integers(1, 700),
                 elements=st.floats(-1e4, 1e4, width=32, allow_subnormal=False)),
    blocksize=st.sampled_from([32, 64, 128]),
    name=st.sampled_from(["nf4", "fp4", "int4"]),
)
def test_round_trip_error_within_half_the_largest_gap(x, blocksize, name):
    code = Q.code_by_name(name)
    packed, absmax = Q.quantize_blockwise(x, code, blocksize)
    assert packed.size == (x.size + 1) // 2 and absmax.size == -(-x.size // blocksize)
    back = Q.dequantize_blockwise(packed, absmax, code, blocksize, x.size)
    scale = np.repeat(absmax.astype(np.float64), blocksize)[: x.size]
    bound = scale * (Q.max_gap(code) / 2 + 1e-6)
    assert np.all(np.abs(back.astype(np.float64) - x.astype(np.float64)) <= bound)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, st.integers(1, 3000), elements=st.floats(0, 50, width=32, allow_subnormal=False)))
# found by CI: FLT_MIN minus the mean offset is subnormal and 1/absmax overflowed to inf
@example(np.array([np.finfo(np.float32).tiny] + [0.0] * 300, np.float32))
def test_double_quantization_error_bound(absmax):
    dq = Q.double_quantize(absmax)
    assert dq.codes.size == absmax.size and dq.absmax2.size == -(-absmax.size // 256)
    back = Q.double_dequantize(dq).astype(np.float64)
    # nearest of 256 dynamic levels of a 65,536-point grid: half the widest gap plus one grid step
    bound = np.repeat(dq.absmax2.astype(np.float64), 256)[: absmax.size] * (Q.max_gap(dq.code) / 2 + 2 / 65535)
    assert np.all(np.abs(back - absmax) <= bound + 1e-5 * (1 + np.abs(absmax)))


def test_quantize_4bit_double_quant_round_trip():
    x = Q.gaussian_weights(64 * 300 + 5, seed=3)
    plain = Q.quantize_4bit(x, "nf4", 64, double_quant=False)
    dq = Q.quantize_4bit(x, "nf4", 64, double_quant=True)
    assert np.array_equal(plain.packed, dq.packed)  # the codes do not depend on how the scales are stored
    assert dq.double is not None and plain.absmax is not None
    assert dq.double.offset == pytest.approx(float(np.mean(plain.absmax.astype(np.float64))), rel=1e-6)
    err_plain = np.abs(Q.dequantize_4bit(plain) - x).mean()
    err_dq = np.abs(Q.dequantize_4bit(dq) - x).mean()
    assert err_dq < err_plain * 1.05  # QLoRA §3: double quantization costs (almost) no accuracy


def test_bad_samples_and_blocksizes():
    with pytest.raises(CalcError) as err:
        Q.quantize_blockwise(np.array([1.0, np.nan]), "nf4")
    assert err.value.field == "x"
    with pytest.raises(CalcError) as err:
        Q.quantize_blockwise(np.ones(8), "nf4", blocksize=48)
    assert err.value.field == "blocksize"
    with pytest.raises(CalcError):
        Q.quantize_blockwise(np.ones(8), np.linspace(-1, 1, 15))
    with pytest.raises(CalcError) as err:
        Q.quantize_4bit(np.ones(8), "int8")
    assert err.value.field == "quant_type"


# -- error measurement -----------------------------------------------------------------------------------
def test_gaussian_weights_are_reproducible():
    a, b = Q.gaussian_weights(1000, seed=7), Q.gaussian_weights(1000, seed=7)
    assert a.dtype == np.float32 and np.array_equal(a, b)
    assert not np.array_equal(a, Q.gaussian_weights(1000, seed=8))
    with pytest.raises(CalcError):
        Q.gaussian_weights(0)


def test_nf4_beats_fp4_and_int4_on_gaussian_weights():
    # QLoRA §3/§5: NF4 is information-theoretically tuned to normal weights and beats FP4.
    w = Q.gaussian_weights(1 << 16, seed=0)
    nf4, fp4, int4 = (Q.quantization_error(n, w, 64) for n in ("nf4", "fp4", "int4"))
    assert nf4.mse < fp4.mse and nf4.mse < int4.mse
    assert nf4.numel == 1 << 16 and nf4.rmse == pytest.approx(math.sqrt(nf4.mse))
    assert 0 < nf4.mae <= nf4.max_abs


# -- storage bytes ---------------------------------------------------------------------------------------
def test_4096_square_nf4_bytes_by_hand():
    n = 4096 * 4096
    blocks = n // 64                      # 262,144 blocks of 64
    packed = n // 2                       # 8,388,608 bytes, two codes per byte
    code = 16 * 4                         # QuantState.code: 16 fp32
    assert Q.tensor_storage_bytes(n, "nf4", double_quant=False) == packed + 4 * blocks + code == 9_437_248
    dq = packed + blocks + 4 * (blocks // 256) + 4 + 256 * 4 + code  # uint8 absmax, absmax2, offset, state2.code
    assert Q.tensor_storage_bytes(n, "nf4", double_quant=True) == dq == 8_655_940
    assert Q.tensor_storage_bytes(n, "fp4", double_quant=True) == dq


def test_odd_sizes_by_hand():
    n = 45 * 77  # 3,465 elements: 1,733 packed bytes, 55 blocks (the last one partial)
    assert Q.tensor_storage_bytes(n, "nf4", double_quant=False) == 1733 + 55 * 4 + 64
    assert Q.tensor_storage_bytes(n, "nf4", double_quant=True) == 1733 + 55 + 4 + 4 + 1024 + 64
    assert Q.tensor_storage_bytes(n, "nf4", double_quant=False, blocksize=4096) == 1733 + 4 + 64


def test_int8_and_dense_bytes():
    assert Q.tensor_storage_bytes(4096 * 14336, "int8", rows=14336) == 4096 * 14336 + 4 * 14336
    assert Q.tensor_storage_bytes(10, "bf16") == 20
    assert Q.tensor_storage_bytes(10, "fp16") == 20
    assert Q.tensor_storage_bytes(10, "fp32") == 40
    names = [t.name for t in Q.storage_tensors(4096, "int8", rows=64)]
    assert names == ["weight (CB)", "SCB"]


@pytest.mark.parametrize("numel, precision, dq, rows, measured", [
    (4096 * 4096, "nf4", False, None, 9_437_696),
    (4096 * 4096, "fp4", True, None, 8_656_896),
    (14336 * 4096, "nf4", True, None, 30_294_016),
    (14336 * 4096, "nf4", False, None, 33_030_656),
    (1000 * 37, "nf4", True, None, 22_528),
    (1000 * 37, "nf4", False, None, 22_016),
    (4096 * 11008, "nf4", True, None, 23_262_208),
    (4096 * 11008, "nf4", False, None, 25_362_944),
    (1000 * 37, "int8", True, 1000, 41_472),
    (4096 * 11008, "int8", True, 4096, 45_105_152),
])
def test_cuda_allocated_bytes_match_h200_measurement(numel, precision, dq, rows, measured):
    # torch.cuda.memory_allocated() delta around Params4bit(...).cuda() / Int8Params(...).cuda(), H200,
    # bitsandbytes 0.50.2, torch 2.11.0+cu130: every tensor is rounded up to 512 bytes by the allocator.
    tensors = Q.storage_tensors(numel, precision, rows=rows, double_quant=dq)
    assert Q.allocated_bytes(tensors) == measured
    assert Q.allocated_bytes(tensors, granularity=1) == Q.tensor_storage_bytes(numel, precision, rows=rows,
                                                                                double_quant=dq)


def test_storage_input_errors():
    with pytest.raises(CalcError) as err:
        Q.tensor_storage_bytes(100, "int4")
    assert err.value.field == "precision"
    with pytest.raises(CalcError) as err:
        Q.tensor_storage_bytes(100, "int8")
    assert err.value.field == "rows"
    with pytest.raises(CalcError) as err:
        Q.tensor_storage_bytes(100, "int8", rows=7)
    assert err.value.field == "rows"
    with pytest.raises(CalcError) as err:
        Q.tensor_storage_bytes(0, "nf4")
    assert err.value.field == "numel"
    with pytest.raises(CalcError) as err:
        Q.tensor_storage_bytes(True, "nf4")
    assert err.value.field == "numel"
    with pytest.raises(CalcError) as err:
        Q.tensor_storage_bytes(100, "nf4", blocksize=100)
    assert err.value.field == "blocksize"


# -- bits per parameter ----------------------------------------------------------------------------------
def test_bits_per_parameter_match_the_paper():
    # QLoRA §3: "from 32/64 = 0.5 bits, to 8/64 + 32/(64·256) = 0.127 bits, a reduction of 0.373 bits"
    plain = Q.bits_per_parameter("nf4", double_quant=False)
    dq = Q.bits_per_parameter("nf4", double_quant=True)
    assert plain == 4.5
    assert abs(dq - 4.127) < 5e-4
    assert abs((plain - dq) - 0.373) < 5e-4
    # §1: double quantization saves "approximately 3 GB for a 65B model"
    assert abs(65e9 * (plain - dq) / 8 / 1e9 - 3.0) < 0.1
    assert Q.bits_per_parameter("bf16") == 16 and Q.bits_per_parameter("fp32") == 32
    assert Q.bits_per_parameter("int8") == 8 and Q.bits_per_parameter("int8", in_features=4096) == 8 + 32 / 4096
    assert Q.bits_per_parameter("fp4", double_quant=False, blocksize=128) == 4.25


def test_bits_per_parameter_is_the_large_tensor_limit():
    n = 8192 * 28672
    assert Q.tensor_storage_bytes(n, "nf4") * 8 / n == pytest.approx(Q.bits_per_parameter("nf4"), rel=1e-5)


# -- whole models ----------------------------------------------------------------------------------------
def _hand_nf4(n: int, dq: bool) -> int:
    blocks = math.ceil(n / 64)
    return math.ceil(n / 2) + 64 + (blocks + 4 + 4 * math.ceil(blocks / 256) + 1024 if dq else 4 * blocks)


def test_llama3_8b_nf4_by_hand():
    arch = Architecture.from_hf_config(LLAMA3_8B)
    h, kv, inter, layers, vocab = 4096, 1024, 14336, 32, 128256
    shapes = [(h, h), (h, kv), (h, kv), (h, h), (h, inter), (h, inter), (inter, h)]
    for dq in (True, False):
        wb = Q.model_weight_bytes(arch, "nf4", double_quant=dq)
        quantized = layers * sum(_hand_nf4(i * o, dq) for i, o in shapes)
        unquantized = 2 * (2 * vocab * h + (2 * layers + 1) * h)  # embed + lm_head + norms, bf16
        assert wb.quantized_bytes == quantized
        assert wb.unquantized_bytes == unquantized
        assert wb.total_bytes == quantized + unquantized
    wb = Q.model_weight_bytes(arch, "nf4")
    assert wb.quantized_params == layers * sum(i * o for i, o in shapes)
    assert {m.name: m.storage for m in wb.modules}["lm_head"] == "bf16"
    assert wb.total_bytes == Q.model_weight_bytes(arch, "fp4").total_bytes


def test_dense_precisions_store_everything():
    arch = Architecture.from_hf_config(LLAMA3_8B)
    assert arch.total_params == 8_030_261_248
    assert Q.model_weight_bytes(arch, "bf16").total_bytes == 2 * 8_030_261_248
    assert Q.model_weight_bytes(arch, "fp32").total_bytes == 4 * 8_030_261_248
    assert Q.model_weight_bytes(arch, "fp16").quantized_bytes == 0


def test_int8_model_bytes_by_hand():
    arch = Architecture.from_hf_config(LLAMA3_8B)
    wb = Q.model_weight_bytes(arch, "int8")
    per_layer = sum(i * o + 4 * o for i, o in [(4096, 4096), (4096, 1024), (4096, 1024), (4096, 4096),
                                               (4096, 14336), (4096, 14336), (14336, 4096)])
    assert wb.quantized_bytes == 32 * per_layer
    assert wb.unquantized_bytes == 2 * (2 * 128256 * 4096 + 65 * 4096)


def test_fp32_load_dtype_for_unquantized_parts():
    arch = Architecture.from_hf_config(LLAMA3_8B)
    bf16 = Q.model_weight_bytes(arch, "nf4", dtype="bf16")
    fp32 = Q.model_weight_bytes(arch, "nf4", dtype="fp32")
    assert fp32.quantized_bytes == bf16.quantized_bytes
    assert fp32.unquantized_bytes == 2 * bf16.unquantized_bytes
    with pytest.raises(CalcError) as err:
        Q.model_weight_bytes(arch, "nf4", dtype="int8")
    assert err.value.field == "dtype"


def test_moe_experts_and_router_stay_unquantized():
    cfg = {"model_type": "mixtral", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
           "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100, "num_local_experts": 4}
    arch = Architecture.from_hf_config(cfg)
    wb = Q.model_weight_bytes(arch, "nf4")
    kinds = {m.name: (m.kind, m.storage) for m in wb.modules}
    assert kinds["mlp.experts.gate_up_proj"] == ("experts", "bf16")
    assert kinds["mlp.experts.down_proj"] == ("experts", "bf16")
    assert kinds["mlp.gate"] == ("router", "bf16")
    experts = [m for m in wb.modules if m.kind == "experts"]
    assert sum(m.weight_bytes for m in experts) == 2 * 2 * 4 * (64 * 192 + 96 * 64)
    attention = [m for m in wb.modules if m.name.startswith("self_attn")]
    assert all(m.storage == "nf4" for m in attention)


def test_qwen2_moe_shared_expert_gate_is_quantized():
    cfg = {"model_type": "qwen2_moe", "hidden_size": 64, "intermediate_size": 128, "moe_intermediate_size": 32,
           "shared_expert_intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
           "num_key_value_heads": 2, "vocab_size": 100, "num_experts": 4, "num_experts_per_tok": 2}
    wb = Q.model_weight_bytes(Architecture.from_hf_config(cfg), "nf4", double_quant=False)
    gate = next(m for m in wb.modules if m.name == "mlp.shared_expert_gate")
    assert gate.storage == "nf4" and gate.weight_bytes == 2 * (32 + 4 + 64)  # Linear(64, 1): 64 codes, 1 block
    q = next(m for m in wb.modules if m.name == "self_attn.q_proj")
    assert q.bias_bytes == 2 * 2 * 64  # the bias stays bf16


def test_falcon_linears_are_not_quantized():
    cfg = {"model_type": "falcon", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
           "vocab_size": 100, "new_decoder_architecture": True, "num_kv_heads": 2}
    arch = Architecture.from_hf_config(cfg)
    for precision in ("nf4", "int8"):
        wb = Q.model_weight_bytes(arch, precision)
        assert wb.quantized_bytes == 0
        assert wb.total_bytes == 2 * arch.total_params


def test_gpt2_conv1d_quantized_and_tied_head_counted_once():
    cfg = {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 100, "n_positions": 32}
    arch = Architecture.from_hf_config(cfg)
    wb = Q.model_weight_bytes(arch, "nf4")
    assert all(m.storage == "nf4" for m in wb.modules if m.kind == "conv1d")
    assert "lm_head" not in {m.kind for m in wb.modules}
    assert Q.model_weight_bytes(arch, "bf16").total_bytes == 2 * arch.total_params


# -- CLI -------------------------------------------------------------------------------------------------
def test_cli_json(capsys):
    import json

    assert main(["nf4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == PUBLISHED_NF4


def test_cli_table(capsys):
    assert main(["nf4", "--code", "fp4"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = [line for line in out if line.startswith(tuple("0123456789"))]
    assert len(rows) == 16
    assert rows[3].split() == ["3", "0b0011", "1.0"]
    assert main(["nf4", "--code", "int3"]) == 2


def test_8bit_quantization_of_a_subnormal_block_keeps_its_signs_and_zeros():
    # 1/1e-40 is inf in float32; the block must still map to the extreme levels and exact zero
    x = np.array([1e-40, 0.0, -1e-40, 5e-41], np.float32)
    codes, absmax = Q.quantize_blockwise_8bit(x)
    code = Q.dynamic_map()
    assert absmax[0] == np.float32(1e-40)
    assert code[codes[0]] == 1.0 and code[codes[2]] == code.min() and abs(code[codes[1]]) < 1e-4  # the kernel maps 0 via its 65,536-point grid
    assert abs(code[codes[3]] - 0.5) < 0.01
