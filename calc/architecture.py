"""The architecture model: a Hugging Face ``config.json`` in, every weight of the decoder out.

:meth:`Architecture.from_hf_config` resolves the config against :data:`calc.families.FAMILIES` and
returns every linear module of a decoder layer, the embeddings, the output layer and the norms, with
``total_params`` counting tied weights once — the number ``sum(p.numel() for p in model.parameters())``
gives for the transformers model built from the same config (checked by ``tests/verify``).
Units: parameter counts (elements), never bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from calc.errors import CalcError
from calc.families import (BOOL_KEYS, FAMILIES, INT_KEYS, KEEP_NULL, LIST_KEYS, NULLABLE, ZERO_OK, Cfg, Family,
                           ModuleRule, family_keys)

# Sizes beyond these are not a model anyone trains; they are typos or hostile input (and would make
# the arithmetic below produce numbers nobody can read).
MAX_DIM = 1 << 20          # hidden/intermediate/vocab/head sizes
MAX_LAYERS = 1 << 12
MAX_EXPERTS = 1 << 12
EXPERT_COUNT_KEYS = frozenset({"num_local_experts", "num_experts", "n_routed_experts", "n_shared_experts",
                               "num_experts_per_tok"})


@dataclass(frozen=True)
class LinearModule:
    """A weight matrix kind inside the decoder layers.

    ``name`` is its path inside a layer (``self_attn.q_proj``), ``target`` the leaf PEFT matches
    (``q_proj``). ``count`` is how many the model holds (layers that have it). ``experts`` > 1 means a
    stacked 3-D parameter (transformers v5 MoE): each of the ``count`` holds ``experts`` matrices.
    """

    name: str
    target: str
    in_features: int
    out_features: int
    bias: bool
    count: int
    group: str
    kind: str
    experts: int = 1

    @property
    def weight_params(self) -> int:
        """Elements of one instance's weight (all experts of a stack)."""
        return self.experts * self.in_features * self.out_features

    @property
    def params(self) -> int:
        """Elements in all ``count`` instances, bias included."""
        return self.count * (self.weight_params + (self.out_features if self.bias else 0))


@dataclass(frozen=True)
class Norm:
    name: str
    size: int
    bias: bool
    count: int

    @property
    def params(self) -> int:
        return self.count * self.size * (2 if self.bias else 1)


@dataclass(frozen=True)
class Embedding:
    name: str
    rows: int
    cols: int

    @property
    def params(self) -> int:
        return self.rows * self.cols


@dataclass(frozen=True)
class Architecture:
    """A decoder-only transformer as calc sees it. Build it with :meth:`from_hf_config`."""

    model_type: str
    family: Family
    config: Cfg
    modules: tuple[LinearModule, ...]
    norms: tuple[Norm, ...]
    final_norm: Norm
    embeddings: tuple[Embedding, ...]
    lm_head: Embedding
    tie_word_embeddings: bool

    # -- construction --------------------------------------------------------------------------------
    @classmethod
    def from_hf_config(cls, mapping: Mapping[str, Any]) -> "Architecture":
        """Build from a config.json dict; unknown keys are ignored, bad values raise :class:`CalcError`."""
        if not isinstance(mapping, Mapping):
            raise CalcError("a config must be a JSON object", field=None)
        model_type = mapping.get("model_type")
        if not isinstance(model_type, str) or model_type not in FAMILIES:  # a list/dict is unhashable
            known = ", ".join(sorted(FAMILIES))
            raise CalcError(f"unsupported model_type {_show(model_type)} (supported: {known})", field="model_type")
        family = FAMILIES[model_type]
        cfg = resolve_config(family, mapping)
        return cls._build(family, cfg)

    @classmethod
    def _build(cls, family: Family, c: Cfg) -> "Architecture":
        layers = range(c.num_hidden_layers)
        modules = []
        for rule in family.modules:
            if not rule.present(c):
                continue
            count = sum(1 for i in layers if rule.layers(c, i))
            if count == 0:
                continue
            modules.append(_module(rule, c, count))
        norms = []
        for n in family.norms:
            if not n.present(c):
                continue
            count = sum(1 for i in layers if n.layers(c, i))
            if count:
                norms.append(Norm(n.path, n.size(c), n.bias, count))
        fn = family.final_norm
        final_norm = Norm(fn.path, fn.size(c), fn.bias, 1)
        embeddings = tuple(Embedding(e.path, e.rows(c), c.hidden_size) for e in family.embeddings)
        lm_head = Embedding(family.lm_head, c.vocab_size, c.hidden_size)
        return cls(family.model_type, family, c, tuple(modules), tuple(norms), final_norm, embeddings, lm_head,
                   bool(c.tie_word_embeddings))

    # -- counts ---------------------------------------------------------------------------------------
    @property
    def num_hidden_layers(self) -> int:
        return self.config.num_hidden_layers

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def num_key_value_heads(self) -> int:
        return self.family.kv_heads(self.config)

    @property
    def layer_params(self) -> int:
        """Elements inside the decoder layers: linear weights and biases, experts, routers, layer norms."""
        return sum(m.params for m in self.modules) + sum(n.params for n in self.norms)

    @property
    def embedding_params(self) -> int:
        return sum(e.params for e in self.embeddings)

    @property
    def lm_head_params(self) -> int:
        """Elements of the output layer that are *not* shared with the input embedding."""
        return 0 if self.tie_word_embeddings else self.lm_head.params

    @property
    def total_params(self) -> int:
        """All elements, tied weights once: ``sum(p.numel() for p in model.parameters())``."""
        return self.layer_params + self.final_norm.params + self.embedding_params + self.lm_head_params

    def module(self, name: str) -> LinearModule:
        for m in self.modules:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def target_names(self) -> frozenset[str]:
        """Names ``target_modules`` may use for this architecture (leaf names and PEFT's MoE names)."""
        leaves = {m.target for m in self.modules if m.kind in ("linear", "conv1d")}
        return frozenset(leaves | set(self.family.param_targets))


