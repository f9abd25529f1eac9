"""calc.memory's activation bytes and peak equal a real training step's, measured exactly on CPU.

Method (memory-model.md, Appendix A): tiny Llama models built by transformers 5.23, wrapped by PEFT 0.21
(QLoRA: a real bitsandbytes 0.50 NF4 model loaded on the CPU, ``prepare_model_for_kbit_training``), trained
for two steps of forward (under ``torch.autocast("cpu", bfloat16)`` where the case says so, like HF Trainer
``bf16=True``), ``loss.backward()``, ``AdamW(foreach=True).step()``, ``zero_grad(set_to_none=True)``.

* **Saved activations**: ``torch.autograd.graph.saved_tensors_hooks`` records the storage of every tensor
  autograd packs during the forward; at the end of the forward the storages still alive (a graph that was
  built and dropped, as DoRA's detached norm does, frees its tensors) that are not parameters are summed.
  Tensors packed after ``lm_head`` returned belong to the loss (``logits_and_loss``); the rest is the
  model's (``activations``).
* **Peak**: a ``TorchDispatchMode`` registers the storage of every op output once and a
  ``weakref.finalize`` on the storage subtracts it when it dies; sizes are rounded up to 512 B as the CUDA
  caching allocator does (``c10/cuda/CUDACachingAllocator.cpp`` kMinBlockSize; torch's own
  ``torch/distributed/_tools/mem_tracker.py`` uses the same ``_PYTORCH_MIN_ALLOCATE``). Parameters,
  buffers and inputs alive before the mode starts are registered by hand. The peak of step 2 is compared
  (step 1 creates the optimizer state), as ``max_memory_allocated`` over steps 2+ would report it.

What a CPU run cannot show (and the estimate is told so with ``cuda_workspace_bytes=0``): cuBLAS
workspaces, the CUDA context, allocator fragmentation. Two places where CPU and CUDA differ are handled:
PEFT's bnb path asks ``torch.is_autocast_enabled()`` (CUDA's autocast; see :class:`_CudaAutocastQuery`), and
CUDA runs fp32 attention with GQA on SDPA's math backend while the CPU has an fp32 flash kernel - so no case
here runs attention in fp32 (that branch is checked against an H200 point in ``tests/test_memory.py``).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, replace

import pytest

from tests.verify.conftest import require

torch = require("torch")
transformers = require("transformers")
peft = require("peft")

from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_flatten  # noqa: E402

from calc.architecture import Architecture  # noqa: E402
from calc.lora import LoraSpec  # noqa: E402
from calc.memory import TrainingSetup, estimate_memory  # noqa: E402

transformers.logging.set_verbosity_error()
BLOCK = 512


def _rounded(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


# -- trackers ---------------------------------------------------------------------------------------------
class StorageTracker(TorchDispatchMode):
    """Live bytes of every storage an op produced (rounded to 512 B), with the running peak and its phase."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0
        self.peak_phase = ""
        self.phase = "setup"

    def register(self, t) -> None:
        if not isinstance(t, torch.Tensor) or t.device.type == "meta":
            return
        try:
            st = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # pragma: no cover - tensor subclasses without storage
            return
        n = st.nbytes()
        key = st.data_ptr()
        if n == 0 or key == 0 or key in self.live:
            return
        size = _rounded(n)
        self.live[key] = size
        self.current += size
        weakref.finalize(st, self._free, key)
        if self.current > self.peak:
            self.peak, self.peak_phase = self.current, self.phase

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def reset_peak(self) -> None:
        self.peak, self.peak_phase = self.current, self.phase

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            self.register(t)
        return out


class SavedCounter:
    """Storages autograd saves for backward during a forward, split into model and loss parts."""

    def __init__(self, exclude: set[int]) -> None:
        self.exclude = exclude
        self.saved: dict[str, dict[int, tuple[weakref.ref, int]]] = {"model": {}, "loss": {}}
        self.part = "model"

    def pack(self, t):
        st = t.untyped_storage()
        key = st.data_ptr()
        if key and key not in self.exclude and st.nbytes():
            old = self.saved[self.part].get(key)
            if old is None or old[0]() is None:
                self.saved[self.part][key] = (weakref.ref(st), st.nbytes())
        return t

    @staticmethod
    def unpack(t):
        return t

    def alive_bytes(self, part: str) -> int:
        other = set(self.saved["model"]) if part == "loss" else set()
        return sum(n for k, (ref, n) in self.saved[part].items() if ref() is not None and k not in other)


