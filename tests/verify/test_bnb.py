"""calc.quant against bitsandbytes 0.50.2 itself (CPU), and against what transformers 5.23 loads.

Independent source: bitsandbytes produces every expected value here — its code tables, its packed
4-bit bytes and absmax (``functional.quantize_4bit`` on CPU runs ``backends/default/ops.py``; the
nested 8-bit absmax runs ``libbitsandbytes_cpu.so``), the tensors ``Params4bit``/``Int8Params`` keep,
and the models ``from_pretrained(quantization_config=BitsAndBytesConfig(...))`` builds on CPU.

Everything runs on CPU. What is *not* covered here because it needs CUDA: the CUDA kernels' own
rounding and the caching allocator's 512-byte rounding. Those were measured once on an H200
(tests/test_quant.py ``test_cuda_allocated_bytes_match_h200_measurement``; NF4 codes were identical
to this CPU path there, FP4 differed only in the sign bit of values that round to zero).
"""

from __future__ import annotations

import numpy as np
import pytest

from calc import quant as Q
from calc.architecture import Architecture
from tests.verify.conftest import require

torch = require("torch")
bnb = require("bitsandbytes")
transformers = require("transformers")
F = bnb.functional
torch._dynamo.config.disable = True  # bnb's CPU dequantize fallback is torch.compile'd: eager is faster here


def _f32(t) -> np.ndarray:
    return t.detach().float().cpu().numpy().reshape(-1)


def _u8(t) -> np.ndarray:
    return t.detach().cpu().view(torch.uint8).numpy().reshape(-1)


# -- code tables -----------------------------------------------------------------------------------------
def test_nf4_code_equals_bitsandbytes():
    ref = _f32(F.get_4bit_type("nf4", device="cpu"))
    mine = Q.nf4_code()
    assert np.max(np.abs(mine.astype(np.float64) - ref)) < 1e-7
    assert np.array_equal(mine, ref)  # bit for bit


def test_fp4_code_equals_bitsandbytes():
    assert np.array_equal(Q.fp4_code(), _f32(F.get_4bit_type("fp4", device="cpu")))


def test_dynamic_map_equals_bitsandbytes():
    ref = _f32(F.create_dynamic_map())
    mine = Q.dynamic_map()
    if torch.backends.cpu.get_cpu_capability() == "DEFAULT":
        # torch's linspace is FMA-contracted only in its AVX2/AVX512 kernels; without them it may be
        # one float32 step off, and so may the map bitsandbytes builds at run time.
        assert np.max(np.abs(mine - ref)) <= 2 * np.finfo(np.float32).eps
    else:
        assert np.array_equal(mine, ref)


# -- 4-bit quantization, bit for bit ------------------------------------------------------------------------
def _sample(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * rng.uniform(0.01, 5.0)).astype(np.float32)
    if n > 200:
        x[64:128] = 0.0                     # an all-zero block
        x[::7] *= 1e-4                      # values that round to zero (FP4's two zeros)
    return x


CASES = [  # (numel, blocksize, dtype, seed)
    (4096, 64, "float32", 0),
    (4096 + 37, 64, "float32", 1),          # not a multiple of 64
    (3465, 64, "bfloat16", 2),              # odd: the last byte holds one code
    (1, 64, "float32", 3),
    (63, 64, "float16", 4),
    (65, 64, "bfloat16", 5),
    (20_000 + 3, 64, "float16", 6),
    (20_000, 32, "float32", 7),
    (20_000 + 11, 256, "bfloat16", 8),
    (9000, 4096, "float32", 9),
]


