"""What each supported ``model_type`` looks like, as data.

One :class:`Family` per Hugging Face ``model_type``. Shapes are small functions of the resolved config
(``c.hidden_size`` …), written once here; :mod:`calc.architecture` evaluates them and :mod:`calc.lora`
applies PEFT's targeting rules to the result. Nothing outside this table knows a family by name.

Sources (transformers 5.23.0, the release the verify suite pins):
``models/<model_type>/modeling_<model_type>.py`` for module shapes, biases and norms, and
``models/<model_type>/configuration_<model_type>.py`` for defaults. PEFT 0.21.2 for targeting:
``peft/tuners/tuners_utils.py`` (``all-linear`` = every ``nn.Linear``/``Conv1D`` except the output layer)
and ``peft/utils/transformers_weight_conversion.py`` (the MoE rewrite, see :attr:`Family.param_targets`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping


class Cfg:
    """A resolved config: canonical key -> value, read as attributes (``c.hidden_size``)."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:  # pragma: no cover - immutability guard
        raise AttributeError("Cfg is immutable")

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)


Shape = Callable[[Cfg], int]
Flag = Callable[[Cfg], bool]
LayerFilter = Callable[[Cfg, int], bool]


def _always(c: Cfg) -> bool:
    return True


def _never(c: Cfg) -> bool:
    return False


def _every_layer(c: Cfg, i: int) -> bool:
    return True


@dataclass(frozen=True)
class ModuleRule:
    """One weight matrix (or stack of expert matrices) that a decoder layer may hold.

    ``path`` is the module path inside a layer, as transformers names it (``self_attn.q_proj``); its last
    component is the name PEFT's ``target_modules`` matches. ``kind`` is ``linear`` (``nn.Linear``),
    ``conv1d`` (GPT-2's ``Conv1D``, same parameter count), ``experts`` (a 3-D ``nn.Parameter`` of
    ``experts`` stacked matrices, transformers v5 MoE) or ``router`` (a 2-D weight inside a custom module).
    """

    path: str
    in_features: Shape
    out_features: Shape
    group: str
    kind: str = "linear"
    bias: Flag = _never
    layers: LayerFilter = _every_layer
    present: Flag = _always
    experts: Shape = lambda c: 1

    @property
    def leaf(self) -> str:
        return self.path.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class NormRule:
    """A norm's weight (and bias, for LayerNorm) of ``size(c)`` elements in each matching layer."""

    path: str
    size: Shape
    bias: bool = False
    layers: LayerFilter = _every_layer
    present: Flag = _always


@dataclass(frozen=True)
class EmbeddingRule:
    """A lookup table of ``rows(c) x hidden_size`` outside the layers (token or position embeddings)."""

    path: str
    rows: Shape


@dataclass(frozen=True)
class Family:
    """Everything calc knows about one ``model_type``.

    ``required`` keys must be in the config; ``defaults`` are transformers' config-class defaults for the
    optional ones (a callable default sees the keys resolved so far). ``aliases`` maps config.json spellings
    (GPT-2's ``n_embd``) to the canonical key. ``param_targets`` is PEFT 0.21.2's MoE rewrite under
    transformers v5: a ``target_modules`` name on the left becomes a *parameter* target on the right, and
    ``fused`` lists the names that must be targeted together because their weights are stored fused (PEFT
    then gives that parameter rank ``len(names) * r`` and alpha ``len(names) * lora_alpha``).
    """

    model_type: str
    label: str
    layer_prefix: str
    required: tuple[str, ...]
    defaults: Mapping[str, Any]
    modules: tuple[ModuleRule, ...]
    norms: tuple[NormRule, ...]
    embeddings: tuple[EmbeddingRule, ...]
    final_norm: NormRule
    lm_head: str = "lm_head"
    aliases: Mapping[str, str] = field(default_factory=dict)
    shortcuts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    param_targets: Mapping[str, str] = field(default_factory=dict)
    fused: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    kv_heads: Shape = lambda c: c.num_key_value_heads
    notes: str = ""

    @property
    def embed_name(self) -> str:
        return self.embeddings[0].path.rsplit(".", 1)[-1]


# --- shape helpers shared by the Llama-like families -------------------------------------------------
def H(c: Cfg) -> int:
    return c.hidden_size


def Q(c: Cfg) -> int:
    return c.num_attention_heads * c.head_dim


