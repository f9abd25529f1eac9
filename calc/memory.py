"""Training memory of full / LoRA / QLoRA fine-tuning: the peak ``torch.cuda.max_memory_allocated`` reports.

The reference for every term is ``memory-model.md`` (the project's research notes; section numbers below
are that file's). Units: bytes everywhere.

How the peak is composed (memory-model §0, §3.5). A training step passes through moments whose live
memory differs; the peak is the largest of them, not a sum of everything:

* ``loss_backward`` - the log-softmax backward at the start of ``loss.backward()``: steady state
  (weights, adapters, optimizer state) + every tensor saved for backward + the fp32 cross-entropy
  buffers (§3.4). The peak of LoRA/QLoRA and of most long-sequence runs.
* ``lm_head_backward`` - full fine-tuning only: all saved tensors are still alive when the output layer's
  weight gradient (V·h) is formed.
* ``layer_recompute`` - gradient checkpointing only: a decoder layer is re-run inside backward and then
  back-propagated; its saved set, its output gradient and its temporaries at the widest moment (the
  recompute of the MLP's down projection, or the MLP backward) coexist with the remaining checkpoints and
  the parameter gradients produced so far (traced op by op on the CPU; within 1 % for LoRA and pure-bf16
  full FT when it sets the peak, which takes a vocabulary far smaller than the hidden size allows -
  V/h ≈ 4; with real vocabularies the loss phase dominates). Not yet exact for QLoRA (-2.3 %), DoRA (its
  dense forward temporaries recur in the recompute) or fp32 weights under autocast (+0.5 % high).
* ``forward_dora`` - DoRA only: PEFT builds a dense ``lora_B(lora_A(eye(in)))`` and ``W + s·BA`` per
  adapted module in the forward (§1.4); the largest one on top of the activations.
* ``optimizer_step`` - all gradients + the optimizer's temporaries (torch foreach AdamW allocates one
  ``sqrt(v)`` list the size of the largest parameter group; §3.5 [M]). Sets the peak of full fine-tuning
  with fp32 weights.

:class:`MemoryEstimate` reports the components of the phase that sets the peak (so they add up to
``total_bytes``) and every phase in ``phases``.

Activation accounting is not a fitted table: :func:`activation_breakdown` replays, op by op, what autograd
saves in a transformers 5.23 decoder layer under PEFT 0.21 (which tensors, which dtype, which ones share a
storage) for the regime in :class:`TrainingSetup`. For Llama-like layers (RMSNorm in fp32, SwiGLU, GQA,
SDPA) it reproduces the measured coefficients of §3.3 - e.g. ``24h + 4h_kv + 8I + 14r + 4a + 8`` for PEFT's
default fp32 adapters under bf16 autocast - and ``tests/verify/test_activation_memory.py`` checks the totals
and peaks against a real CPU training step within 1 %. Against 40 ``max_memory_allocated`` peaks measured
on an H200 (``calc/data/measurements/h200-2026-11-23.yaml``; ``tests/test_memory.py``) the median error is
0.02 % and the largest 0.6 %.

The target is a CUDA GPU (SDPA backend choice, cuBLAS workspaces); on a CPU run set
``cuda_workspace_bytes=0`` and avoid fp32 attention (the CPU has an fp32 flash kernel, CUDA does not).

What is *not* modelled: fragmentation (``memory_reserved`` - ``memory_allocated``; §3.7), NCCL buffers,
DeepSpeed bucket sizes, bnb paged state (it lives outside the torch allocator and is reported as 0),
``torch.compile``, Liger/CCE fused losses, padding masks (they force ``repeat_kv`` in SDPA), and, for
non-Llama families and MoE, the exact op graph (approximations are stated in :func:`activation_breakdown`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from calc.architecture import Architecture, LinearModule
from calc.errors import CalcError
from calc.lora import LoraCount, LoraSpec, count_lora

# -- vocabulary ----------------------------------------------------------------------------------------------
METHODS = ("full", "lora", "qlora")
DENSE_PRECISIONS = ("fp32", "bf16", "fp16")
QUANT_TYPES = ("nf4", "fp4")
ADAPTER_DTYPES = ("fp32", "bf16", "fp16")
COMPUTE_DTYPES = ("bf16", "fp16", "fp32")
OPTIMIZERS = ("adamw", "adamw_fused", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit", "sgd")
MIXED_PRECISION = ("amp_bf16", "amp_fp16", "none")
ATTN = ("sdpa", "flash_attention_2", "eager")
LOSSES = ("plain", "chunked")
SHARDING = ("none", "zero1", "zero2", "zero3", "fsdp_full_shard", "fsdp_qlora")
COMPONENTS = ("weights", "adapter_weights", "gradients", "optimizer_states", "master_weights", "activations",
              "logits_and_loss", "transients")
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}

GIB = 1 << 30
MIB = 1 << 20

#: Memory outside the PyTorch caching allocator, per process: NVML per-process used memory minus
#: ``memory_reserved`` was 794,820,608 B (758 MiB) in all 40 points of our H200 run (torch 2.11, CUDA 13.0;
#: ``calc/data/measurements/h200-2026-11-23.yaml`` provenance notes). CUDA context plus lazily loaded kernels
#: and library handles. PR pytorch/pytorch#86509 measured 287,047,680 B (lazy loading) vs 666,632,192 B
#: (eager) for the bare context (memory-model §3.7). ``max_memory_allocated`` never includes it.
CUDA_CONTEXT_BYTES = 794_820_608

#: cuBLAS workspaces, which torch takes from the caching allocator, one per (handle, stream); handles are
#: per thread, so the forward thread and autograd's backward thread hold one each
#: (``aten/src/ATen/cuda/CublasHandlePool.cpp``, ``cublas_handle_stream_to_workspace``). Hopper's default
#: is 32 MiB each. Calibrated: on the H200, steady-state allocated memory after an optimizer step exceeded
#: weights + optimizer state by 64 MiB + 6 KiB in every full fine-tuning point (e.g. llama-3.2-1b full:
#: 14,896,887,808 - 12·1,235,814,400 = 67,115,008 B).
CUDA_WORKSPACE_BYTES = 64 * MIB

#: bitsandbytes 8-bit optimizers keep 32-bit state for tensors with fewer elements than this
#: (``min_8bit_size``, ``bitsandbytes/optim/optimizer.py``; memory-model §3.2).
BNB_MIN_8BIT_SIZE = 4096
#: bitsandbytes paged optimizers page (``cudaMallocManaged``, outside the torch allocator) the state of
#: tensors with at least this many elements (``get_state_buffer``; memory-model §3.2, §3.7).
BNB_PAGED_MIN_NUMEL = 100_000
#: blockwise 8-bit state: one fp32 absmax per 256 elements, for each of Adam's two states.
BNB_8BIT_BLOCK = 256


# -- the setup -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingSetup:
    """One training configuration, in PEFT / transformers / torch vocabulary.

    ``method``: ``full`` (every parameter trainable), ``lora`` (PEFT LoRA on a dense frozen base) or
    ``qlora`` (PEFT LoRA on a bitsandbytes 4-bit base loaded by transformers). ``lora`` is the
    :class:`~calc.lora.LoraSpec` (DoRA = ``LoraSpec(use_dora=True)``); ``None`` means PEFT's defaults
    (``r=8``, all-linear) for lora/qlora and must be ``None`` for full.

    ``base_precision``: the dtype the base model's parameters live in - ``fp32``/``bf16``/``fp16`` for
    full and lora (``None`` → bf16, what transformers 5 loads by default, memory-model §3.1), and the 4-bit
    type ``nf4``/``fp4`` for qlora (``None`` → nf4), with ``bnb_4bit_use_double_quant`` and
    ``bnb_4bit_compute_dtype`` as in ``BitsAndBytesConfig``. For qlora the parameters bitsandbytes does not
    quantize (embeddings, lm_head, norms) load in ``bnb_4bit_compute_dtype`` (``from_pretrained(dtype=...)``
    set to the same, as in the QLoRA recipe) and ``prepare_kbit`` (default ``True`` for qlora, PEFT's
    recommended ``prepare_model_for_kbit_training``) upcasts them to fp32 (memory-model §2.5).

    ``adapter_dtype``: dtype of the LoRA parameters; PEFT's default ``autocast_adapter_dtype=True`` makes
    them fp32 even on a bf16 base (memory-model §1.1).

    ``mixed_precision``:

    * ``"amp_bf16"`` (``"amp_fp16"``): the forward runs under ``torch.autocast(dtype=bfloat16)`` and the
      backward outside it - what HF Trainer ``bf16=True`` / accelerate do. Parameters keep their dtype. With
      ``method="full", base_precision="fp32"`` this is the classic fp32-master-weights AMP regime (brief's
      "amp_fp32_master"); with a bf16 base it is "amp".
    * ``"none"``: no autocast; everything computes in the parameter dtype (``base_precision="bf16"`` gives
      the "pure bf16" regime).

    ``master_weights``: the optimizer keeps an extra fp32 copy of 16-bit trainable parameters (DeepSpeed's
    bf16/fp16 optimizer, Megatron; ZeRO §3.1's K=12). torch optimizers do not.

    ``optimizer``: ``adamw`` (torch ``AdamW``, foreach implementation - torch's default on CUDA),
    ``adamw_fused`` (``fused=True``, HF Trainer's default ``adamw_torch_fused``), ``adamw_8bit`` /
    ``paged_adamw_8bit`` / ``paged_adamw_32bit`` (bitsandbytes), ``sgd`` (torch SGD with momentum).

    ``micro_batch``, ``seq_len``: tokens per micro-step ``T = micro_batch·seq_len`` (no padding).
    ``gradient_accumulation_steps`` > 1 keeps gradients resident through the next micro-step's backward.
    ``gradient_checkpointing``: transformers ``gradient_checkpointing_enable(use_reentrant=False)``.
    ``attn_implementation``: ``sdpa`` (flash / memory-efficient kernels: O(s)), ``flash_attention_2``
    (same saved set), ``eager`` (materialises the s×s scores).
    ``loss``: ``plain`` (transformers ``ForCausalLMLoss``) or ``chunked`` (torchtune-style chunked
    cross-entropy in ``loss_chunks`` pieces). ``keep_logits``: the output object (logits) is still
    referenced during backward (a plain loop); HF Trainer drops it (memory-model §3.4).

    ``num_gpus``, ``sharding``: ``none`` (DDP when ``num_gpus`` > 1), ``zero1``/``zero2``/``zero3``
    (DeepSpeed), ``fsdp_full_shard`` (FSDP FULL_SHARD ≈ ZeRO-3), ``fsdp_qlora`` (Answer.AI FSDP+QLoRA with
    ``bnb_4bit_quant_storage=bf16``). ``cuda_workspace_bytes``: ``None`` → :data:`CUDA_WORKSPACE_BYTES`;
    ``0`` for a CPU run.
    """

    method: str = "lora"
    lora: LoraSpec | None = None
    base_precision: str | None = None
    bnb_4bit_use_double_quant: bool = True
    bnb_4bit_compute_dtype: str = "bf16"
    adapter_dtype: str = "fp32"
    optimizer: str = "adamw"
    mixed_precision: str = "amp_bf16"
    micro_batch: int = 1
    seq_len: int = 2048
    gradient_checkpointing: bool = False
    attn_implementation: str = "sdpa"
    loss: str = "plain"
    loss_chunks: int = 8
    keep_logits: bool = False
    prepare_kbit: bool | None = None
    gradient_accumulation_steps: int = 1
    master_weights: bool = False
    num_gpus: int = 1
    sharding: str = "none"
    cuda_workspace_bytes: int | None = None

    def __post_init__(self) -> None:
        _choice(self.method, METHODS, "method")
        if self.base_precision is None:
            object.__setattr__(self, "base_precision", "nf4" if self.method == "qlora" else "bf16")
        if self.method == "qlora":
            if self.base_precision not in QUANT_TYPES:
                raise CalcError(f"qlora needs a 4-bit type ({', '.join(QUANT_TYPES)}), got {self.base_precision!r}",
                                field="base_precision")
        elif self.base_precision not in DENSE_PRECISIONS:
            raise CalcError(f"{self.method} needs one of {', '.join(DENSE_PRECISIONS)}, got {self.base_precision!r}"
                            + (" (4-bit bases are method=qlora)" if self.base_precision in QUANT_TYPES else ""),
                            field="base_precision")
        if self.prepare_kbit is None:
            object.__setattr__(self, "prepare_kbit", self.method == "qlora")
        if self.prepare_kbit and self.method != "qlora":
            raise CalcError("prepare_model_for_kbit_training applies to quantized (qlora) models only",
                            field="prepare_kbit")
        if self.method == "full":
            if self.lora is not None:
                raise CalcError("full fine-tuning takes no LoRA spec", field="lora")
        elif self.lora is None:
            object.__setattr__(self, "lora", LoraSpec())
        elif not isinstance(self.lora, LoraSpec):
            raise CalcError("must be a calc.lora.LoraSpec", field="lora")
        _choice(self.bnb_4bit_compute_dtype, COMPUTE_DTYPES, "bnb_4bit_compute_dtype")
        _choice(self.adapter_dtype, ADAPTER_DTYPES, "adapter_dtype")
        _choice(self.optimizer, OPTIMIZERS, "optimizer")
        _choice(self.mixed_precision, MIXED_PRECISION, "mixed_precision")
        _choice(self.attn_implementation, ATTN, "attn_implementation")
        _choice(self.loss, LOSSES, "loss")
        _choice(self.sharding, SHARDING, "sharding")
        for name in ("micro_batch", "seq_len", "loss_chunks", "gradient_accumulation_steps", "num_gpus"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise CalcError(f"must be a positive integer, got {value!r}", field=name)
        if self.micro_batch * self.seq_len > 1 << 31:
            raise CalcError(f"{self.micro_batch}·{self.seq_len} tokens per micro-batch is absurd", field="seq_len")
        if self.num_gpus > 1 << 16:
            raise CalcError(f"is absurdly large ({self.num_gpus})", field="num_gpus")
        for name in ("gradient_checkpointing", "keep_logits", "bnb_4bit_use_double_quant", "master_weights",
                     "prepare_kbit"):
            if not isinstance(getattr(self, name), bool):
                raise CalcError(f"must be true or false, got {getattr(self, name)!r}", field=name)
        if self.cuda_workspace_bytes is not None and (isinstance(self.cuda_workspace_bytes, bool) or not isinstance(
                self.cuda_workspace_bytes, int) or self.cuda_workspace_bytes < 0):
            raise CalcError(f"must be a non-negative integer, got {self.cuda_workspace_bytes!r}",
                            field="cuda_workspace_bytes")
        # combinations that do not exist
        if self.master_weights and self.trainable_dtype == "fp32":
            raise CalcError("an fp32 master copy only exists for 16-bit trainable parameters", field="master_weights")
        if self.mixed_precision == "amp_fp16" and self.trainable_dtype == "fp16":
            raise CalcError("fp16 AMP needs fp32 trainable parameters (torch GradScaler refuses to unscale fp16 "
                            "gradients)", field="mixed_precision")
        if self.sharding == "fsdp_qlora" and self.method != "qlora":
            raise CalcError("fsdp_qlora shards a 4-bit base; use method='qlora'", field="sharding")
        if self.sharding == "fsdp_full_shard" and self.method == "qlora":
            raise CalcError("FSDP cannot flatten uint8 4-bit weights with bf16 ones; use sharding='fsdp_qlora' "
                            "(bnb_4bit_quant_storage=bf16)", field="sharding")
        if self.optimizer in ("adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit") and self.sharding in (
                "zero1", "zero2", "zero3"):
            raise CalcError("DeepSpeed ZeRO partitions its own fp32 optimizer; bitsandbytes optimizers are not "
                            "supported there", field="optimizer")

    # -- derived ------------------------------------------------------------------------------------------
    @property
    def tokens(self) -> int:
        """``T = micro_batch · seq_len``."""
        return self.micro_batch * self.seq_len

    @property
    def amp(self) -> bool:
        return self.mixed_precision != "none"

    @property
    def dense_dtype(self) -> str:
        """dtype of the parameters that are not 4-bit: the base for full/lora; for qlora embeddings, lm_head
        and norms (fp32 after ``prepare_model_for_kbit_training``, memory-model §2.5)."""
        if self.method != "qlora":
            return self.base_precision
        return "fp32" if self.prepare_kbit else self.bnb_4bit_compute_dtype

    @property
    def trainable_dtype(self) -> str:
        return self.base_precision if self.method == "full" else self.adapter_dtype


def _choice(value, choices, name: str) -> None:
    if value not in choices:
        raise CalcError(f"must be one of {', '.join(choices)}, got {value!r}", field=name)


# -- results -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Phase:
    """One moment of the training step: its components ((name, bytes), the :data:`COMPONENTS` order)."""

    name: str
    components: tuple[tuple[str, int], ...]

    @property
    def total(self) -> int:
        return sum(b for _, b in self.components)

    def get(self, name: str) -> int:
        return dict(self.components)[name]


@dataclass(frozen=True)
class ActivationBreakdown:
    """What autograd keeps for backward at the end of the forward (bytes, whole micro-batch).

    ``per_layer`` is one decoder layer that receives a gradient-requiring input; ``first_layer`` the first
    layer (PEFT without checkpointing: the embedding output does not require grad, so its input norm and
    the ``lora_A`` weight casts of its q/k/v save nothing). ``weight_casts`` are autocast's bf16 copies of
    fp32 weights saved for backward (token-independent; included in the layer totals). ``non_layer`` covers
    the embedding indices, the final norm, lm_head and the RoPE tables; ``loss_saved`` the fp32 log-softmax
    and the int64 targets (reported under ``logits_and_loss``, not here). ``recompute_layer`` is one layer's
    full saved set when checkpointing re-runs it in backward.
    """

    per_layer: int
    first_layer: int        # for stacks mixing dense and MoE layers it absorbs the difference: total is exact
    layers: int
    non_layer: int
    weight_casts: int
    loss_saved: int
    recompute_layer: int
    per_token_layer: float
    checkpointed: bool

    @property
    def total(self) -> int:
        """Model activations (loss excluded): what :func:`activation_bytes` returns."""
        return self.first_layer + (self.layers - 1) * self.per_layer + self.non_layer


@dataclass(frozen=True)
class MemoryEstimate:
    """The modelled peak of ``torch.cuda.max_memory_allocated`` for one training step.

    ``components``: (name, bytes) in :data:`COMPONENTS` order for the phase that sets the peak (``phase``);
    they add up to ``total_bytes``. With ``num_gpus`` > 1 ``total_bytes`` and ``components`` are summed over
    all GPUs (each GPU holds the same amount), and ``per_gpu_bytes`` / ``per_gpu_components`` are one GPU's
    - the number to compare with one device's memory. ``cuda_context_bytes`` is per process (one per GPU)
    and outside the allocator, so it is not in ``total_bytes``. ``phases`` lists every moment modelled (per
    GPU). ``activations`` is the saved-activation breakdown (per GPU).
    """

    components: tuple[tuple[str, int], ...]
    total_bytes: int
    cuda_context_bytes: int
    phase: str
    phases: tuple[Phase, ...]
    activations: ActivationBreakdown
    num_gpus: int = 1
    per_gpu_bytes: int | None = None
    per_gpu_components: tuple[tuple[str, int], ...] | None = None

    def component(self, name: str) -> int:
        return dict(self.components)[name]

    @property
    def device_bytes(self) -> int:
        """One device's peak allocated memory (``per_gpu_bytes`` or ``total_bytes``)."""
        return self.per_gpu_bytes if self.per_gpu_bytes is not None else self.total_bytes


# -- activations: an op-by-op replay of what autograd saves ---------------------------------------------------
class _T:
    """A symbolic tensor: ``width`` elements per token, ``dtype`` bytes per element, ``rg`` requires grad."""

    __slots__ = ("width", "dtype", "rg")

    def __init__(self, width: int, dtype: int, rg: bool) -> None:
        self.width, self.dtype, self.rg = width, dtype, rg


class _Saved:
    """Unique storages saved for backward: per-token bytes and token-independent bytes."""

    def __init__(self) -> None:
        self._saved: list[_T] = []      # kept alive so that id() stays unique
        self.per_token = 0
        self.const = 0
        self.casts = 0

    def save(self, t: _T) -> None:
        if not any(t is u for u in self._saved):
            self._saved.append(t)
            self.per_token += t.width * t.dtype

    def save_bytes(self, per_token: int) -> None:
        self.per_token += per_token

    def save_cast(self, nbytes: int) -> None:
        self.const += nbytes
        self.casts += nbytes


@dataclass(frozen=True)
class _Regime:
    """The dtype facts of a setup that decide which tensors autograd saves (bytes per element)."""

    amp: bool
    compute: int          # autocast dtype (2); the activation dtype when not under autocast is the weight dtype
    residual: int         # dtype of the embedding output = the residual stream = norm weights (§2.5)
    dense_weight: int     # dense base Linear weights (full/lora); lm_head/embeddings dtype for qlora
    adapter: int
    method: str
    quantized: bool       # base Linears are bnb Linear4bit (qlora, not Falcon)
    dora: bool


def _regime(arch: Architecture, setup: TrainingSetup) -> _Regime:
    from calc.quant_storage import NN_LINEAR_SUBCLASS_FAMILIES

    dense = BYTES[setup.dense_dtype]
    quantized = setup.method == "qlora" and arch.model_type not in NN_LINEAR_SUBCLASS_FAMILIES
    return _Regime(amp=setup.amp, compute=2, residual=dense,
                   dense_weight=dense if setup.method != "qlora" or quantized else BYTES[setup.bnb_4bit_compute_dtype],
                   adapter=BYTES[setup.adapter_dtype], method=setup.method, quantized=quantized,
                   dora=bool(setup.lora and setup.lora.use_dora))


def _promote(a: int, b: int) -> int:
    return max(a, b)


class _Layer:
    """Replays one decoder layer's forward. Sources: transformers 5.23 ``models/llama/modeling_llama.py``
    (``LlamaRMSNorm``, ``LlamaAttention``, ``LlamaMLP``, ``apply_rotary_pos_emb``),
    ``integrations/sdpa_attention.py``; PEFT 0.21 ``tuners/lora/layer.py`` ``Linear.forward`` (input cast to
    the adapter dtype), ``tuners/lora/bnb.py`` ``Linear4bit.forward`` (no cast under autocast, defensive
    clone), ``tuners/lora/dora.py``; bitsandbytes 0.50 ``autograd/_functions.py`` ``MatMul4Bit`` (saves only
    the packed weight); torch autocast (``aten/src/ATen/autocast_mode.cpp``: linear/matmul/sdpa run in the
    autocast dtype; the weight-cast cache holds only leaf tensors that require grad) and autograd's
    derivative formulas (an input is saved only when the other operand needs a gradient)."""

    def __init__(self, reg: _Regime, adapted: dict[str, int]) -> None:
        self.reg = reg
        self.adapted = adapted    # module name -> rank (0 = not adapted)
        self.s = _Saved()

    # RMSNorm / LayerNorm: fp32 copy of the input (4n) + rsqrt/mean-var (4 per row); the normalised input
    # is saved only for a trainable weight (d/dweight).
    def norm(self, x: _T, size: int, trainable: bool) -> _T:
        r = self.reg
        if x.rg:
            self.s.save_bytes(4 * x.width + 4 * (x.width // size))
        if trainable:
            self.s.save_bytes(r.residual * x.width)
        return _T(x.width, _promote(r.residual, x.dtype), x.rg or trainable)

    def linear(self, m: LinearModule, x: _T, width_in: int | None = None, width_out: int | None = None) -> _T:
        r, s = self.reg, self.s
        fin, fout = width_in or m.in_features, width_out or m.out_features
        rank = self.adapted.get(m.name, 0)
        trainable = r.method == "full"
        quant = r.quantized and m.kind in ("linear", "conv1d")
        if quant:                                             # bnb MatMul4Bit: ctx.tensors = (None, B)
            out_dtype = x.dtype                               # Linear4bit.forward returns .to(inp_dtype)
        elif trainable:
            if r.amp:
                xin = x if x.dtype == r.compute else _T(fin, r.compute, x.rg)
                s.save(xin)                                   # for d/dW
                if r.dense_weight != r.compute:
                    s.save_cast(r.compute * m.in_features * m.out_features)   # cached cast, for d/dx
                out_dtype = r.compute
            else:
                s.save(x)
                out_dtype = r.dense_weight
        else:                                                 # frozen dense base
            if r.amp:
                if r.dense_weight != r.compute and x.rg:
                    s.save_cast(r.compute * m.in_features * m.out_features)   # uncached cast, for d/dx
                out_dtype = r.compute
            else:
                out_dtype = r.dense_weight
        out = _T(fout, out_dtype, x.rg or trainable)
        if rank:
            if quant and r.amp:
                xa = x                                        # bnb.py: no cast under autocast
            else:
                xa = x if x.dtype == r.adapter else _T(fin, r.adapter, x.rg)
            if r.amp:
                xs = xa if xa.dtype == r.compute else _T(fin, r.compute, x.rg)
                s.save(xs)                                    # lora_A input, for d/dA
                if r.adapter != r.compute:
                    if x.rg:
                        s.save_cast(r.compute * rank * m.in_features)      # cached lora_A cast, for d/dx
                    s.save_cast(r.compute * rank * m.out_features)         # cached lora_B cast
                a_dtype = r.compute
            else:
                s.save(xa)
                a_dtype = r.adapter
            s.save_bytes(rank * a_dtype)                      # lora_A output, for d/dB
            if r.dora:
                # PEFT DoRA (dora.py forward): (m/‖W+sBA‖ - 1)·base_result + m/‖·‖·lora_result·s saves the
                # base result and the LoRA result (out-sized) plus the out-sized norm scale (token-independent).
                s.save_bytes(fout * out_dtype + fout * a_dtype)
                # token-independent: the detached weight norm (for d/dm), m/‖·‖ (for d/d lora_result) and
                # m/‖·‖ - 1 (for d/d base_result, only when the base result needs a gradient)
                s.const += r.adapter * m.out_features * (2 + (1 if x.rg else 0))
            out = _T(fout, out_dtype, True)
        return out

    def act(self, x: _T) -> _T:
        if x.rg:
            self.s.save(x)                                    # SiLU/GELU save their input
        return _T(x.width, x.dtype, x.rg)

    def mul(self, a: _T, b: _T) -> _T:
        if b.rg:
            self.s.save(a)
        if a.rg:
            self.s.save(b)
        return _T(a.width, _promote(a.dtype, b.dtype), a.rg or b.rg)


@dataclass(frozen=True)
class _Shape:
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim


def _shape(arch: Architecture) -> _Shape:
    c = arch.config
    return _Shape(c.hidden_size, c.num_attention_heads, arch.num_key_value_heads, c.head_dim, c.vocab_size)


_O_PROJ = ("o_proj", "dense", "c_proj")


def _layer_modules(arch: Architecture) -> dict[str, list[LinearModule]]:
    groups: dict[str, list[LinearModule]] = {"attn_in": [], "attn_out": [], "mlp": [], "shared": [],
                                             "experts": [], "router": []}
    for m in arch.modules:
        if m.group == "attention":
            groups["attn_out" if m.target in _O_PROJ and m.out_features == arch.hidden_size
                   and m.name.split(".")[0] in ("self_attn", "attn", "self_attention") else "attn_in"].append(m)
        elif m.group == "mlp":
            groups["mlp"].append(m)
        elif m.group == "shared_expert":
            groups["shared"].append(m)
        elif m.group == "experts":
            groups["experts"].append(m)
        elif m.group == "router":
            groups["router"].append(m)
    return groups


def _mlp(layer: _Layer, mods: list[LinearModule], x: _T, width_scale: int = 1) -> _T:
    """Gated (SwiGLU/GeGLU: down(act(gate(x))·up(x)), fused gate_up split by chunk) or plain (fc2(act(fc1)))."""
    if not mods:
        return x
    by_target = {m.target: m for m in mods}
    down = [m for m in mods if m.target in ("down_proj", "dense_4h_to_h", "c_proj", "w2")]
    ups = [m for m in mods if m not in down and m.target != "shared_expert_gate"]
    out_mod = down[0] if down else mods[-1]
    if len(ups) == 2 or "gate_up_proj" in by_target:          # gated
        if "gate_up_proj" in by_target:
            gu = layer.linear(by_target["gate_up_proj"], x)
            inter = gu.width // 2
            gate = _T(inter, gu.dtype, gu.rg)                 # chunk views share gu's storage
            up = gate
            if gu.rg:
                layer.s.save(gu)
            a = _T(inter, gate.dtype, gate.rg)
            if gate.rg:
                layer.s.save(a)
        else:
            gate = layer.linear(ups[0], x)
            up = layer.linear(ups[1], x)
            a = layer.act(gate)
            layer.mul(a, up)
        p = _T(out_mod.in_features, _promote(a.dtype, up.dtype), True)
    else:
        fc1 = layer.linear(ups[0], x) if ups else x
        p = layer.act(fc1)                                    # a new tensor: what fc2 saves
    return layer.linear(out_mod, p)


def _replay_layer(arch: Architecture, reg: _Regime, setup: TrainingSetup, adapted: dict[str, int],
                  input_rg: bool, moe: bool) -> _Saved:
    """Saved bytes of one decoder layer (per token, plus token-independent)."""
    sh = _shape(arch)
    groups = _layer_modules(arch)
    layer = _Layer(reg, adapted)
    full = reg.method == "full"
    h = sh.hidden
    x = _T(h, reg.residual, input_rg)
    pre_norms = [n for n in arch.norms if n.size == h]
    head_norms = [n for n in arch.norms if n.size != h and n.name.startswith(("self_attn.q_norm",
                                                                               "self_attn.k_norm"))]
    other_norms = [n for n in arch.norms if n.size != h and n not in head_norms]
    n1 = layer.norm(x, h, full) if pre_norms else x
    # attention input projections
    qkv: list[_T] = []
    for m in groups["attn_in"]:
        src = n1 if m.in_features == h else _T(m.in_features, n1.dtype, n1.rg)
        qkv.append(layer.linear(m, src))
    for n in other_norms:                                     # MLA's q_a/kv_a norms: on rank-sized inputs
        layer.norm(_T(n.size, reg.compute if reg.amp else reg.residual, True), n.size, full)
    rg = any(t.rg for t in qkv) or n1.rg
    out_dtype = qkv[0].dtype if qkv else reg.compute
    # head norms (Qwen3 / OLMo2 q_norm, k_norm)
    for n in head_norms:
        width = sh.q_dim if "q_norm" in n.name else sh.kv_dim
        layer.norm(_T(width, out_dtype, rg), n.size, full)
    # rotary: q·cos + rotate_half(q)·sin saves the shared cos/sin tables (counted once, outside the layer);
    # results are in promote(q dtype, residual dtype) (cos/sin are cast to the hidden-state dtype)
    rope = arch.family.model_type not in ("gpt2",) and not arch.config.get("alibi", False)
    roped = _promote(out_dtype, reg.residual) if rope else out_dtype
    sdpa_dtype = reg.compute if reg.amp else roped
    sv = layer.s
    if rg:
        q_w, kv_w = sh.q_dim, sh.kv_dim
        k_saved = kv_w
        if setup.attn_implementation == "eager" and sh.kv_heads != sh.heads:
            k_saved = q_w                                     # repeat_kv before the matmuls
        # q and k are new tensors after RoPE; v is the projection output (shared with nothing saved)
        # CUDA SDPA backends (torch 2.11, sdp_utils): flash needs 16-bit inputs and the memory-efficient kernel
        # has no enable_gqa, so fp32 attention with GQA falls back to the math path, which materialises the
        # probabilities. Measured on the H200: llama-3.2-1b full fp32 without autocast, b=2, s=1024: +143,232
        # B/token/layer over the flash set = 4·a·s + 8·(q - h_kv) - 4a, exactly this branch.
        math = (setup.attn_implementation == "sdpa" and sdpa_dtype == 4 and sh.kv_heads != sh.heads)
        if math:
            # ATen _scaled_dot_product_attention_math: q·√scale, repeated k·√scale, softmax output, repeated v
            sv.save_bytes(sdpa_dtype * 3 * q_w + 4 * sh.heads * setup.seq_len)
            attn_out = _T(q_w, sdpa_dtype, True)              # attn @ v, then transpose(1, 2).contiguous()
        else:
            sv.save_bytes(sdpa_dtype * (q_w + 2 * k_saved))
        if math:
            pass                                              # nothing else: no logsumexp is kept
        elif setup.attn_implementation == "eager":
            s = setup.seq_len
            # softmax(dtype=float32) output (4·a·s) and its cast back to the query dtype (2·a·s), per token
            sv.save_bytes((4 + sdpa_dtype) * sh.heads * s)
            attn_out = _T(q_w, sdpa_dtype, True)              # transpose(1, 2).contiguous(): a new tensor
        else:
            attn_out = _T(q_w, sdpa_dtype, True)
            sv.save(attn_out)                                 # the kernel output, reused by o_proj
            sv.save_bytes(4 * sh.heads)                       # fp32 logsumexp
    else:  # pragma: no cover - the attention always sees a gradient-requiring q in a trainable model
        attn_out = _T(sh.q_dim, sdpa_dtype, False)
    o = layer.linear(groups["attn_out"][0], attn_out) if groups["attn_out"] else attn_out
    x1 = _T(h, _promote(reg.residual, o.dtype), True)
    n2 = layer.norm(x1, h, full) if len(pre_norms) >= 2 else _T(h, x1.dtype, True)
    for _ in pre_norms[2:]:                                   # sandwich norms (Gemma 2/3): post-norms on outputs
        layer.norm(_T(h, reg.compute if reg.amp else reg.residual, True), h, full)
    if moe and groups["experts"]:
        _moe(layer, arch, groups, n2, reg)
    else:
        _mlp(layer, groups["mlp"], n2)
    return layer.s


def _moe(layer: _Layer, arch: Architecture, groups: dict[str, list[LinearModule]], x: _T, reg: _Regime) -> None:
    """MoE approximation (not measured): router logits in fp32 (softmax output saved, 4E), and per routed
    token ``k`` gathered input copies plus ``k`` gated expert MLPs of the expert width, plus the shared
    expert(s) as a dense gated MLP. Expert stacks are frozen 3-D parameters (or PEFT parameter targets)."""
    c = arch.config
    k = c.get("num_experts_per_tok") or 2
    dt = reg.compute if reg.amp else reg.residual
    for m in groups["router"]:
        layer.linear(m, x)
        layer.s.save_bytes(4 * m.out_features)
    experts = groups["experts"]
    down = [m for m in experts if "down" in m.name]
    inter = down[0].in_features if down else 0
    rank = max((layer.adapted.get(m.name, 0) for m in experts), default=0)
    # per routed copy: gathered input (dt·h), gate_up output (2I), act (I), product (I) saved, LoRA inputs
    per_copy = dt * arch.hidden_size + dt * 4 * inter
    if rank:
        per_copy += reg.compute * (arch.hidden_size + inter) + 2 * rank * reg.compute
    layer.s.save_bytes(k * per_copy)
    if groups["shared"]:
        _mlp(layer, [m for m in groups["shared"] if m.target != "shared_expert_gate"], x)


def _adapted(arch: Architecture, setup: TrainingSetup) -> tuple[dict[str, int], LoraCount | None]:
    if setup.method == "full":
        return {}, None
    count = count_lora(arch, setup.lora)
    return {m.name: m.r for m in count.modules}, count


def _moe_layer_count(arch: Architecture) -> int:
    return max((m.count for m in arch.modules if m.group == "experts"), default=0)


def activation_breakdown(arch: Architecture, setup: TrainingSetup) -> ActivationBreakdown:
    """Bytes autograd keeps for backward at the end of the forward, itemised (memory-model §3.3, §3.4).

    Per token and layer for the Llama-like decoder (RMSNorm, SwiGLU, GQA, RoPE, SDPA; transformers 5.23,
    PEFT 0.21), with ``h`` hidden, ``q = a·d``, ``h_kv = n_kv·d``, ``I`` intermediate, ``r`` rank, ``a``
    heads and the residual stream in the embedding dtype:

    * each RMSNorm whose input requires grad: fp32 input copy ``4h`` + ``rsqrt`` ``4`` (+ the normalised
      input in the residual dtype when the norm weight trains);
    * SDPA (flash/efficient kernels; Dao et al. 2022: O(s)): q, k, v and the output in the compute dtype,
      ``4a`` fp32 logsumexp; the output doubles as o_proj's input; ``eager`` adds the fp32 softmax and its
      cast (``(4+2)·a·s``) and saves repeated k/v; fp32 attention with GQA (no autocast on an fp32 or
      prepare_kbit-upcast model) runs CUDA's math backend: ``4·(3q) + 4·a·s`` (the s×s probabilities);
    * SwiGLU: gate (SiLU input), SiLU output and up (both kept by the product) ``3·2I`` + down's input;
    * a full-FT Linear saves its input (cast to bf16 under autocast: one copy *per call*, so q, k, v each
      keep their own when the input is not already bf16); a frozen base Linear saves nothing; a LoRA
      adapter saves its ``lora_A`` input after PEFT's cast to the adapter dtype and autocast's cast back
      (again one per call) and the ``r``-wide ``lora_A`` output;
    * autocast's cached bf16 copies of fp32 trainable weights (and uncached casts of frozen fp32 weights
      whose input needs a gradient) are saved for backward: token-independent ``weight_casts``;
    * DoRA (PEFT ``dora.py``) additionally keeps the base result and the LoRA result of each adapted
      module (``(out_dtype + lora_dtype)·out``) - measured ``4·Σout`` for bf16 (memory-model §1.4);
    * gradient checkpointing keeps only each layer's input (``residual·h``; Korthikanti et al. 2022 §5:
      ``2sbhL``) - everything else is recomputed in backward (``recompute_layer``).

    Non-layer: with checkpointing the int64 position ids (``8`` per position, shape ``(1, s)``) the
    checkpointed calls keep in their keyword arguments; the final norm, lm_head's
    input (full FT) and autocast's copy of an fp32 lm_head weight (QLoRA after
    ``prepare_model_for_kbit_training``: ``2·V·h``), and the RoPE cos/sin tables (``2·d·residual`` per
    position - shared by the batch; alive in the checkpoint closures when not saved). The loss part - ``ForCausalLMLoss`` upcasts the
    logits and ``log_softmax`` saves its fp32 output ``4V`` plus the int64 shifted labels ``8`` per token
    (transformers ``loss/loss_utils.py``) - is ``loss_saved``.

    Other families reuse the same rules with their modules (fused qkv/gate_up, Qwen3/OLMo2 head norms,
    Gemma sandwich norms, GeLU MLPs). Not verified for them: Gemma's ``(1+w)`` norm, GPT-2's ``gelu_new``
    written in Python ops, Falcon's parallel attention, MLA (DeepSeek) head shapes and MoE routing (see
    :func:`_moe`); treat those as estimates.
    """
    reg = _regime(arch, setup)
    adapted, _ = _adapted(arch, setup)
    sh = _shape(arch)
    T = setup.tokens
    L = arch.num_hidden_layers
    moe_layers = _moe_layer_count(arch)
    dense_layers = L - moe_layers
    # does the embedding output require grad? Full FT: the embedding trains. PEFT: only when checkpointing
    # (transformers' gradient_checkpointing_enable -> enable_input_require_grads, modeling_utils.py).
    emb_trains = setup.method == "full" or any(
        name.rsplit(".", 1)[-1] in ("embed_tokens", "wte", "word_embeddings")
        for name in (setup.lora.modules_to_save if setup.lora else ()))
    input_rg = emb_trains or setup.gradient_checkpointing

    def layer_bytes(rg: bool, moe: bool) -> tuple[int, int]:
        sv = _replay_layer(arch, reg, setup, adapted, rg, moe)
        return sv.per_token * T + sv.const, sv.casts

    kinds = ([False] * dense_layers) + ([True] * moe_layers)
    full_layer = {}
    for moe in set(kinds) or {False}:
        full_layer[moe] = layer_bytes(True, moe)
    first_full, first_casts = layer_bytes(input_rg, kinds[0] if kinds else False)
    rep_kind = bool(moe_layers and moe_layers >= dense_layers)   # the layer kind most layers are
    per_layer = full_layer[rep_kind][0]
    sum_layers = first_full + sum(full_layer[k][0] for k in kinds[1:])
    casts = first_casts + sum(full_layer[k][1] for k in kinds[1:])
    per_token_layer = (_replay_layer(arch, reg, setup, adapted, True, rep_kind).per_token)

    # non-layer parts
    res = reg.residual
    non_layer = 0
    # (the embedding saves the int64 input ids when it trains: the caller's batch tensor, not new memory)
    # position ids are (1, s) without a padding mask (LlamaModel: cache_position.unsqueeze(0)), so the RoPE
    # tables are (1, s, d) whatever the batch
    s_len = setup.seq_len
    if setup.gradient_checkpointing:
        non_layer += 8 * s_len                                 # int64 position ids kept in the checkpoint kwargs
    rope = arch.family.model_type not in ("gpt2",) and not arch.config.get("alibi", False)
    if rope:
        non_layer += 2 * sh.head_dim * res * s_len             # cos and sin in the hidden-state dtype
    elif arch.family.model_type == "gpt2" and setup.method == "full":
        non_layer += 8 * setup.seq_len                         # position ids for the trainable wpe
    full = setup.method == "full"
    non_layer += (4 * sh.hidden + 4) * T + (res * sh.hidden * T if full else 0)  # final norm
    if full:
        head_in = res if not reg.amp or res == reg.compute else reg.compute
        non_layer += head_in * sh.hidden * T                   # lm_head input, for d/dW
    head_bytes = res
    if reg.amp and head_bytes != reg.compute:
        # autocast's bf16 copy of the fp32 lm_head weight (cached if it trains, uncached if frozen) is saved
        # for the input gradient; tied weights are the same tensor as the embedding
        non_layer += reg.compute * sh.vocab * sh.hidden
        casts += reg.compute * sh.vocab * sh.hidden

    loss_saved = _loss_saved(arch, setup)
    if setup.gradient_checkpointing:
        # each layer keeps its positional input (torch.utils.checkpoint non-reentrant: _NoopSaveInputs)
        ckpt = res * sh.hidden * T
        return ActivationBreakdown(per_layer=ckpt, first_layer=ckpt, layers=L, non_layer=non_layer,
                                   weight_casts=_nonlayer_casts(reg, sh), loss_saved=loss_saved,
                                   recompute_layer=per_layer, per_token_layer=per_token_layer, checkpointed=True)
    return ActivationBreakdown(per_layer=per_layer, first_layer=sum_layers - (L - 1) * per_layer, layers=L,
                               non_layer=non_layer, weight_casts=casts, loss_saved=loss_saved,
                               recompute_layer=per_layer, per_token_layer=per_token_layer, checkpointed=False)


def _nonlayer_casts(reg: _Regime, sh: _Shape) -> int:
    return reg.compute * sh.vocab * sh.hidden if reg.amp and reg.residual != reg.compute else 0


def _loss_saved(arch: Architecture, setup: TrainingSetup) -> int:
    """fp32 log-softmax output (4V per token; also with chunking, which saves every chunk's output in eager
    mode - memory-model §3.4) + int64 shifted labels (8 per token)."""
    return (4 * arch.vocab_size + 8) * setup.tokens


def activation_bytes(arch: Architecture, setup: TrainingSetup) -> int:
    """Bytes the model keeps for backward at the end of the forward (decoder layers + embedding, final norm,
    lm_head and RoPE tables; the loss's log-softmax excluded - it is under ``logits_and_loss``).
    See :func:`activation_breakdown` for the rules and sources."""
    return activation_breakdown(arch, setup).total


# -- weights and trainable state --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Tensor:
    """A group of identical trainable tensors: ``numel`` elements each, ``count`` of them, ``itemsize`` bytes."""

    numel: int
    count: int
    itemsize: int

    @property
    def bytes(self) -> int:
        return self.numel * self.count * self.itemsize


def trainable_tensors(arch: Architecture, setup: TrainingSetup) -> tuple[_Tensor, ...]:
    """Every trainable parameter tensor (grouped), with its dtype size.

    Full: every parameter in ``base_precision`` (tied weights once). LoRA/QLoRA (PEFT, calc.lora counts):
    ``lora_A`` (``r·in``) and ``lora_B`` (``out·r``) per adapted module in ``adapter_dtype``, DoRA's
    magnitude (``out``), biases made trainable and ``modules_to_save`` copies in the dense dtype."""
    if setup.method == "full":
        w = BYTES[setup.base_precision]
        out = []
        for m in arch.modules:
            out.append(_Tensor(m.weight_params, m.count, w))
            if m.bias:
                out.append(_Tensor(m.out_features, m.count, w))
        for n in arch.norms + (arch.final_norm,):
            out.append(_Tensor(n.size, n.count * (2 if n.bias else 1), w))
        for e in arch.embeddings:
            out.append(_Tensor(e.params, 1, w))
        if not arch.tie_word_embeddings:
            out.append(_Tensor(arch.lm_head.params, 1, w))
        return tuple(out)
    count = count_lora(arch, setup.lora)
    a = BYTES[setup.adapter_dtype]
    dense = BYTES[setup.dense_dtype]
    out = []
    for m in count.modules:
        experts = m.experts if m.kind == "experts" else 1
        out.append(_Tensor(experts * m.r * m.in_features, m.count, a))
        out.append(_Tensor(experts * m.r * m.out_features, m.count, a))
        if m.dora_params:
            out.append(_Tensor(m.out_features, m.count, a))
        if m.bias_params:
            out.append(_Tensor(m.bias_params // m.count, m.count, dense))
    if count.other_bias_params:
        out.append(_Tensor(count.other_bias_params, 1, dense))
    for _, n in count.modules_to_save:
        out.append(_Tensor(n, 1, dense))
    return tuple(out)


def weight_bytes(arch: Architecture, setup: TrainingSetup) -> tuple[int, int]:
    """(base model weights, new trainable parameters that add storage) in bytes.

    Base (memory-model §3.1): every parameter in ``base_precision``; QLoRA: :func:`calc.quant.model_weight_bytes`
    (bitsandbytes' packed 4-bit data + absmax/nested state/code tables per Linear, §2.3; embeddings, lm_head and
    norms in the dense dtype - fp32 after ``prepare_model_for_kbit_training``, §2.5). Added: LoRA A/B (and
    DoRA magnitudes) in the adapter dtype, ``modules_to_save`` copies in the dense dtype (PEFT keeps the
    original too, §1.2)."""
    from calc.quant_storage import model_weight_bytes

    if setup.method == "qlora":
        base = model_weight_bytes(arch, setup.base_precision, setup.bnb_4bit_use_double_quant,
                                  dtype=setup.dense_dtype).total_bytes
    else:
        base = model_weight_bytes(arch, setup.base_precision).total_bytes
    if setup.method == "full":
        return base, 0
    count = count_lora(arch, setup.lora)
    added = count.lora_params * BYTES[setup.adapter_dtype] + count.modules_to_save_params * BYTES[setup.dense_dtype]
    return base, added


def _state_bytes(t: _Tensor, optimizer: str) -> int:
    """Optimizer state on the allocator for one tensor group (memory-model §3.2).

    torch AdamW: ``exp_avg`` and ``exp_avg_sq`` = ``zeros_like(p)`` (``torch/optim/adam.py``), so 2× the
    parameter bytes (the ``step`` counters live on the CPU, except for ``fused``: a 0-d tensor on the device,
    one 512 B block each). bitsandbytes 8-bit: uint8 states + one fp32 absmax per 256 elements each, for
    tensors of at least ``min_8bit_size`` = 4096 elements, fp32 states below; paged variants allocate state
    buffers of >= 1e5 elements with ``cudaMallocManaged``, which the torch allocator does not see
    (``bitsandbytes/optim/optimizer.py`` ``get_state_buffer``). SGD with momentum: one ``momentum_buffer``."""
    n = t.numel
    if optimizer == "adamw":
        one = 2 * n * t.itemsize
    elif optimizer == "adamw_fused":
        one = 2 * n * t.itemsize + 512
    elif optimizer in ("adamw_8bit", "paged_adamw_8bit"):
        paged = optimizer.startswith("paged") and n >= BNB_PAGED_MIN_NUMEL
        if n >= BNB_MIN_8BIT_SIZE:
            one = (0 if paged else 2 * n) + 2 * 4 * math.ceil(n / BNB_8BIT_BLOCK)
        else:
            one = 0 if paged else 8 * n
    elif optimizer == "paged_adamw_32bit":
        one = 0 if n >= BNB_PAGED_MIN_NUMEL else 8 * n
    else:  # sgd
        one = n * t.itemsize
    return one * t.count


def _step_temporary(tensors: tuple[_Tensor, ...], optimizer: str) -> int:
    """Extra memory inside ``optimizer.step()``: torch's foreach AdamW allocates
    ``torch._foreach_sqrt(exp_avg_sqs)`` for a whole (device, dtype) group at once (``_multi_tensor_adam``),
    i.e. one state-sized list for the largest dtype group (memory-model §3.5 [M]: 105.0 vs 84.3 MiB). Fused
    AdamW, bitsandbytes (per-tensor kernels) and momentum SGD (in-place foreach) allocate nothing sizable."""
    if optimizer != "adamw":
        return 0
    groups: dict[int, int] = {}
    for t in tensors:
        groups[t.itemsize] = groups.get(t.itemsize, 0) + t.bytes
    return max(groups.values(), default=0)


# -- sharding -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Share:
    """Fractions of each model-state term one GPU holds (ZeRO, Rajbhandari et al. 2019, §5 / Fig. 1;
    FSDP, Zhao et al. 2023; memory-model §6)."""

    weights: float = 1.0
    adapters: float = 1.0
    grads: float = 1.0
    states: float = 1.0


def _share(setup: TrainingSetup) -> _Share:
    n = setup.num_gpus
    sh = setup.sharding
    if n == 1 or sh == "none":
        return _Share()
    if sh == "zero1":                           # P_os
        return _Share(states=1 / n)
    if sh == "zero2":                           # P_os+g
        return _Share(grads=1 / n, states=1 / n)
    return _Share(weights=1 / n, adapters=1 / n, grads=1 / n, states=1 / n)   # zero3 / FSDP full shard / fsdp_qlora


def _unit_buffer(arch: Architecture, setup: TrainingSetup) -> int:
    """ZeRO-3 / FSDP gather each wrapped unit (a decoder layer) before use and prefetch the next one: about
    two layers' unsharded parameters live at a time, plus a reduce-scatter buffer of one layer's gradients
    in backward (memory-model §6). For fsdp_qlora the gathered data is the packed 4-bit storage
    (``bnb_4bit_quant_storage=bf16``); the quant state is not an FSDP parameter and is never sharded
    (fsdp_qlora ``train.py`` L235-238)."""
    from calc.quant_storage import tensor_storage_bytes

    L = arch.num_hidden_layers
    if setup.method == "qlora":
        layer = sum(m.count * m.experts * tensor_storage_bytes(m.in_features * m.out_features, setup.base_precision,
                                                               double_quant=setup.bnb_4bit_use_double_quant)
                    for m in arch.modules if m.kind in ("linear", "conv1d")) / L
    else:
        layer = arch.layer_params * BYTES[setup.base_precision] / L
    grads = 0.0
    if setup.method == "full":
        grads = arch.layer_params * BYTES[setup.base_precision] / L
    else:
        grads = sum(t.bytes for t in trainable_tensors(arch, setup)) / L
    return int(2 * layer + grads)


def _quant_state_bytes(arch: Architecture, setup: TrainingSetup) -> int:
    """Bytes of bitsandbytes' absmax / nested state / code tables (not sharded by FSDP, §6)."""
    from calc.quant_storage import tensor_storage_bytes

    total = 0
    for m in arch.modules:
        if m.kind not in ("linear", "conv1d"):
            continue
        n = m.in_features * m.out_features
        total += m.count * m.experts * (tensor_storage_bytes(n, setup.base_precision,
                                                             double_quant=setup.bnb_4bit_use_double_quant)
                                        - (n + 1) // 2)
    return total


# -- the estimate -----------------------------------------------------------------------------------------------
def _components(**values: int) -> tuple[tuple[str, int], ...]:
    return tuple((name, int(values.get(name, 0))) for name in COMPONENTS)


def estimate_memory(arch: Architecture, setup: TrainingSetup) -> MemoryEstimate:
    """The modelled peak of ``torch.cuda.max_memory_allocated`` over training steps 2+ (bytes).

    Steady state (memory-model §0, §3.1-§3.2): ``weights`` (base model), ``adapter_weights`` (LoRA/DoRA
    parameters, ``modules_to_save`` copies), ``optimizer_states``, ``master_weights`` (fp32 copies when the
    optimizer keeps them), plus ``transients`` for the cuBLAS workspaces (:data:`CUDA_WORKSPACE_BYTES`).
    On top of it each phase (see the module docstring) adds ``activations`` (:func:`activation_breakdown`),
    ``logits_and_loss`` (§3.4: the saved fp32 log-softmax ``4V·T``, int64 labels ``8T``, and at its backward
    the fp32 gradient buffers ``8V·T`` - ``8V·T/chunks`` with a chunked loss - plus the output logits if
    they stay referenced), ``gradients`` (all of them at the optimizer step; with gradient accumulation
    they stay resident) and the phase's ``transients``. The peak is the largest phase; its components are
    the estimate's ``components``.

    Multi-GPU (§6): model states are divided as ZeRO-1/2/3 / FSDP do; activations are not sharded. DDP
    (``sharding="none"``) keeps its gradient buckets, one more gradient-sized buffer (torch
    ``DistributedDataParallel(gradient_as_bucket_view=False)``, the default: "the saved memory size will be
    equal to the total gradients size" when set to True); ZeRO-3/FSDP add the gathered-unit buffers
    (:func:`_unit_buffer`).
    """
    if setup.sharding in ("zero3", "fsdp_full_shard", "fsdp_qlora") and setup.num_gpus > arch.num_hidden_layers:
        raise CalcError(f"{setup.sharding} shards by decoder layer: {setup.num_gpus} GPUs for "
                        f"{arch.num_hidden_layers} layers leaves GPUs with nothing to hold", field="num_gpus")
    if setup.sharding != "none" and setup.num_gpus == 1:
        raise CalcError(f"sharding={setup.sharding!r} needs num_gpus >= 2", field="sharding")
    T = setup.tokens
    V = arch.vocab_size
    h = arch.hidden_size
    share = _share(setup)
    acts = activation_breakdown(arch, setup)
    tensors = trainable_tensors(arch, setup)
    base, added = weight_bytes(arch, setup)
    grads_total = sum(t.bytes for t in tensors)
    states = sum(_state_bytes(t, setup.optimizer) for t in tensors)
    master = sum(4 * t.numel * t.count for t in tensors) if setup.master_weights else 0
    if setup.master_weights and setup.optimizer != "sgd":
        states = sum(_state_bytes(_Tensor(t.numel, t.count, 4), setup.optimizer) for t in tensors)
    workspace = CUDA_WORKSPACE_BYTES if setup.cuda_workspace_bytes is None else setup.cuda_workspace_bytes

    if setup.sharding == "fsdp_qlora":
        qstate = _quant_state_bytes(arch, setup)
        weights = int((base - qstate) * share.weights) + qstate
    elif setup.method == "full":
        weights = int(base * share.weights)
    else:
        weights = int(base * share.weights)
    adapters = int(added * share.adapters)
    grads = int(grads_total * share.grads)
    states = int(states * share.states)
    master = int(master * share.states)
    fixed = workspace
    if setup.num_gpus > 1:
        if setup.sharding == "none":
            fixed += grads_total                              # DDP gradient buckets
        elif setup.sharding in ("zero3", "fsdp_full_shard", "fsdp_qlora"):
            fixed += _unit_buffer(arch, setup)
    resident_grads = grads if setup.gradient_accumulation_steps > 1 else 0
    steady = dict(weights=weights, adapter_weights=adapters, optimizer_states=states, master_weights=master)

    # logits and loss (§3.4)
    logits_dtype = 2 if setup.amp else BYTES[setup.dense_dtype]
    kept = logits_dtype * V * T if setup.keep_logits else 0
    chunks = setup.loss_chunks if setup.loss == "chunked" else 1
    loss_buffers = 8 * V * T // chunks
    phases = [Phase("loss_backward", _components(
        **steady, gradients=resident_grads, activations=acts.total,
        logits_and_loss=acts.loss_saved + loss_buffers + kept, transients=fixed))]

    reg = _regime(arch, setup)
    if setup.method == "full":
        # lm_head backward: grad of the logits (logits dtype) and of the weight (compute dtype under autocast,
        # then cast to the parameter dtype) while every saved activation is still alive
        p = BYTES[setup.base_precision]
        wgrad = (2 if setup.amp else p) * V * h
        at_mm = logits_dtype * V * T + wgrad
        at_cast = wgrad + (p * V * h if setup.amp and p != 2 else 0)
        head_grad = p * V * h if at_cast > at_mm else 0
        phases.append(Phase("lm_head_backward", _components(
            **steady, gradients=resident_grads + head_grad, activations=acts.total,
            logits_and_loss=kept, transients=fixed + max(at_mm, at_cast) - head_grad)))
    if setup.gradient_checkpointing:
        # torch.utils.checkpoint (non-reentrant) re-runs each layer's forward inside backward, last layer first,
        # then runs that layer's backward. Traced op by op on the CPU (tests/verify/test_activation_memory.py,
        # a StorageTracker logging every allocation and free): while layer i is recomputed and back-propagated
        # the live memory is
        #   * the checkpoints of layers 0..i (layer j's input is freed once layer j's backward has run) and
        #     the non-layer tensors still referenced: the checkpoint kwargs' position ids and the RoPE tables
        #     (the final norm's and lm_head's saved tensors were freed by their backward);
        #   * the parameter gradients produced so far: lm_head and the final norm (full FT; a tied lm_head's
        #     gradient is the embedding's) and every layer above i - the embedding's own comes last;
        #   * the 0-d loss and the seed gradient ``ones_like(loss)`` autograd keeps for the whole backward;
        #   * the layer's gradient of its output (residual dtype) and its saved set, rebuilt in forward order;
        #   * the layer's temporaries at its widest moment, one of two (both traced):
        #     A) recompute forward at the MLP's down projection - the recompute stops (early stop) right
        #        after the last tensor it must save, PEFT's lora_B weight cast: the down input, its cast to the
        #        adapter dtype, the residual, the post-attention norm output and the base result (plus, for
        #        4-bit bases, the weight bnb dequantizes in the backward, memory-model §2.3);
        #     B) backward of the MLP: down's backward has freed its saved input (full FT) and produced the
        #        gradient of that input and the weight's gradient; MulBackward then allocates the gradients
        #        of both factors while the first is alive (3 intermediate-sized gradients).
        # Layer gradients grow and checkpoints shrink linearly in i, so the largest is at i = 0 or i = L-1.
        # (The loss phase dominates for real vocabularies; this moment sets the peak when V/h is small.)
        L = arch.num_hidden_layers
        full = setup.method == "full"
        act = reg.compute if reg.amp else reg.residual
        persist = acts.total - acts.weight_casts - (4 * h + 4) * T
        if full:
            head_in = reg.residual if not reg.amp or reg.residual == reg.compute else reg.compute
            persist -= (reg.residual + head_in) * h * T               # final norm output and lm_head input
        ckpt = acts.per_layer                                         # one layer's checkpointed input
        p_bytes = BYTES[setup.base_precision] if full else 0
        if full:
            layer_grads = arch.layer_params * p_bytes / L
            early_grads = grads_total - L * layer_grads - (0 if arch.tie_word_embeddings
                                                           else arch.embedding_params * p_bytes)
        else:
            # adapters live in the layers; modules_to_save copies (embeddings, lm_head) are treated as produced
            # before the layers (an upper bound for an embedding copy)
            outside = count_lora(arch, setup.lora).modules_to_save_params * BYTES[setup.dense_dtype]
            layer_grads = (grads_total - outside) / L
            early_grads = outside
        widest_mod = max((m for m in arch.modules if m.group in ("mlp", "shared_expert")),
                         key=lambda m: m.in_features, default=None)
        widest = widest_mod.in_features if widest_mod else h
        cast = reg.adapter if not full and not (reg.quantized and reg.amp) else 0
        fwd_tmp = T * (widest * (reg.compute + cast) + h * (2 * reg.residual + 2 * reg.compute))
        if reg.quantized:
            fwd_tmp += max((2 * m.in_features * m.out_features for m in arch.modules
                            if m.kind in ("linear", "conv1d")), default=0)
        if full:
            down_w = p_bytes * widest * (widest_mod.out_features if widest_mod else h)
            bwd_tmp = T * widest * act * 2 + down_w                  # dp + both product grads - p + dW_down
        else:
            bwd_tmp = T * widest * act * 3
        loss_scalars = 2 * 512                                        # 0-d loss + its seed gradient
        best = None
        for i in sorted({0, L - 1}):
            produced = resident_grads if setup.gradient_accumulation_steps > 1 else int(
                (early_grads + (L - 1 - i) * layer_grads) * share.grads)
            ph = Phase("layer_recompute", _components(
                **steady, gradients=produced, activations=persist - (L - 1 - i) * ckpt + acts.recompute_layer,
                logits_and_loss=kept + loss_scalars,
                transients=fixed + reg.residual * h * T + max(fwd_tmp, bwd_tmp)))
            if best is None or ph.total > best.total:
                best = ph
        phases.append(best)
    if setup.method != "full" and setup.lora.use_dora:
        phases.append(Phase("forward_dora", _components(
            **steady, gradients=resident_grads, activations=acts.total + (acts.recompute_layer
                                                                          if setup.gradient_checkpointing else 0),
            transients=fixed + _dora_transient(arch, setup))))
    # end of backward / optimizer step
    step_tmp = int(_step_temporary(tensors, setup.optimizer) * share.states)
    tied_tmp = 0
    if setup.method == "full" and arch.tie_word_embeddings:
        tied_tmp = BYTES[setup.base_precision] * V * h       # embedding grad accumulated into lm_head's
    phases.append(Phase("optimizer_step", _components(
        **steady, gradients=grads, transients=fixed + max(step_tmp, tied_tmp))))

    peak = max(phases, key=lambda ph: ph.total)
    n = setup.num_gpus
    context = CUDA_CONTEXT_BYTES
    if n > 1:
        comps = tuple((name, b * n) for name, b in peak.components)
        return MemoryEstimate(components=comps, total_bytes=peak.total * n, cuda_context_bytes=context,
                              phase=peak.name, phases=tuple(phases), activations=acts, num_gpus=n,
                              per_gpu_bytes=peak.total, per_gpu_components=peak.components)
    return MemoryEstimate(components=peak.components, total_bytes=peak.total, cuda_context_bytes=context,
                          phase=peak.name, phases=tuple(phases), activations=acts)


def _dora_transient(arch: Architecture, setup: TrainingSetup) -> int:
    """PEFT DoRA's per-call forward temporaries for the largest adapted module (``dora.py``): the identity
    ``eye(in)`` in the adapter dtype and its autocast copy, the dense ``lora_B(lora_A(eye))`` in the input
    dtype, the base weight cast to the input dtype and ``W + s·BA`` (dequantized first for 4-bit bases) -
    memory-model §1.4 ("model these as a per-call transient equal to the largest adapted layer")."""
    count = count_lora(arch, setup.lora)
    a = BYTES[setup.adapter_dtype]
    x_dtype = a if setup.method == "lora" or not setup.amp else BYTES[setup.dense_dtype]
    best = 0
    for m in count.modules:
        if not m.dora_params:
            continue
        fin, fout = m.in_features, m.out_features
        eye = fin * fin * (a + (2 if setup.amp and a != 2 else 0))
        dense = fin * fout * (3 * x_dtype)
        best = max(best, max(eye, 2 * fin * fin + dense))
    return best
