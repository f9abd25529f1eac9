"""Build transformers models on the meta device and read what PEFT does to them."""

from __future__ import annotations

import collections
import re
import warnings
from typing import Any, Mapping

from tests.verify.conftest import require

torch = require("torch")
transformers = require("transformers")
peft = require("peft")
transformers.logging.set_verbosity_error()
warnings.filterwarnings("ignore", category=UserWarning)

_LAYER = re.compile(r"^.*?\.(?:layers|h)\.\d+\.(.*)$")


def build_meta(config: Mapping[str, Any]):
    """The transformers model for a config.json dict, with no weights allocated."""
    cfg = transformers.AutoConfig.for_model(**dict(config))
    if getattr(cfg, "pad_token_id", None) is not None and cfg.pad_token_id >= cfg.vocab_size:
        cfg.pad_token_id = None  # tiny test vocabularies would trip nn.Embedding's padding_idx check
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(cfg)


def numel(model) -> int:
    return sum(p.numel() for p in model.parameters())


def peft_counts(model, **lora_kwargs) -> tuple[int, int, dict[str, int]]:
    """(trainable, all_param, per-module LoRA elements keyed like calc's module names)."""
    pm = peft.get_peft_model(model, peft.LoraConfig(**lora_kwargs))
    trainable, all_param = pm.get_nb_trainable_parameters()
    per: dict[str, int] = collections.Counter()
    from peft.tuners.lora import LoraLayer

    for name, module in pm.named_modules():
        if not isinstance(module, LoraLayer) or "default" not in getattr(module, "lora_A", {}):
            continue
        n = sum(p.numel() for p in module.lora_A["default"].parameters())
        n += sum(p.numel() for p in module.lora_B["default"].parameters())
        mag = getattr(module, "lora_magnitude_vector", None)
        if mag is not None and "default" in mag:
            n += sum(p.numel() for p in mag["default"].parameters())
        m = _LAYER.match(name)
        key = (m.group(1) if m else name).replace(".base_layer", "")
        param_name = getattr(module, "parameter_name", None)
        if param_name and param_name != "weight":
            key = f"{key}.{param_name}"
        per[key] += n
    return trainable, all_param, dict(per)
