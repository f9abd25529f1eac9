#!/usr/bin/env python3
"""Measure the real GPU memory peak of LoRA / QLoRA / full fine-tuning steps.

The numbers this script writes are the ground truth that the `calc` memory model
is validated against. Every point is one short training run (micro-batch 1,
random token ids, 3 optimizer steps) of a preset from ``calc/presets`` built
with *random* weights directly on the GPU, so nothing is downloaded.

Modes
-----
``point``      measure one configuration in this process and append one JSON line.
``prepare``    save a random bf16 checkpoint of a preset (needed by ``qlora``,
               which is loaded through transformers' BitsAndBytesConfig path).
``grid``       driver: run many points, each in a fresh subprocess so the CUDA
               context and the caching allocator start clean. ``--jobs N`` runs
               up to N points at once (see "Concurrency" below).
``summarize``  turn the raw JSON lines into the YAML file kept in
               ``calc/data/measurements`` (no GPU needed).

Methods
-------
``lora``   base weights bf16, frozen; PEFT LoRA on all linear layers; adapters
           keep PEFT's default ``autocast_adapter_dtype=True`` (fp32).
``qlora``  base linear weights NF4 (double quantization, bf16 compute) loaded
           with ``from_pretrained(..., quantization_config=BitsAndBytesConfig)``
           from a random bf16 checkpoint saved to local disk, then
           ``peft.prepare_model_for_kbit_training`` and the same LoRA config.
``full``   all weights fp32 and trainable; forward under bf16 autocast (what
           the HF Trainer does with ``bf16=True`` for an fp32-loaded model).

By default the forward of every method runs under
``torch.autocast("cuda", dtype=torch.bfloat16)`` and the backward outside it,
which is what ``Trainer(bf16=True)`` / accelerate do; ``--autocast off`` turns
that off. The optimizer is ``torch.optim.AdamW(lr=1e-4)`` (fp32 states,
foreach default) over the trainable parameters for every method.

Memory figures come from ``torch.cuda`` (caching allocator):
``max_memory_allocated`` (live tensors) and ``max_memory_reserved`` (segments
held by the allocator). The CUDA context and library workspaces outside the
allocator are not in those figures; ``mem_get_info`` and, where NVML answers,
the per-process figure from NVML show the whole-process use.

Concurrency
-----------
The allocator statistics are per process, so points that run side by side on
one GPU measure the same peaks as points run alone *as long as no cudaMalloc
ever failed*. Each point records ``num_alloc_retries`` and ``num_ooms``; the
driver re-runs alone any point where either is non-zero. ``mem_get_info`` and
wall times of concurrent points are affected by the neighbours (the point
records how many jobs the driver allowed).

Examples
--------
    # one point
    python scripts/measure_memory.py point --preset llama-3.2-1b --method lora \
        --seq-len 512 --grad-ckpt on --out /tmp/m.jsonl
    # the grid used for calc/data/measurements/h200-*.yaml
    python scripts/measure_memory.py grid --out /tmp/m.jsonl --jobs 4
    # YAML
    python scripts/measure_memory.py summarize --raw /tmp/m.jsonl \
        --yaml calc/data/measurements/h200-DATE.yaml
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PRESETS_DIR = REPO / "calc" / "presets"
SCRIPT_REL = "scripts/measure_memory.py"

LORA_R = 16
LORA_ALPHA = 32
TARGET_MODULES = "all-linear"
LEARNING_RATE = 1e-4
SEED = 1234

# Never try the network (the GPU machine has none).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# --------------------------------------------------------------------------- #
# helpers shared by all modes
# --------------------------------------------------------------------------- #
def load_preset_config(preset: str) -> dict:
    """Return the HF config.json subset stored under ``config:`` in a preset YAML."""
    import yaml

    path = PRESETS_DIR / f"{preset}.yaml"
    with open(path) as fh:
        data = yaml.safe_load(fh)
    return dict(data["config"])


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def append_jsonl(path: str, record: dict) -> None:
    """Append one JSON line; flock keeps concurrent writers from interleaving."""
    import fcntl

    line = json.dumps(record, sort_keys=False) + "\n"
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(line)
        fh.flush()
        fcntl.flock(fh, fcntl.LOCK_UN)


def lib_versions() -> dict:
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for name in ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "safetensors"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def gpu_provenance() -> dict:
    import torch

    info = {
        "gpu": torch.cuda.get_device_name(0),
        "gpu_total_memory_bytes": torch.cuda.get_device_properties(0).total_memory,
        "torch_cuda_runtime": torch.version.cuda,
        "driver_version": None,
        "cuda_driver_api_version": None,
    }
    try:
        import pynvml

        pynvml.nvmlInit()
        drv = pynvml.nvmlSystemGetDriverVersion()
        info["driver_version"] = drv.decode() if isinstance(drv, bytes) else drv
        v = pynvml.nvmlSystemGetCudaDriverVersion_v2()
        info["cuda_driver_api_version"] = f"{v // 1000}.{(v % 1000) // 10}"
    except Exception as exc:  # NVML is optional
        info["nvml_error"] = repr(exc)
    return info


def nvml_process_used_bytes() -> int | None:
    """GPU memory NVML attributes to this process (includes the CUDA context)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if proc.pid == os.getpid():
                return int(proc.usedGpuMemory) if proc.usedGpuMemory is not None else None
    except Exception:
        return None
    return None