def KV(c: Cfg) -> int:
    return c.num_key_value_heads * c.head_dim


def I(c: Cfg) -> int:  # noqa: E743 - the paper's name for the MLP width
    return c.intermediate_size


def _key(name: str) -> Flag:
    return lambda c: bool(c.get(name))


def _attention(q_bias: Flag = _never, kv_bias: Flag | None = None, o_bias: Flag = _never) -> tuple[ModuleRule, ...]:
    kv_bias = q_bias if kv_bias is None else kv_bias
    return (
        ModuleRule("self_attn.q_proj", H, Q, "attention", bias=q_bias),
        ModuleRule("self_attn.k_proj", H, KV, "attention", bias=kv_bias),
        ModuleRule("self_attn.v_proj", H, KV, "attention", bias=kv_bias),
        ModuleRule("self_attn.o_proj", Q, H, "attention", bias=o_bias),
    )


def _mlp(prefix: str = "mlp", width: Shape = I, bias: Flag = _never, layers: LayerFilter = _every_layer,
         group: str = "mlp") -> tuple[ModuleRule, ...]:
    return (
        ModuleRule(f"{prefix}.gate_proj", H, width, group, bias=bias, layers=layers),
        ModuleRule(f"{prefix}.up_proj", H, width, group, bias=bias, layers=layers),
        ModuleRule(f"{prefix}.down_proj", width, H, group, bias=bias, layers=layers),
    )


def _norms(*paths: str) -> tuple[NormRule, ...]:
    return tuple(NormRule(p, H) for p in paths)


def _half_head_default(c: Mapping[str, Any]) -> int:
    return c["hidden_size"] // c["num_attention_heads"]


def _kv_default(c: Mapping[str, Any]) -> int:
    return c["num_attention_heads"]


LLAMA_CORE = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
LLAMA_SHORTCUTS = MappingProxyType({
    "qv": ("q_proj", "v_proj"),
    "attention": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "mlp": ("gate_proj", "up_proj", "down_proj"),
})
TOKENS = EmbeddingRule("model.embed_tokens", lambda c: c.vocab_size)
RMS_FINAL = NormRule("model.norm", H)


def _llama_like(model_type: str, label: str, *, modules: tuple[ModuleRule, ...], norms: tuple[NormRule, ...],
                defaults: Mapping[str, Any], required: tuple[str, ...] = LLAMA_CORE, **extra: Any) -> Family:
    return Family(
        model_type=model_type, label=label, layer_prefix="model.layers", required=required,
        defaults=MappingProxyType(dict(defaults)), modules=modules, norms=norms, embeddings=(TOKENS,),
        final_norm=RMS_FINAL, shortcuts=extra.pop("shortcuts", LLAMA_SHORTCUTS), **extra,
    )