def _module(rule: ModuleRule, c: Cfg, count: int) -> LinearModule:
    return LinearModule(
        name=rule.path, target=rule.leaf, in_features=rule.in_features(c), out_features=rule.out_features(c),
        bias=bool(rule.bias(c)) and rule.kind in ("linear", "conv1d"), count=count, group=rule.group,
        kind=rule.kind, experts=rule.experts(c),
    )


# -- config resolution --------------------------------------------------------------------------------
def resolve_config(family: Family, mapping: Mapping[str, Any]) -> Cfg:
    """Canonical keys with transformers' defaults filled in, types and ranges checked.

    Raises :class:`CalcError` naming the field for a missing required key, a wrong type, a size that is
    zero/negative/absurd, or a cross-field rule that transformers would trip over (KV heads not dividing
    heads, a hidden size the heads do not divide where head_dim is derived from it).
    """
    values: dict[str, Any] = {}
    for key, raw in mapping.items():
        canonical = family.aliases.get(key, key)
        if canonical not in family_keys(family) or key == "model_type":
            continue
        if canonical in values and values[canonical] != raw:
            raise CalcError(f"conflicts with another spelling of the same key ({_show(values[canonical])})", field=key)
        values[canonical] = raw
    for key, value in values.items():  # types first: defaults below compute with these values
        _check_type(key, value)
    for key in family.required:
        if values.get(key) is None:
            raise CalcError("is required", field=key)
    for key, default in family.defaults.items():
        if values.get(key) is None:
            if key in values and key in KEEP_NULL:
                continue  # an explicit null means "absent" here (DeepSeek-V2-Lite's q_lora_rank: null)
            values[key] = default(values) if callable(default) else default
    for key, value in values.items():
        _check_type(key, value)
    c = Cfg(values)
    _check_rules(family, c)
    return c


def _show(value: Any, limit: int = 60) -> str:
    """``repr`` for an error message, shortened; hostile values (an int of 5,000 digits, deep nesting) cannot
    make the message itself fail or run to many kilobytes."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # int -> str beyond sys.get_int_max_str_digits(), nesting
        return f"a {type(value).__name__} too large to show"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_type(key: str, value: Any) -> None:
    if value is None and key in NULLABLE:
        return
    if key in INT_KEYS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CalcError(f"must be an integer, got {_show(value)}", field=key)
        low = 0 if key in ZERO_OK else 1
        if value < low:
            raise CalcError(f"must be {'>= 0' if low == 0 else 'positive'}, got {_show(value)}", field=key)
        limit = MAX_LAYERS if key in ("num_hidden_layers", "first_k_dense_replace") else (
            MAX_EXPERTS if key in EXPERT_COUNT_KEYS else MAX_DIM * 4 if key == "max_position_embeddings" else MAX_DIM)
        if value > limit:
            raise CalcError(f"is absurdly large ({_show(value)}; limit {limit})", field=key)
    elif key in BOOL_KEYS:
        if not isinstance(value, bool):
            raise CalcError(f"must be true or false, got {_show(value)}", field=key)
    elif key in LIST_KEYS:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                           for v in value):
            raise CalcError(f"must be a list of layer indices, got {_show(value)}", field=key)


def _check_rules(family: Family, c: Cfg) -> None:
    heads = c.num_attention_heads
    kv = c.get("num_key_value_heads")
    if kv is not None and heads % kv:
        raise CalcError(f"num_key_value_heads ({kv}) must divide num_attention_heads ({heads})",
                        field="num_key_value_heads")
    if family.model_type == "falcon" and c.new_decoder_architecture and heads % c.num_kv_heads:
        raise CalcError(f"num_kv_heads ({c.num_kv_heads}) must divide num_attention_heads ({heads})",
                        field="num_kv_heads")
    derived = family.defaults.get("head_dim")
    if callable(derived) and derived.__name__ == "_half_head_default" and c.hidden_size % heads:
        raise CalcError(f"hidden_size ({c.hidden_size}) must be a multiple of num_attention_heads ({heads})"
                        " when head_dim is derived from it", field="hidden_size")
    if family.model_type in ("falcon", "gpt2") and c.head_dim * heads != c.hidden_size:
        raise CalcError(f"head_dim ({c.head_dim}) must equal hidden_size / num_attention_heads for "
                        f"{family.model_type}", field="head_dim")
    if c.get("num_experts_per_tok") and c.get("num_local_experts") and c.num_experts_per_tok > c.num_local_experts:
        raise CalcError("num_experts_per_tok exceeds num_local_experts", field="num_experts_per_tok")
    if family.model_type == "deepseek_v2" and c.first_k_dense_replace > c.num_hidden_layers:
        raise CalcError("first_k_dense_replace exceeds num_hidden_layers", field="first_k_dense_replace")