@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
@pytest.mark.parametrize("numel, blocksize, dtype, seed", CASES)
def test_quantize_4bit_bit_exact(quant_type, numel, blocksize, dtype, seed):
    A = torch.from_numpy(_sample(numel, seed)).to(getattr(torch, dtype))
    x = _f32(A)  # bf16/fp16 → float32 is exact, as bitsandbytes does it
    packed, state = F.quantize_4bit(A, blocksize=blocksize, compress_statistics=False, quant_type=quant_type)
    mine_packed, mine_absmax = Q.quantize_blockwise(x, quant_type, blocksize)
    assert packed.dtype == torch.uint8 and tuple(packed.shape) == ((numel + 1) // 2, 1)
    assert np.array_equal(mine_packed, _u8(packed))
    assert state.absmax.dtype == torch.float32 and np.array_equal(mine_absmax, _f32(state.absmax))
    assert np.array_equal(Q.code_by_name(quant_type), _f32(state.code))


@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
@pytest.mark.parametrize("numel, blocksize, dtype, seed", CASES)
def test_double_quantization_bit_exact(quant_type, numel, blocksize, dtype, seed):
    A = torch.from_numpy(_sample(numel, seed)).to(getattr(torch, dtype))
    packed, state = F.quantize_4bit(A, blocksize=blocksize, compress_statistics=True, quant_type=quant_type)
    assert state.nested and state.state2.blocksize == Q.DQ_BLOCKSIZE
    mine = Q.quantize_4bit(_f32(A), quant_type, blocksize, double_quant=True, offset=state.offset.item())
    assert np.array_equal(mine.packed, _u8(packed))
    assert state.absmax.dtype == torch.uint8 and np.array_equal(mine.double.codes, _u8(state.absmax))
    assert np.array_equal(mine.double.absmax2, _f32(state.state2.absmax))
    assert np.array_equal(mine.double.code, _f32(state.state2.code))
    assert mine.double.offset == np.float32(state.offset.item())
    # without bitsandbytes' offset: torch's float32 mean vs the exactly rounded one, at most a few ulp apart
    own = Q.quantize_4bit(_f32(A), quant_type, blocksize, double_quant=True)
    assert abs(float(own.double.offset) - state.offset.item()) <= 4 * np.spacing(np.float32(state.offset.item()))
    assert np.mean(own.double.codes == _u8(state.absmax)) >= 0.99


@pytest.mark.parametrize("double_quant", [False, True])
@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
def test_dequantize_4bit_bit_exact(quant_type, double_quant):
    A = torch.from_numpy(_sample(64 * 50 + 6, 11))
    packed, state = F.quantize_4bit(A, blocksize=64, compress_statistics=double_quant, quant_type=quant_type)
    q = Q.quantize_4bit(_f32(A), quant_type, 64, double_quant,
                        offset=state.offset.item() if double_quant else None)
    assert np.array_equal(Q.dequantize_4bit(q), _f32(F.dequantize_4bit(packed, state)))


def test_quantize_blockwise_8bit_bit_exact():
    rng = np.random.default_rng(12)
    code = F.create_dynamic_map()
    for n in (1, 255, 256, 4096 + 100):
        x = (rng.standard_normal(n) * 3).astype(np.float32)
        out, absmax = torch.ops.bitsandbytes.quantize_blockwise.default(torch.from_numpy(x), code, 256)
        mine_codes, mine_absmax = Q.quantize_blockwise_8bit(x, _f32(code), 256)
        assert np.array_equal(mine_codes, _u8(out)) and np.array_equal(mine_absmax, _f32(absmax))


# -- storage: the tensors bitsandbytes keeps ------------------------------------------------------------------
def _state_tensors(qs) -> dict[str, "torch.Tensor"]:
    """Every tensor a QuantState holds, found by walking its attributes (so nothing can be missed)."""
    found = {}
    for key, value in vars(qs).items():
        if isinstance(value, torch.Tensor):
            found[f"quant_state.{key}"] = value
    if qs.state2 is not None:
        for key, value in vars(qs.state2).items():
            if isinstance(value, torch.Tensor):
                found[f"quant_state.state2.{key}"] = value
    return found


@pytest.mark.parametrize("shape", [(4096, 4096), (1000, 37), (45, 77)])
@pytest.mark.parametrize("quant_type, double_quant", [("nf4", True), ("nf4", False), ("fp4", True)])
def test_params4bit_storage_bytes(shape, quant_type, double_quant):
    """Counted: ``Params4bit.data`` (packed codes) + every tensor of its ``QuantState`` (absmax, code;
    with double quantization also offset, state2.absmax, state2.code). These are all the tensors the
    weight keeps after ``Params4bit._quantize``; the bf16 input is freed."""
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    p = bnb.nn.Params4bit(w, requires_grad=False, compress_statistics=double_quant, quant_type=quant_type,
                          blocksize=64).to("cpu")
    tensors = {"weight": p.data, **_state_tensors(p.quant_state)}
    storages = {t.untyped_storage().data_ptr() for t in tensors.values()}
    assert len(storages) == len(tensors)  # nothing shared between them
    numel = shape[0] * shape[1]
    spec = {t.name: (t.dtype, t.numel) for t in Q.storage_tensors(numel, quant_type, double_quant=double_quant)}
    theirs = {k: (str(v.dtype).removeprefix("torch."), v.numel()) for k, v in tensors.items()}
    assert theirs == spec
    assert sum(v.numel() * v.element_size() for v in tensors.values()) == Q.tensor_storage_bytes(
        numel, quant_type, double_quant=double_quant)


@pytest.mark.parametrize("shape", [(4096, 4096), (1000, 37), (64, 45)])
def test_int8_storage_bytes(shape):
    """LLM.int8: ``Int8Params._quantize`` keeps ``CB`` (int8, it is ``.data``) and ``SCB`` (fp32 per row)."""
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    p = bnb.nn.Int8Params(w, requires_grad=False, has_fp16_weights=False).to("cpu")
    assert p.data.dtype == torch.int8 and tuple(p.data.shape) == shape
    assert p.CB.data_ptr() == p.data.data_ptr()
    assert p.SCB.dtype == torch.float32 and tuple(p.SCB.shape) == (shape[0],)
    CB, SCB, outliers = F.int8_vectorwise_quant(w.to(torch.float16))
    assert CB.dtype == torch.int8 and tuple(CB.shape) == shape and tuple(SCB.shape) == (shape[0],) and outliers is None
    nbytes = p.data.numel() * p.data.element_size() + p.SCB.numel() * p.SCB.element_size()
    assert nbytes == Q.tensor_storage_bytes(shape[0] * shape[1], "int8", rows=shape[0])


# -- whole models loaded by transformers ------------------------------------------------------------------------
TINY = {
    "llama": {"model_type": "llama", "hidden_size": 45, "intermediate_size": 77, "num_hidden_layers": 2,
              "num_attention_heads": 5, "num_key_value_heads": 1, "head_dim": 10, "vocab_size": 101},
    "qwen2": {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100},
    "mixtral": {"model_type": "mixtral", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
                "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100, "num_local_experts": 4},
    "qwen2_moe": {"model_type": "qwen2_moe", "hidden_size": 64, "intermediate_size": 128,
                  "moe_intermediate_size": 32, "shared_expert_intermediate_size": 64, "num_hidden_layers": 2,
                  "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100, "num_experts": 4,
                  "num_experts_per_tok": 2},
    "gpt2": {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 100, "n_positions": 32},
    "falcon": {"model_type": "falcon", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
               "vocab_size": 100, "new_decoder_architecture": True, "num_kv_heads": 2},
}
LOADS = [  # (model, precision, double_quant)
    ("llama", "nf4", True), ("llama", "fp4", False), ("llama", "int8", False),
    ("qwen2", "nf4", True),
    ("mixtral", "nf4", True), ("qwen2_moe", "nf4", False), ("qwen2_moe", "int8", False),
    ("gpt2", "nf4", True), ("gpt2", "int8", False),
    ("falcon", "nf4", True),
]


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    transformers.logging.set_verbosity_error()
    paths = {}
    for name, cfg in TINY.items():
        config = transformers.AutoConfig.for_model(**cfg)
        model = transformers.AutoModelForCausalLM.from_config(config).to(torch.bfloat16)
        paths[name] = tmp_path_factory.mktemp(name)
        model.save_pretrained(paths[name])
    return paths


def _weight_storage_bytes(model) -> tuple[int, set[str]]:
    """Bytes of every storage the parameters and their bitsandbytes states use (each once), and the
    names of the bitsandbytes-converted modules."""
    seen: dict[int, int] = {}
    converted = set()

    def add(t) -> None:
        if isinstance(t, torch.Tensor):
            s = t.untyped_storage()
            seen[s.data_ptr()] = s.nbytes()

    for name, module in model.named_modules():
        if isinstance(module, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)):
            converted.add(name)
        for p in module.parameters(recurse=False):
            add(p.data)
            if getattr(p, "quant_state", None) is not None:
                for t in _state_tensors(p.quant_state).values():
                    add(t)
            add(getattr(p, "SCB", None))
            add(getattr(p, "CB", None))
        state = getattr(module, "state", None)
        if isinstance(module, bnb.nn.Linear8bitLt) and state is not None:
            add(state.CB)
            add(state.SCB)
    return sum(seen.values()), converted


@pytest.mark.parametrize("model_name, precision, double_quant", LOADS)
def test_model_weight_bytes_equal_loaded_model(saved_models, model_name, precision, double_quant):
    if precision == "int8":
        config = transformers.BitsAndBytesConfig(load_in_8bit=True)
    else:
        config = transformers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=precision,
                                                 bnb_4bit_use_double_quant=double_quant,
                                                 bnb_4bit_compute_dtype=torch.bfloat16)
    model = transformers.AutoModelForCausalLM.from_pretrained(saved_models[model_name], quantization_config=config,
                                                              device_map="cpu", dtype=torch.bfloat16)
    total, converted = _weight_storage_bytes(model)
    wb = Q.model_weight_bytes(Architecture.from_hf_config(TINY[model_name]), precision, double_quant)
    assert total == wb.total_bytes
    # the same modules are quantized: one converted module per layer for each quantized weight kind
    assert len(converted) == sum(m.count for m in wb.modules if m.quantized)
    assert all(name.split(".")[-1] != "lm_head" for name in converted)
    if model_name == "falcon":
        assert not converted  # FalconLinear is an nn.Linear subclass: replace_with_bnb_linear skips it