# -- cases ------------------------------------------------------------------------------------------------
TINY = dict(vocab_size=4000, hidden_size=128, intermediate_size=352, num_attention_heads=8, num_key_value_heads=2,
            head_dim=16, max_position_embeddings=1024, rms_norm_eps=1e-5, tie_word_embeddings=False, model_type="llama")


@dataclass(frozen=True)
class Case:
    name: str
    method: str                      # full | lora | qlora
    weights: str = "bf16"            # full/lora: parameter dtype of the base model
    adapter_dtype: str = "fp32"
    amp: bool = True                 # forward under torch.autocast(bfloat16)
    ckpt: bool = False
    dora: bool = False
    r: int = 8
    layers: int = 2
    batch: int = 1
    seq: int = 128
    vocab: int = 4000
    tied: bool = False
    keep_logits: bool = False

    def config(self) -> dict:
        return {**TINY, "num_hidden_layers": self.layers, "vocab_size": self.vocab,
                "tie_word_embeddings": self.tied}

    def setup(self) -> TrainingSetup:
        lora = None if self.method == "full" else LoraSpec(r=self.r, lora_alpha=2 * self.r, use_dora=self.dora)
        return TrainingSetup(
            method=self.method, lora=lora, base_precision="nf4" if self.method == "qlora" else self.weights,
            adapter_dtype=self.adapter_dtype, mixed_precision="amp_bf16" if self.amp else "none",
            micro_batch=self.batch, seq_len=self.seq, gradient_checkpointing=self.ckpt, optimizer="adamw",
            keep_logits=self.keep_logits, cuda_workspace_bytes=0)


def _dtype(name: str):
    return {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}[name]


def build(case: Case, tmp_path):
    """The model a case trains, as the H200 measurement script builds it (on the CPU)."""
    cfg = transformers.AutoConfig.for_model(**case.config())
    cfg.use_cache = False
    torch.manual_seed(1234)
    if case.method == "qlora":
        base = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
        path = tmp_path / "base"
        base.save_pretrained(path)
        del base
        qc = transformers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                             bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            path, quantization_config=qc, dtype=torch.bfloat16, device_map={"": "cpu"}, attn_implementation="sdpa")
        model.config.use_cache = False
        model = peft.prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=case.ckpt, gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=_dtype(case.weights),
                                                               attn_implementation="sdpa")
        if case.ckpt:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if case.method != "full":
        lc = peft.LoraConfig(r=case.r, lora_alpha=2 * case.r, target_modules="all-linear", lora_dropout=0.0,
                             use_dora=case.dora, task_type="CAUSAL_LM")
        model = peft.get_peft_model(model, lc, autocast_adapter_dtype=case.adapter_dtype == "fp32")
    model.train()
    return model


class _CudaAutocastQuery:
    """PEFT's bnb LoRA path asks ``torch.is_autocast_enabled()`` (no device: CUDA's autocast) whether to skip
    its cast of the input to the adapter dtype (``peft/tuners/lora/bnb.py`` ``requires_conversion``). On a GPU
    run under ``torch.autocast("cuda")`` the answer is yes; on this CPU run it would be no. Answer for the
    CPU autocast so the CPU run takes the branch the GPU run takes."""

    def __enter__(self):
        self.orig = torch.is_autocast_enabled
        orig = self.orig
        torch.is_autocast_enabled = lambda *args: orig(*args) if args else orig("cpu")
        return self

    def __exit__(self, *exc):
        torch.is_autocast_enabled = self.orig


def measure(case: Case, tmp_path) -> dict:
    with _CudaAutocastQuery():
        return _measure(case, tmp_path)