_STD_NORMS = _norms("input_layernorm", "post_attention_layernorm")
_SANDWICH_NORMS = _norms("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                         "post_feedforward_layernorm")
_HEAD_NORMS = (NormRule("self_attn.q_norm", lambda c: c.head_dim), NormRule("self_attn.k_norm", lambda c: c.head_dim))


def _moe_layer_qwen2(c: Cfg, i: int) -> bool:
    # modeling_qwen2_moe.Qwen2MoeDecoderLayer: sparse unless listed in mlp_only_layers or off the step
    return i not in c.mlp_only_layers and c.num_experts > 0 and (i + 1) % c.decoder_sparse_step == 0


def _dense_layer_qwen2(c: Cfg, i: int) -> bool:
    return not _moe_layer_qwen2(c, i)


def _moe_layer_deepseek(c: Cfg, i: int) -> bool:
    # modeling_deepseek_v2.DeepseekV2DecoderLayer: MoE from layer first_k_dense_replace on
    return i >= c.first_k_dense_replace


def _dense_layer_deepseek(c: Cfg, i: int) -> bool:
    return not _moe_layer_deepseek(c, i)


def _falcon_qkv_out(c: Cfg) -> int:
    # modeling_falcon.FalconAttention.__init__
    if c.new_decoder_architecture:
        return (c.num_kv_heads * 2 + c.num_attention_heads) * c.head_dim
    if c.multi_query:
        return c.hidden_size + 2 * c.head_dim
    return 3 * c.hidden_size


def _falcon_kv_heads(c: Cfg) -> int:
    if c.new_decoder_architecture:
        return c.num_kv_heads
    return 1 if c.multi_query else c.num_attention_heads


def _falcon_two_ln(c: Cfg) -> bool:
    # FalconDecoderLayer: num_ln_in_parallel_attn defaults to 2 only for the new decoder architecture
    n = c.num_ln_in_parallel_attn
    if n is None and c.new_decoder_architecture:
        n = 2
    return bool(c.parallel_attn and n == 2)


def _ds_qk_head(c: Cfg) -> int:
    return c.qk_nope_head_dim + c.qk_rope_head_dim


def _has_q_lora(c: Cfg) -> bool:
    return c.q_lora_rank is not None


FAMILIES: Mapping[str, Family] = MappingProxyType({f.model_type: f for f in (
    _llama_like(
        "llama", "Llama (Llama 2/3, TinyLlama, SmolLM2)",
        modules=_attention(_key("attention_bias"), o_bias=_key("attention_bias")) + _mlp(bias=_key("mlp_bias")),
        norms=_STD_NORMS,
        defaults={"num_key_value_heads": _kv_default, "head_dim": _half_head_default, "tie_word_embeddings": False,
                  "attention_bias": False, "mlp_bias": False},
    ),
    _llama_like(
        "mistral", "Mistral",
        modules=_attention() + _mlp(), norms=_STD_NORMS,
        defaults={"num_key_value_heads": 8, "head_dim": _half_head_default, "tie_word_embeddings": False},
    ),
    _llama_like(
        "mixtral", "Mixtral (sparse MoE)",
        modules=_attention() + (
            ModuleRule("mlp.gate", H, lambda c: c.num_local_experts, "router", kind="router"),
            ModuleRule("mlp.experts.gate_up_proj", H, lambda c: 2 * c.intermediate_size, "experts", kind="experts",
                       experts=lambda c: c.num_local_experts),
            ModuleRule("mlp.experts.down_proj", I, H, "experts", kind="experts",
                       experts=lambda c: c.num_local_experts),
        ),
        norms=_STD_NORMS,
        defaults={"num_key_value_heads": 8, "head_dim": _half_head_default, "tie_word_embeddings": False,
                  "num_local_experts": 8, "num_experts_per_tok": 2},
        shortcuts={**LLAMA_SHORTCUTS, "mlp": ("w1", "w2", "w3")},
        param_targets={"gate": "mlp.gate", "w1": "mlp.experts.gate_up_proj", "w3": "mlp.experts.gate_up_proj",
                       "w2": "mlp.experts.down_proj"},
        fused={"mlp.experts.gate_up_proj": ("w1", "w3")},
        notes="transformers v5 stores the experts as stacked 3-D parameters; PEFT rewrites the v4 names "
              "w1/w3 (fused into gate_up_proj at rank 2r), w2 and the router gate into parameter targets.",
    ),
    _llama_like(
        "qwen2", "Qwen2 / Qwen2.5",
        modules=_attention(_always) + _mlp(), norms=_STD_NORMS,
        defaults={"num_key_value_heads": 32, "head_dim": _half_head_default, "tie_word_embeddings": False},
    ),
    _llama_like(
        "qwen3", "Qwen3 (dense)",
        modules=_attention(_key("attention_bias"), o_bias=_key("attention_bias")) + _mlp(),
        norms=_STD_NORMS + _HEAD_NORMS,
        defaults={"num_key_value_heads": 32, "head_dim": 128, "tie_word_embeddings": False, "attention_bias": False},
    ),
    _llama_like(
        "qwen2_moe", "Qwen2-MoE / Qwen1.5-MoE",
        modules=_attention(_key("qkv_bias")) + _mlp(layers=_dense_layer_qwen2) + (
            ModuleRule("mlp.gate", H, lambda c: c.num_experts, "router", kind="router", layers=_moe_layer_qwen2),
            ModuleRule("mlp.experts.gate_up_proj", H, lambda c: 2 * c.moe_intermediate_size, "experts",
                       kind="experts", experts=lambda c: c.num_experts, layers=_moe_layer_qwen2),
            ModuleRule("mlp.experts.down_proj", lambda c: c.moe_intermediate_size, H, "experts", kind="experts",
                       experts=lambda c: c.num_experts, layers=_moe_layer_qwen2),
        ) + _mlp("mlp.shared_expert", lambda c: c.shared_expert_intermediate_size, layers=_moe_layer_qwen2,
                 group="shared_expert") + (
            ModuleRule("mlp.shared_expert_gate", H, lambda c: 1, "shared_expert", layers=_moe_layer_qwen2),
        ),
        norms=_STD_NORMS,
        defaults={"num_key_value_heads": 16, "head_dim": _half_head_default, "tie_word_embeddings": False,
                  "qkv_bias": True, "num_experts": 60, "num_experts_per_tok": 4, "moe_intermediate_size": 1408,
                  "shared_expert_intermediate_size": 5632, "decoder_sparse_step": 1, "mlp_only_layers": ()},
        notes="PEFT 0.21.2 does not rewrite qwen2_moe targets (transformers lists no conversion pattern for it): "
              "the routed experts are 3-D parameters that name-based targeting never reaches, and the router is a "
              "custom module; gate_proj/up_proj/down_proj hit the shared expert (and dense layers) only.",
    ),
    _llama_like(
        "gemma", "Gemma",
        modules=_attention(_key("attention_bias"), o_bias=_key("attention_bias")) + _mlp(), norms=_STD_NORMS,
        defaults={"num_key_value_heads": 16, "head_dim": 256, "tie_word_embeddings": True, "attention_bias": False},
    ),
    _llama_like(
        "gemma2", "Gemma 2",
        modules=_attention(_key("attention_bias"), o_bias=_key("attention_bias")) + _mlp(), norms=_SANDWICH_NORMS,
        defaults={"num_key_value_heads": 4, "head_dim": 256, "tie_word_embeddings": True, "attention_bias": False},
    ),
    _llama_like(
        "gemma3_text", "Gemma 3 (text)",
        modules=_attention(_key("attention_bias"), o_bias=_key("attention_bias")) + _mlp(),
        norms=_SANDWICH_NORMS + _HEAD_NORMS,
        defaults={"num_key_value_heads": 4, "head_dim": 256, "tie_word_embeddings": True, "attention_bias": False},
    ),
    _llama_like(
        "phi3", "Phi-3 / Phi-3.5 / Phi-4 (fused qkv_proj, gate_up_proj)",
        modules=(
            ModuleRule("self_attn.qkv_proj", H, lambda c: Q(c) + 2 * KV(c), "attention"),
            ModuleRule("self_attn.o_proj", Q, H, "attention"),
            ModuleRule("mlp.gate_up_proj", H, lambda c: 2 * c.intermediate_size, "mlp"),
            ModuleRule("mlp.down_proj", I, H, "mlp"),
        ),
        norms=_STD_NORMS,
        defaults={"num_key_value_heads": _kv_default, "head_dim": _half_head_default, "tie_word_embeddings": False},
        shortcuts={"qv": ("qkv_proj",), "attention": ("qkv_proj", "o_proj"), "mlp": ("gate_up_proj", "down_proj")},
        notes="q, k and v live in one fused qkv_proj (and gate/up in gate_up_proj): they cannot be targeted apart.",
    ),
    _llama_like(
        "olmo2", "OLMo 2",
        modules=_attention(_key("attention_bias"), o_bias=_key("attention_bias")) + _mlp(),
        norms=_norms("post_attention_layernorm", "post_feedforward_layernorm") + (
            NormRule("self_attn.q_norm", Q), NormRule("self_attn.k_norm", KV)),
        defaults={"num_key_value_heads": _kv_default, "head_dim": _half_head_default, "tie_word_embeddings": False,
                  "attention_bias": False},
    ),
    Family(
        model_type="falcon", label="Falcon (fused query_key_value, multi-query)", layer_prefix="transformer.h",
        required=("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads"),
        defaults=MappingProxyType({
            "head_dim": _half_head_default, "tie_word_embeddings": True, "multi_query": True,
            "new_decoder_architecture": False, "parallel_attn": True, "bias": False, "alibi": False,
            "num_kv_heads": lambda c: c["num_attention_heads"], "num_ln_in_parallel_attn": None,
            "ffn_hidden_size": lambda c: 4 * c["hidden_size"],
            "num_key_value_heads": lambda c: c["num_attention_heads"],
        }),
        # FalconConfig's attribute_map in transformers 5.23 (older n_layer/n_head/n_head_kv are not read)
        aliases={"n_embed": "hidden_size"},
        modules=(
            ModuleRule("self_attention.query_key_value", H, _falcon_qkv_out, "attention", bias=_key("bias")),
            ModuleRule("self_attention.dense", H, H, "attention", bias=_key("bias")),
            ModuleRule("mlp.dense_h_to_4h", H, lambda c: c.ffn_hidden_size, "mlp", bias=_key("bias")),
            ModuleRule("mlp.dense_4h_to_h", lambda c: c.ffn_hidden_size, H, "mlp", bias=_key("bias")),
        ),
        norms=(
            NormRule("input_layernorm", H, bias=True, present=lambda c: not _falcon_two_ln(c)),
            NormRule("post_attention_layernorm", H, bias=True, present=lambda c: not c.parallel_attn),
            NormRule("ln_attn", H, bias=True, present=_falcon_two_ln),
            NormRule("ln_mlp", H, bias=True, present=_falcon_two_ln),
        ),
        embeddings=(EmbeddingRule("transformer.word_embeddings", lambda c: c.vocab_size),),
        final_norm=NormRule("transformer.ln_f", H, bias=True),
        shortcuts={"qv": ("query_key_value",), "attention": ("query_key_value", "dense"),
                   "mlp": ("dense_h_to_4h", "dense_4h_to_h")},
        kv_heads=_falcon_kv_heads,
        notes="q, k and v live in one fused query_key_value; with multi_query all heads share one k and one v.",
    ),
    Family(
        model_type="gpt2", label="GPT-2 (Conv1D)", layer_prefix="transformer.h",
        required=("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads"),
        defaults=MappingProxyType({
            "head_dim": _half_head_default, "tie_word_embeddings": True, "max_position_embeddings": 1024,
            "intermediate_size": None, "num_key_value_heads": lambda c: c["num_attention_heads"],
        }),
        aliases={"n_embd": "hidden_size", "n_layer": "num_hidden_layers", "n_head": "num_attention_heads",
                 "n_positions": "max_position_embeddings", "n_inner": "intermediate_size"},
        modules=(
            ModuleRule("attn.c_attn", H, lambda c: 3 * c.hidden_size, "attention", kind="conv1d", bias=_always),
            ModuleRule("attn.c_proj", H, H, "attention", kind="conv1d", bias=_always),
            ModuleRule("mlp.c_fc", H, lambda c: c.intermediate_size or 4 * c.hidden_size, "mlp", kind="conv1d",
                       bias=_always),
            ModuleRule("mlp.c_proj", lambda c: c.intermediate_size or 4 * c.hidden_size, H, "mlp", kind="conv1d",
                       bias=_always),
        ),
        norms=(NormRule("ln_1", H, bias=True), NormRule("ln_2", H, bias=True)),
        embeddings=(EmbeddingRule("transformer.wte", lambda c: c.vocab_size),
                    EmbeddingRule("transformer.wpe", lambda c: c.max_position_embeddings)),
        final_norm=NormRule("transformer.ln_f", H, bias=True),
        shortcuts={"qv": ("c_attn",), "attention": ("c_attn", "attn.c_proj"), "mlp": ("c_fc", "mlp.c_proj")},
        notes="GPT-2 uses Conv1D (weight stored transposed) with one fused c_attn for q, k and v; 'c_proj' names "
              "both the attention output and the MLP output, 'attn.c_proj' / 'mlp.c_proj' pick one.",
    ),
    _llama_like(
        "deepseek_v2", "DeepSeek-V2 (MLA + MoE)",
        required=LLAMA_CORE + ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",
                               "moe_intermediate_size"),
        modules=(
            ModuleRule("self_attn.q_proj", H, lambda c: c.num_attention_heads * _ds_qk_head(c), "attention",
                       present=lambda c: not _has_q_lora(c)),
            ModuleRule("self_attn.q_a_proj", H, lambda c: c.q_lora_rank, "attention", bias=_key("attention_bias"),
                       present=_has_q_lora),
            ModuleRule("self_attn.q_b_proj", lambda c: c.q_lora_rank, lambda c: c.num_attention_heads * _ds_qk_head(c),
                       "attention", present=_has_q_lora),
            ModuleRule("self_attn.kv_a_proj_with_mqa", H, lambda c: c.kv_lora_rank + c.qk_rope_head_dim, "attention",
                       bias=_key("attention_bias")),
            ModuleRule("self_attn.kv_b_proj", lambda c: c.kv_lora_rank,
                       lambda c: c.num_attention_heads * (c.qk_nope_head_dim + c.v_head_dim), "attention"),
            ModuleRule("self_attn.o_proj", lambda c: c.num_attention_heads * c.v_head_dim, H, "attention",
                       bias=_key("attention_bias")),
        ) + _mlp(bias=_key("mlp_bias"), layers=_dense_layer_deepseek) + (
            ModuleRule("mlp.gate", H, lambda c: c.n_routed_experts, "router", kind="router",
                       layers=_moe_layer_deepseek),
            ModuleRule("mlp.experts.gate_up_proj", H, lambda c: 2 * c.moe_intermediate_size, "experts",
                       kind="experts", experts=lambda c: c.n_routed_experts, layers=_moe_layer_deepseek),
            ModuleRule("mlp.experts.down_proj", lambda c: c.moe_intermediate_size, H, "experts", kind="experts",
                       experts=lambda c: c.n_routed_experts, layers=_moe_layer_deepseek),
        ) + _mlp("mlp.shared_experts", lambda c: c.moe_intermediate_size * c.n_shared_experts,
                 bias=_key("mlp_bias"), layers=_moe_layer_deepseek, group="shared_expert"),
        norms=_STD_NORMS + (
            NormRule("self_attn.kv_a_layernorm", lambda c: c.kv_lora_rank),
            NormRule("self_attn.q_a_layernorm", lambda c: c.q_lora_rank or 0, present=_has_q_lora),
        ),
        defaults={"num_key_value_heads": _kv_default, "head_dim": lambda c: c.get("qk_rope_head_dim", 64),
                  "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False, "q_lora_rank": 1536,
                  "n_routed_experts": 64, "n_shared_experts": 2, "first_k_dense_replace": 0, "moe_layer_freq": 1,
                  "num_experts_per_tok": None},
        aliases={"num_experts": "n_routed_experts"},
        shortcuts={"qv": ("q_proj", "q_b_proj", "kv_b_proj"),
                   "attention": ("q_proj", "q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"),
                   "mlp": ("gate_proj", "up_proj", "down_proj")},
        param_targets={"gate": "mlp.gate", "gate_proj": "mlp.experts.gate_up_proj",
                       "up_proj": "mlp.experts.gate_up_proj", "down_proj": "mlp.experts.down_proj"},
        fused={"mlp.experts.gate_up_proj": ("gate_proj", "up_proj")},
        notes="PEFT 0.21.2 rewrites gate_proj/up_proj/down_proj into the routed experts' parameters (gate_up_proj "
              "at rank 2r) and gate into the router, so the dense first layer's MLP and the shared experts get no "
              "LoRA from those names or from all-linear. MLA has no v_proj: the 'qv' set uses kv_b_proj.",
    ),
)})