# --------------------------------------------------------------------------- #
# model building
# --------------------------------------------------------------------------- #
def build_hf_config(preset: str):
    from transformers import AutoConfig

    cfg = AutoConfig.for_model(**load_preset_config(preset))
    cfg.use_cache = False
    return cfg


def random_model_on_gpu(preset: str, dtype):
    """Random-weight model created directly on CUDA (no CPU init, no download)."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(SEED)
    cfg = build_hf_config(preset)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation="sdpa")
    model.config.use_cache = False
    return model


def lora_config():
    from peft import LoraConfig

    return LoraConfig(
        r=LORA_R,
        lora_alpha=LORA_ALPHA,
        target_modules=TARGET_MODULES,
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
    )


def enable_grad_ckpt(model) -> None:
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def ckpt_dir_for(root: str, preset: str) -> Path:
    return Path(root) / f"{preset}-random-bf16"


def cmd_prepare(args) -> int:
    """Save a random bf16 checkpoint of ``preset`` (input of the qlora route)."""
    import torch

    out = ckpt_dir_for(args.ckpt_root, args.preset)
    if (out / "config.json").exists():
        print(f"[prepare] {out} exists")
        return 0
    t0 = time.time()
    model = random_model_on_gpu(args.preset, torch.bfloat16)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tmp.rename(out)
    print(f"[prepare] saved {out} in {time.time() - t0:.1f}s")
    return 0


def build_for_method(args):
    """Return (model, notes) for the method, with trainable params set up."""
    import torch

    notes = {}
    stage_mem = {}
    if args.method == "lora":
        from peft import get_peft_model

        model = random_model_on_gpu(args.preset, torch.bfloat16)
        torch.cuda.synchronize()
        stage_mem["after_base_load"] = torch.cuda.memory_allocated()
        if args.grad_ckpt:
            enable_grad_ckpt(model)
        model = get_peft_model(model, lora_config())
        notes["base_dtype"] = "bfloat16"
        notes["quantization"] = None
        notes["build_route"] = "AutoModelForCausalLM.from_config(dtype=bfloat16) under torch.device('cuda'); peft.get_peft_model"
    elif args.method == "qlora":
        from peft import get_peft_model, prepare_model_for_kbit_training
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        src = ckpt_dir_for(args.ckpt_root, args.preset)
        if not (src / "config.json").exists():
            raise RuntimeError(f"missing random checkpoint {src}; run `prepare` first")
        bnb = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        torch.manual_seed(SEED)
        model = AutoModelForCausalLM.from_pretrained(
            str(src),
            quantization_config=bnb,
            dtype=torch.bfloat16,
            device_map={"": 0},
            attn_implementation="sdpa",
        )
        model.config.use_cache = False
        torch.cuda.synchronize()
        stage_mem["after_base_load"] = torch.cuda.memory_allocated()
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=args.grad_ckpt,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
        torch.cuda.synchronize()
        stage_mem["after_prepare_kbit"] = torch.cuda.memory_allocated()
        model = get_peft_model(model, lora_config())
        notes["base_dtype"] = "nf4 (Linear4bit/Params4bit); non-quantized params bfloat16 at load"
        notes["quantization"] = {
            "load_in_4bit": True,
            "bnb_4bit_quant_type": "nf4",
            "bnb_4bit_use_double_quant": True,
            "bnb_4bit_compute_dtype": "bfloat16",
            "bnb_4bit_quant_storage": str(bnb.bnb_4bit_quant_storage).replace("torch.", ""),
        }
        notes["build_route"] = (
            "random bf16 model saved with save_pretrained to local disk, then "
            "from_pretrained(quantization_config=BitsAndBytesConfig, dtype=bfloat16, device_map={'':0}); "
            "peft.prepare_model_for_kbit_training(use_gradient_checkpointing=<grad_ckpt>, "
            "gradient_checkpointing_kwargs={'use_reentrant': False}); peft.get_peft_model"
        )
    elif args.method == "full":
        model = random_model_on_gpu(args.preset, torch.float32)
        torch.cuda.synchronize()
        stage_mem["after_base_load"] = torch.cuda.memory_allocated()
        if args.grad_ckpt:
            enable_grad_ckpt(model)
        for p in model.parameters():
            p.requires_grad_(True)
        notes["base_dtype"] = "float32"
        notes["quantization"] = None
        notes["build_route"] = "AutoModelForCausalLM.from_config(dtype=float32) under torch.device('cuda')"
    else:
        raise ValueError(args.method)
    model.train()
    return model, notes, stage_mem


def param_bytes_by_dtype(model) -> dict:
    """Bytes of parameters by storage dtype, split trainable / frozen."""
    out: dict = {}
    for p in model.parameters():
        key = ("trainable" if p.requires_grad else "frozen") + ":" + str(p.dtype).replace("torch.", "")
        if p.__class__.__name__ == "Params4bit":
            key += ":Params4bit"
        out[key] = out.get(key, 0) + p.numel() * p.element_size()
    return out


def count_params(model, method: str) -> tuple[int, int]:
    if method in ("lora", "qlora"):
        return tuple(int(x) for x in model.get_nb_trainable_parameters())
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


# --------------------------------------------------------------------------- #
# one measurement
# --------------------------------------------------------------------------- #
def cmd_point(args) -> int:
    rec = {
        "preset": args.preset,
        "method": args.method,
        "r": LORA_R if args.method != "full" else None,
        "lora_alpha": LORA_ALPHA if args.method != "full" else None,
        "target_modules": TARGET_MODULES if args.method != "full" else None,
        "micro_batch": args.micro_batch,
        "seq_len": args.seq_len,
        "gradient_checkpointing": args.grad_ckpt,
        "autocast": "bfloat16" if args.autocast else None,
        "steps": args.steps,
        "optimizer": f"torch.optim.AdamW(lr={LEARNING_RATE}, foreach=None -> default, fused=None)",
        "attn_implementation": "sdpa",
        "seed": SEED,
        "concurrent_jobs_allowed": args.jobs_context,
        "command": " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv),
        "date_utc": utc_now(),
        "pytorch_cuda_alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF"),
    }
    t_start = time.time()
    try:
        import torch

        rec.update(lib_versions())
        rec.update(gpu_provenance())
        torch.cuda.init()
        free0, total0 = torch.cuda.mem_get_info()
        rec["mem_get_info_start"] = [int(free0), int(total0)]

        model, notes, stage_mem = build_for_method(args)
        rec.update(notes)
        torch.cuda.synchronize()
        for k, v in stage_mem.items():
            rec[f"memory_allocated_{k}_bytes"] = int(v)
        rec["memory_allocated_after_build_bytes"] = int(torch.cuda.memory_allocated())
        rec["memory_reserved_after_build_bytes"] = int(torch.cuda.memory_reserved())
        rec["build_peak_allocated_bytes"] = int(torch.cuda.max_memory_allocated())
        rec["build_seconds"] = round(time.time() - t_start, 2)
        trainable, total = count_params(model, args.method)
        rec["trainable_params"] = trainable
        rec["total_params"] = total
        rec["param_bytes_by_dtype"] = param_bytes_by_dtype(model)
        trainable_dtypes = sorted({str(p.dtype).replace("torch.", "") for p in model.parameters() if p.requires_grad})
        rec["trainable_param_dtypes"] = trainable_dtypes
        if args.method in ("lora", "qlora"):
            rec["adapter_dtype"] = ",".join(trainable_dtypes)
        emb = model.get_input_embeddings().weight
        out_emb = model.get_output_embeddings().weight
        rec["embedding_dtype"] = str(emb.dtype).replace("torch.", "")
        rec["lm_head_dtype"] = str(out_emb.dtype).replace("torch.", "")
        rec["tied_embeddings"] = emb.data_ptr() == out_emb.data_ptr()

        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=LEARNING_RATE)

        vocab = model.config.vocab_size if hasattr(model, "config") else None
        gen = torch.Generator(device="cuda").manual_seed(SEED)
        ids = torch.randint(0, vocab, (args.micro_batch, args.seq_len), device="cuda", generator=gen)

        ac = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if args.autocast
            else torch.autocast("cuda", enabled=False)
        )
        # Peak window starts here: model built, optimizer object created (AdamW
        # allocates its states lazily inside step 1, so they are inside it).
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        step_rows = []
        for step in range(args.steps):
            if step > 0:
                torch.cuda.reset_peak_memory_stats()
            t0 = time.time()
            with ac:
                out = model(input_ids=ids, labels=ids)
            if step == 0:
                rec["logits_dtype"] = str(out.logits.dtype).replace("torch.", "")
                rec["logits_shape"] = list(out.logits.shape)
                rec["loss_dtype"] = str(out.loss.dtype).replace("torch.", "")
            loss = out.loss
            del out  # the Trainer keeps only the loss, not the logits
            torch.cuda.synchronize()
            fwd_peak = torch.cuda.max_memory_allocated()
            after_fwd = torch.cuda.memory_allocated()
            loss.backward()
            torch.cuda.synchronize()
            bwd_peak = torch.cuda.max_memory_allocated()
            opt.step()
            opt.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            step_rows.append(
                {
                    "step": step + 1,
                    "loss": float(loss.detach().float().item()),
                    "peak_allocated_forward_bytes": int(fwd_peak),
                    "allocated_after_forward_bytes": int(after_fwd),
                    "peak_allocated_through_backward_bytes": int(bwd_peak),
                    "peak_allocated_bytes": int(torch.cuda.max_memory_allocated()),
                    "peak_reserved_bytes": int(torch.cuda.max_memory_reserved()),
                    "allocated_after_step_bytes": int(torch.cuda.memory_allocated()),
                    "seconds": round(time.time() - t0, 3),
                }
            )
            del loss
        rec["steps_detail"] = step_rows
        rec["memory_allocated_after_step1_bytes"] = step_rows[0]["allocated_after_step_bytes"]
        rec["max_memory_allocated_bytes"] = max(r["peak_allocated_bytes"] for r in step_rows)
        rec["max_memory_reserved_bytes"] = max(r["peak_reserved_bytes"] for r in step_rows)
        rec["optimizer_state_bytes"] = int(
            sum(
                t.numel() * t.element_size()
                for st in opt.state.values()
                for t in st.values()
                if torch.is_tensor(t) and t.is_cuda
            )
        )
        stats = torch.cuda.memory_stats()
        rec["num_alloc_retries"] = int(stats.get("num_alloc_retries", 0))
        rec["num_ooms"] = int(stats.get("num_ooms", 0))
        free, total = torch.cuda.mem_get_info()
        rec["mem_get_info_end"] = [int(free), int(total)]
        rec["memory_reserved_end_bytes"] = int(torch.cuda.memory_reserved())
        rec["nvml_process_used_bytes_end"] = nvml_process_used_bytes()
        rec["error"] = None
    except Exception as exc:  # keep failed points (OOM included) with their text
        import traceback

        rec["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        rec["traceback_tail"] = traceback.format_exc()[-3000:]
        try:
            import torch

            rec["max_memory_allocated_bytes_before_error"] = int(torch.cuda.max_memory_allocated())
            stats = torch.cuda.memory_stats()
            rec["num_alloc_retries"] = int(stats.get("num_alloc_retries", 0))
            rec["num_ooms"] = int(stats.get("num_ooms", 0))
        except Exception:
            pass
    rec["wall_seconds"] = round(time.time() - t_start, 2)
    append_jsonl(args.out, rec)
    brief = {k: rec.get(k) for k in ("preset", "method", "seq_len", "gradient_checkpointing", "max_memory_allocated_bytes", "error")}
    print("[point]", json.dumps(brief), flush=True)
    return 0 if rec["error"] is None else 1


# --------------------------------------------------------------------------- #
# grid driver
# --------------------------------------------------------------------------- #
DEFAULT_PRESETS = ["llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "qwen2.5-7b"]
DEFAULT_FULL_PRESETS = ["llama-3.2-1b", "llama-3.2-3b"]


def approx_param_count(cfg: dict) -> tuple[float, float]:
    """(all params, embedding+lm_head params) from a config subset; scheduling only."""
    h, i, L, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or h // nh
    attn = h * nh * hd * 2 + h * nkv * hd * 2
    mlp = 3 * h * i
    emb = v * h * (1 if cfg.get("tie_word_embeddings") else 2)
    return L * (attn + mlp) + emb, emb


def rough_upper_gib(preset: str, method: str, seq: int, ckpt: bool) -> float:
    """Deliberately generous memory guess, only used to pack concurrent jobs."""
    cfg = load_preset_config(preset)
    P, emb = approx_param_count(cfg)
    h, i, L, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    if method == "lora":
        w = 2 * P
    elif method == "qlora":
        w = 0.6 * (P - emb) + 4 * emb + 2 * emb  # embeddings upcast to fp32 (+ load transients)
        w = max(w, 2 * P * 0.6)
    else:
        w = 16 * P + 2 * P
    per_layer_token = 4 * (20 * h + 8 * i)  # fp32-ish upper bound
    act = (1 if ckpt else L) * seq * per_layer_token + (L * seq * h * 4 if ckpt else 0)
    logits = seq * v * 4 * 4
    return (w + act + logits) * 1.35 / 2**30 + 2.0


def grid_points(args) -> list[dict]:
    pts = []
    ckpts = [True, False] if args.grad_ckpt == "both" else [args.grad_ckpt == "on"]
    # priority: checkpointing on first, then off; lora/qlora before full
    for ck in ckpts:
        for preset in args.presets:
            for method in args.methods:
                if method == "full":
                    continue
                for seq in args.seqs:
                    pts.append(dict(preset=preset, method=method, seq=seq, ckpt=ck))
    if "full" in args.methods:
        for ck in ckpts:
            for preset in args.full_presets:
                for seq in args.seqs:
                    pts.append(dict(preset=preset, method="full", seq=seq, ckpt=ck))
    return pts


def point_key(preset, method, seq, ckpt, autocast=True):
    return (preset, method, int(seq), bool(ckpt), bool(autocast))


def done_keys(path: str) -> set:
    keys = set()
    if not os.path.exists(path):
        return keys
    with open(path) as fh:
        for line in fh:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if r.get("error") is None and r.get("num_alloc_retries", 0) == 0 and r.get("num_ooms", 0) == 0:
                keys.add(point_key(r["preset"], r["method"], r["seq_len"], r["gradient_checkpointing"], r.get("autocast") is not None))
    return keys


def cmd_grid(args) -> int:
    t_begin = time.time()
    deadline = t_begin + args.deadline_s if args.deadline_s else None
    log = open(args.log, "a") if args.log else sys.stdout

    def say(msg):
        line = f"[grid {time.time() - t_begin:7.1f}s] {msg}"
        print(line, file=log, flush=True)
        if log is not sys.stdout:
            print(line, flush=True)

    pts = grid_points(args)
    already = done_keys(args.out) if args.skip_done else set()
    pts = [p for p in pts if point_key(p["preset"], p["method"], p["seq"], p["ckpt"], args.autocast == "on") not in already]
    say(f"{len(pts)} points to run, jobs={args.jobs}, budget={args.mem_budget_gib} GiB")

    # tasks: prepare (one per preset that has qlora points) + points
    tasks = []
    qlora_presets = sorted({p["preset"] for p in pts if p["method"] == "qlora"}, key=args.presets.index)
    for preset in qlora_presets:
        P, _ = approx_param_count(load_preset_config(preset))
        tasks.append(dict(kind="prepare", preset=preset, est=2 * P * 1.3 / 2**30 + 2, deps=[]))
    for p in pts:
        tasks.append(
            dict(
                kind="point",
                **p,
                est=rough_upper_gib(p["preset"], p["method"], p["seq"], p["ckpt"]),
                deps=[("prepare", p["preset"])] if p["method"] == "qlora" else [],
            )
        )

    prepared: dict = {}  # preset -> True/False(failed)
    running: list = []  # (task, Popen, t0, logfile)
    rerun_alone: list = []

    def base_cmd(task, jobs_ctx):
        if task["kind"] == "prepare":
            return [sys.executable, os.path.abspath(__file__), "prepare", "--preset", task["preset"], "--ckpt-root", args.ckpt_root]
        return [
            sys.executable, os.path.abspath(__file__), "point",
            "--preset", task["preset"], "--method", task["method"],
            "--seq-len", str(task["seq"]), "--grad-ckpt", "on" if task["ckpt"] else "off",
            "--micro-batch", str(args.micro_batch), "--steps", str(args.steps),
            "--autocast", args.autocast, "--ckpt-root", args.ckpt_root,
            "--out", args.out, "--jobs-context", str(jobs_ctx),
        ]

    def qlora_left(preset):
        return any(t["kind"] == "point" and t["method"] == "qlora" and t["preset"] == preset for t in tasks) or any(
            r[0]["kind"] == "point" and r[0]["method"] == "qlora" and r[0]["preset"] == preset for r in running
        ) or any(t["method"] == "qlora" and t["preset"] == preset for t in rerun_alone)

    def finish(task, proc, t0, lf):
        lf.seek(0)
        tail = lf.read()[-3000:]
        lf.close()
        rc = proc.returncode
        if task["kind"] == "prepare":
            prepared[task["preset"]] = rc == 0
            say(f"prepare {task['preset']} rc={rc} in {time.time() - t0:.1f}s" + ("" if rc == 0 else f"\n{tail}"))
            return
        last_line = tail.strip().splitlines()[-1][:300] if tail.strip() else ""
        say(f"done {task['preset']} {task['method']} seq={task['seq']} ckpt={task['ckpt']} rc={rc} {time.time() - t0:.1f}s :: {last_line}")
        # a point that crashed before writing its line, or hit allocator pressure
        wrote = False
        with open(args.out) as fh:
            for line in fh:
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if point_key(r["preset"], r["method"], r["seq_len"], r["gradient_checkpointing"], r.get("autocast") is not None) == point_key(task["preset"], task["method"], task["seq"], task["ckpt"], args.autocast == "on"):
                    wrote = True
                    last = r
        if not wrote:
            append_jsonl(args.out, {
                "preset": task["preset"], "method": task["method"], "seq_len": task["seq"],
                "gradient_checkpointing": task["ckpt"], "autocast": "bfloat16" if args.autocast == "on" else None,
                "micro_batch": args.micro_batch, "date_utc": utc_now(),
                "error": f"subprocess exited rc={rc} without a result", "stderr_tail": tail,
            })
        elif (last.get("num_alloc_retries") or last.get("num_ooms")) and task.get("jobs_ctx", 1) > 1 and not task.get("alone"):
            say(f"  allocator pressure seen under concurrency -> will re-run alone")
            rerun_alone.append(dict(task, alone=True))

    def running_gib():
        return sum(r[0]["est"] for r in running)

    while tasks or running or rerun_alone:
        # reap
        for r in list(running):
            if r[1].poll() is not None:
                running.remove(r)
                finish(*r)
            elif time.time() - r[2] > args.point_timeout_s or (deadline and time.time() > deadline + 5):
                r[1].kill()
                r[1].wait()
                running.remove(r)
                say(f"killed (timeout) {r[0]}")
                finish(*r)
        # clean up checkpoints nobody needs any more
        for preset, ok in list(prepared.items()):
            if ok and not qlora_left(preset) and not args.keep_ckpts:
                shutil.rmtree(ckpt_dir_for(args.ckpt_root, preset), ignore_errors=True)
                prepared[preset] = "removed"
        if deadline and time.time() > deadline:
            if tasks or rerun_alone:
                say(f"deadline reached; {len(tasks) + len(rerun_alone)} tasks not started")
            tasks.clear()
            rerun_alone.clear()
            if not running:
                break
            time.sleep(1)
            continue
        # launch
        started = False
        if not tasks and rerun_alone and not running:
            t = rerun_alone.pop(0)
            t["jobs_ctx"] = 1
            lf = open(os.path.join(args.tmp_logs, f"alone-{t['preset']}-{t['method']}-{t['seq']}-{t['ckpt']}.log"), "w+")
            running.append((t, subprocess.Popen(base_cmd(t, 1), stdout=lf, stderr=subprocess.STDOUT), time.time(), lf))
            say(f"start alone {t['preset']} {t['method']} seq={t['seq']} ckpt={t['ckpt']}")
            continue
        for t in list(tasks):
            if len(running) >= args.jobs:
                break
            deps_ok = True
            for _, preset in t["deps"]:
                state = prepared.get(preset)
                if state is None:
                    deps_ok = False
                elif state is False:
                    # prepare failed: record the point as failed
                    tasks.remove(t)
                    append_jsonl(args.out, {
                        "preset": t["preset"], "method": t["method"], "seq_len": t["seq"],
                        "gradient_checkpointing": t["ckpt"], "date_utc": utc_now(),
                        "autocast": "bfloat16" if args.autocast == "on" else None,
                        "error": "random checkpoint for the qlora route could not be prepared",
                    })
                    deps_ok = False
            if not deps_ok:
                continue
            if running and running_gib() + t["est"] > args.mem_budget_gib:
                continue
            tasks.remove(t)
            t["jobs_ctx"] = args.jobs
            name = f"{t['kind']}-{t['preset']}-{t.get('method', '')}-{t.get('seq', '')}-{t.get('ckpt', '')}.log"
            lf = open(os.path.join(args.tmp_logs, name), "w+")
            running.append((t, subprocess.Popen(base_cmd(t, args.jobs), stdout=lf, stderr=subprocess.STDOUT), time.time(), lf))
            say(f"start {t['kind']} {t['preset']} {t.get('method', '')} seq={t.get('seq', '')} ckpt={t.get('ckpt', '')} est={t['est']:.1f}GiB (running {running_gib():.1f})")
            started = True
        if not started:
            time.sleep(0.5)
    say("grid finished")
    return 0


# --------------------------------------------------------------------------- #
# YAML summary
# --------------------------------------------------------------------------- #
POINT_KEYS = [
    "preset", "method", "r", "lora_alpha", "target_modules", "micro_batch", "seq_len",
    "gradient_checkpointing", "autocast", "steps", "seed", "base_dtype", "quantization", "build_route", "adapter_dtype",
    "trainable_param_dtypes", "embedding_dtype", "lm_head_dtype", "tied_embeddings", "logits_dtype",
    "logits_shape", "loss_dtype", "optimizer", "attn_implementation", "trainable_params", "total_params",
    "param_bytes_by_dtype", "memory_allocated_after_base_load_bytes", "memory_allocated_after_prepare_kbit_bytes",
    "memory_allocated_after_build_bytes", "memory_reserved_after_build_bytes", "build_peak_allocated_bytes", "memory_allocated_after_step1_bytes",
    "optimizer_state_bytes", "max_memory_allocated_bytes", "max_memory_reserved_bytes", "mem_get_info_start",
    "mem_get_info_end", "memory_reserved_end_bytes", "nvml_process_used_bytes_end", "num_alloc_retries", "num_ooms",
    "concurrent_jobs_allowed", "steps_detail", "build_seconds", "wall_seconds", "date_utc", "command", "error",
    "max_memory_allocated_bytes_before_error", "stderr_tail", "traceback_tail",
]


def cmd_summarize(args) -> int:
    import yaml

    rows = []
    with open(args.raw) as fh:
        for line in fh:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    ok = [r for r in rows if r.get("error") is None]
    # keep the last good record of each point; failed ones only if no good one exists
    best: dict = {}
    for r in rows:
        k = point_key(r["preset"], r["method"], r["seq_len"], r["gradient_checkpointing"], r.get("autocast") is not None)
        if r.get("error") is None or k not in best or best[k].get("error") is not None:
            best[k] = r
    ref = ok[0] if ok else rows[0]
    prov = {
        "gpu": ref.get("gpu"),
        "gpu_total_memory_bytes": ref.get("gpu_total_memory_bytes"),
        "driver_version": ref.get("driver_version"),
        "cuda_driver_api_version": ref.get("cuda_driver_api_version"),
        "torch_cuda_runtime": ref.get("torch_cuda_runtime"),
        "python": ref.get("python"),
        "libraries": {k: ref.get(k) for k in ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "safetensors")},
        "dates_utc": sorted({r["date_utc"][:10] for r in rows if r.get("date_utc")}),
        "script": SCRIPT_REL,
        "commands": args.command or [],
        "notes": args.note or [],
    }
    order = {m: i for i, m in enumerate(["lora", "qlora", "full"])}
    pres = {p: i for i, p in enumerate(DEFAULT_PRESETS)}
    pts = sorted(
        best.values(),
        key=lambda r: (pres.get(r["preset"], 99), order.get(r["method"], 9), r["seq_len"], not r["gradient_checkpointing"], r.get("autocast") is None),
    )
    out_pts = []
    for r in pts:
        out_pts.append({k: r[k] for k in POINT_KEYS if k in r and not (k in ("stderr_tail", "traceback_tail") and r.get("error") is None)})
    doc = {"provenance": prov, "points": out_pts}
    with open(args.yaml, "w") as fh:
        fh.write("# Measured GPU memory of short LoRA / QLoRA / full fine-tuning runs.\n")
        fh.write(f"# Produced by {SCRIPT_REL} (summarize) from the raw JSON lines beside this file.\n")
        fh.write("# All memory figures are bytes from torch.cuda on a real run; nothing here is estimated.\n")
        yaml.safe_dump(doc, fh, sort_keys=False, width=120)
    # compact table on stdout
    print(f"{'preset':14} {'method':6} {'seq':>5} {'ckpt':>5} {'max_alloc_GiB':>13} {'max_resv_GiB':>12} {'after_build_GiB':>15}")
    for r in pts:
        def g(k):
            v = r.get(k)
            return f"{v / 2**30:.2f}" if isinstance(v, int) else "-"
        print(f"{r['preset']:14} {r['method']:6} {r['seq_len']:>5} {str(r['gradient_checkpointing']):>5} "
              f"{g('max_memory_allocated_bytes'):>13} {g('max_memory_reserved_bytes'):>12} "
              f"{g('memory_allocated_after_build_bytes'):>15} {('ERR ' + r['error'][:60]) if r.get('error') else ''}")
    return 0


# --------------------------------------------------------------------------- #
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    onoff = lambda s: {"on": True, "off": False}[s]  # noqa: E731

    pp = sub.add_parser("point", help="measure one configuration in this process")
    pp.add_argument("--preset", required=True)
    pp.add_argument("--method", required=True, choices=["lora", "qlora", "full"])
    pp.add_argument("--seq-len", type=int, required=True)
    pp.add_argument("--grad-ckpt", type=onoff, default=True, help="on|off")
    pp.add_argument("--micro-batch", type=int, default=1)
    pp.add_argument("--steps", type=int, default=3)
    pp.add_argument("--autocast", type=onoff, default=True, help="bf16 autocast around the forward: on|off")
    pp.add_argument("--ckpt-root", default="/tmp/lora-handbook-random-ckpts")
    pp.add_argument("--out", required=True, help="JSON lines file to append to")
    pp.add_argument("--jobs-context", type=int, default=1, help=argparse.SUPPRESS)

    pr = sub.add_parser("prepare", help="save a random bf16 checkpoint for the qlora route")
    pr.add_argument("--preset", required=True)
    pr.add_argument("--ckpt-root", default="/tmp/lora-handbook-random-ckpts")

    pg = sub.add_parser("grid", help="run a grid, one subprocess per point")
    pg.add_argument("--out", required=True)
    pg.add_argument("--presets", nargs="+", default=DEFAULT_PRESETS)
    pg.add_argument("--full-presets", nargs="+", default=DEFAULT_FULL_PRESETS)
    pg.add_argument("--methods", nargs="+", default=["lora", "qlora", "full"])
    pg.add_argument("--seqs", nargs="+", type=int, default=[512, 2048])
    pg.add_argument("--grad-ckpt", choices=["on", "off", "both"], default="both")
    pg.add_argument("--micro-batch", type=int, default=1)
    pg.add_argument("--steps", type=int, default=3)
    pg.add_argument("--autocast", choices=["on", "off"], default="on")
    pg.add_argument("--jobs", type=int, default=1, help="points run at once on the one GPU")
    pg.add_argument("--mem-budget-gib", type=float, default=120.0, help="sum of rough estimates allowed at once")
    pg.add_argument("--point-timeout-s", type=float, default=300.0)
    pg.add_argument("--deadline-s", type=float, default=0.0, help="stop starting points after this many seconds")
    pg.add_argument("--skip-done", action="store_true", help="skip points already measured cleanly in --out")
    pg.add_argument("--keep-ckpts", action="store_true")
    pg.add_argument("--ckpt-root", default="/tmp/lora-handbook-random-ckpts")
    pg.add_argument("--tmp-logs", default="/tmp/lora-handbook-logs")
    pg.add_argument("--log", default=None)

    ps = sub.add_parser("summarize", help="raw JSON lines -> YAML")
    ps.add_argument("--raw", required=True)
    ps.add_argument("--yaml", required=True)
    ps.add_argument("--command", action="append", help="command line(s) that produced the raw file")
    ps.add_argument("--note", action="append", help="free-text note for provenance")

    args = ap.parse_args(argv)
    if args.mode == "point":
        return cmd_point(args)
    if args.mode == "prepare":
        return cmd_prepare(args)
    if args.mode == "grid":
        os.makedirs(args.tmp_logs, exist_ok=True)
        Path(args.out).touch()
        return cmd_grid(args)
    return cmd_summarize(args)


if __name__ == "__main__":
    sys.exit(main())