def _measure(case: Case, tmp_path) -> dict:
    model = build(case, tmp_path)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, foreach=True)
    torch.manual_seed(0)
    ids = torch.randint(0, case.vocab, (case.batch, case.seq))
    labels = ids.clone()
    exclude = {p.untyped_storage().data_ptr() for p in model.parameters()}
    exclude |= {b.untyped_storage().data_ptr() for b in model.buffers()}
    head = model.get_output_embeddings()
    result: dict = {}

    tracker = StorageTracker()
    for t in list(model.parameters()) + list(model.buffers()) + [ids, labels]:
        tracker.register(t)
    # bitsandbytes keeps the quantization state (absmax, codes) outside the parameters
    for mod in model.modules():
        qs = getattr(getattr(mod, "weight", None), "quant_state", None)
        if qs is not None:
            for t in (qs.absmax, qs.code, getattr(qs, "offset", None)):
                tracker.register(t)
            if qs.state2 is not None:
                tracker.register(qs.state2.absmax)
                tracker.register(qs.state2.code)
    with tracker:
        for step in (1, 2):
            counter = SavedCounter(exclude)

            def to_loss(module, inputs, output, counter=counter):
                counter.part = "loss"

            hook = head.register_forward_hook(to_loss)
            tracker.phase = "forward"
            with torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=case.amp):
                    out = model(input_ids=ids, labels=labels)
            hook.remove()
            loss = out.loss
            if not case.keep_logits:
                del out
            if step == 2:
                # what the forward left alive for backward: everything above the steady state except the
                # loss's own saved tensors (log-softmax output, labels, total weight) and the 0-d loss
                result["alive_after_forward"] = tracker.current - result["steady"]
                result["saved_model"] = counter.alive_bytes("model")
                result["saved_loss"] = counter.alive_bytes("loss")
                result["activations"] = (result["alive_after_forward"] - _rounded(result["saved_loss"])
                                         - BLOCK * 2)
            tracker.phase = "backward"
            loss.backward()
            del loss
            if case.keep_logits:
                del out
            tracker.phase = "optimizer"
            opt.step()
            opt.zero_grad(set_to_none=True)
            tracker.phase = "after_step"
            if step == 1:
                result["steady"] = tracker.current
                tracker.reset_peak()
    result["peak"] = tracker.peak
    result["peak_phase"] = tracker.peak_phase
    result["steady_end"] = tracker.current
    return result


# -- the proof ----------------------------------------------------------------------------------------------
# Llama-3 proportions at toy size: V/h = 31 (Llama-3: 128256/4096 = 31.3), GQA 4:1, I/h = 2.75.
VOCAB = 4000
CASES = [
    # the regimes of the H200 run: bf16 autocast forward, PEFT's fp32 adapters, fp32 full FT, QLoRA with
    # prepare_model_for_kbit_training
    Case("full-fp32-amp", "full", weights="fp32", vocab=VOCAB),
    Case("full-fp32-amp-ckpt", "full", weights="fp32", ckpt=True, vocab=VOCAB),
    Case("full-bf16-pure", "full", weights="bf16", amp=False, vocab=VOCAB),
    Case("lora", "lora", vocab=VOCAB),
    Case("lora-ckpt", "lora", ckpt=True, vocab=VOCAB),
    Case("lora-bf16-adapters-pure", "lora", adapter_dtype="bf16", amp=False, vocab=VOCAB, batch=2, seq=64),
    Case("dora", "lora", dora=True, vocab=VOCAB),
    Case("dora-ckpt", "lora", dora=True, ckpt=True, vocab=VOCAB),
    Case("qlora", "qlora", vocab=VOCAB),
    Case("qlora-ckpt", "qlora", ckpt=True, vocab=VOCAB, layers=3),
    # A small vocabulary (V/h = 4) moves the peak of a checkpointed run from the loss into the recompute and
    # backward of a decoder layer (calc.memory "layer_recompute": checkpoints, gradients produced so far and
    # the layer's live tensors at its widest moment, traced op by op)
    Case("lora-ckpt-small-vocab", "lora", ckpt=True, vocab=512),
    Case("lora-ckpt-small-vocab-b2", "lora", ckpt=True, vocab=512, batch=2, layers=3),
    Case("full-bf16-pure-ckpt-small-vocab", "full", weights="bf16", amp=False, ckpt=True, vocab=512, seq=256),
]
PHASE_OF = {"loss_backward": "backward", "lm_head_backward": "backward", "layer_recompute": "backward",
            "forward_dora": "forward", "optimizer_step": "optimizer"}


def _pct(est: int, meas: int) -> float:
    return 100.0 * (est - meas) / meas


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_activations_and_peak_equal_a_real_step(case, tmp_path):
    meas = measure(case, tmp_path)
    arch = Architecture.from_hf_config(case.config())
    est = estimate_memory(arch, case.setup())
    acts = est.activations.total
    print(f"\n{case.name}: activations est {acts:,} meas {meas['activations']:,} "
          f"({_pct(acts, meas['activations']):+.3f} %) [saved-tensor hooks: {meas['saved_model']:,}]; loss saved est {est.activations.loss_saved:,} "
          f"meas {meas['saved_loss']:,}; peak est {est.total_bytes:,} meas {meas['peak']:,} "
          f"({_pct(est.total_bytes, meas['peak']):+.3f} %) phase est {est.phase} meas {meas['peak_phase']}")
    assert abs(_pct(acts, meas["activations"])) <= 1.0
    assert abs(_pct(est.activations.loss_saved, meas["saved_loss"])) <= 1.0
    assert abs(_pct(est.total_bytes, meas["peak"])) <= 1.0
    assert PHASE_OF[est.phase] == meas["peak_phase"]