# Keys each value must have a type for; everything in a family's required/defaults is listed here.
INT_KEYS = frozenset({
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "max_position_embeddings", "num_local_experts", "num_experts_per_tok",
    "num_experts", "moe_intermediate_size", "shared_expert_intermediate_size", "decoder_sparse_step",
    "num_kv_heads", "num_ln_in_parallel_attn", "ffn_hidden_size", "q_lora_rank", "kv_lora_rank",
    "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "n_routed_experts", "n_shared_experts",
    "first_k_dense_replace", "moe_layer_freq",
})
BOOL_KEYS = frozenset({
    "tie_word_embeddings", "attention_bias", "mlp_bias", "qkv_bias", "multi_query", "new_decoder_architecture",
    "parallel_attn", "bias", "alibi",
})
LIST_KEYS = frozenset({"mlp_only_layers"})
# Integers that may legitimately be 0 (a count of something optional).
ZERO_OK = frozenset({"first_k_dense_replace", "num_experts", "n_shared_experts"})
# Optional keys that may be null in a config.json.
NULLABLE = frozenset({"head_dim", "intermediate_size", "q_lora_rank", "num_ln_in_parallel_attn",
                      "num_experts_per_tok", "num_key_value_heads"})
# ... and of those, the ones whose null is kept (it means "absent"), not replaced by the default.
KEEP_NULL = frozenset({"intermediate_size", "q_lora_rank", "num_ln_in_parallel_attn", "num_experts_per_tok"})


def family_keys(family: Family) -> frozenset[str]:
    """Every config key the family reads (canonical names and config.json aliases)."""
    return (frozenset(family.required) | frozenset(family.defaults) | frozenset(family.aliases)
            | {"model_type", "max_position_embeddings"})
