"""GPU data (calc/data/gpus.yaml), the pure fit arithmetic, and ``python -m calc fit``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from calc.cli import main
from calc.errors import CalcError
from calc.gpus import GPU_FILE, Gpu, fit, fit_all, load_gpus

REPO = Path(__file__).resolve().parents[1]
GIB = 1 << 30
EXPECTED_IDS = ["t4", "rtx-3060", "rtx-3090", "rtx-4090", "rtx-5090", "a10", "l4", "l40s", "rtx-a6000",
                "a100-40gb", "a100-80gb", "h100-sxm", "h200", "b200", "mi300x"]


@pytest.fixture(scope="module")
def gpus() -> dict[str, Gpu]:
    return load_gpus()


# -- data ----------------------------------------------------------------------------------------------
def test_all_gpus_load_in_file_order(gpus):
    assert list(gpus) == EXPECTED_IDS


def test_usable_never_exceeds_as_sold(gpus):
    for g in gpus.values():
        assert 0 < g.usable_bytes <= g.as_sold_bytes, g.id
        if g.driver_total_bytes is not None:
            assert g.usable_bytes <= g.driver_total_bytes <= g.as_sold_bytes, g.id


def test_as_sold_is_the_marketed_figure_read_as_gib(gpus):
    for g in gpus.values():
        gb = float(re.match(r"^([0-9.]+) GB$", g.marketed).group(1))
        assert g.as_sold_bytes == round(gb * GIB), g.id


def test_known_anchor_values(gpus):
    # our own measurement: torch total_memory on the H200 of calc/data/measurements/h200-2026-11-23.yaml
    measured = yaml.safe_load((REPO / "calc/data/measurements/h200-2026-11-23.yaml").read_text())
    assert gpus["h200"].usable_bytes == measured["provenance"]["gpu_total_memory_bytes"] == 150_109_880_320
    assert gpus["h200"].usable_basis == "measured"
    assert gpus["a100-80gb"].driver_total_bytes == 81_920 * 2**20 == 80 * GIB   # nvidia-smi 81,920 MiB
    assert gpus["rtx-4090"].driver_total_bytes == 24_564 * 2**20
    assert gpus["t4"].driver_total_bytes == 15 * GIB                            # 16 GiB minus 1/16 for ECC


def test_every_gpu_says_where_its_figures_come_from(gpus):
    for g in gpus.values():
        assert g.source_url.startswith("http"), g.id
        assert g.usable_basis in ("measured", "reported", "derived"), g.id
        if g.usable_basis == "derived":
            assert g.note, f"{g.id}: a derived usable figure needs a note"


def _write(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(GPU_FILE.read_text())
    mutate(data)
    path = tmp_path / "gpus.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["gpus"][6].update(bogus=1), "gpus.6 (l4).bogus"),
    (lambda d: d["gpus"][0].update(usable_bytes=d["gpus"][0]["as_sold_bytes"] + 1), "gpus.0 (t4).usable_bytes"),
    (lambda d: d["gpus"][3].update(source_url="nvidia.com"), "gpus.3 (rtx-4090).source_url"),
    (lambda d: d["gpus"][1].update(usable_basis="guessed"), "gpus.1 (rtx-3060).usable_basis"),
    (lambda d: d["gpus"][2].pop("marketed"), "gpus.2 (rtx-3090).marketed"),
])
def test_bad_file_names_file_and_field(tmp_path, mutate, field):
    path = _write(tmp_path, mutate)
    with pytest.raises(CalcError) as info:
        load_gpus(path)
    assert info.value.source == str(path)
    assert info.value.field == field


def test_duplicate_id_is_rejected(tmp_path):
    path = _write(tmp_path, lambda d: d["gpus"][1].update(id="t4"))
    with pytest.raises(CalcError, match="duplicate id") as info:
        load_gpus(path)
    assert info.value.field == "gpus.1.id"


# -- fit arithmetic ------------------------------------------------------------------------------------
def test_fit_is_usable_minus_peak_and_context(gpus):
    g = gpus["h100-sxm"]
    r = fit(g, peak_bytes=70 * GIB, cuda_context_bytes=GIB // 2)
    assert r.required_bytes == 70 * GIB + GIB // 2
    assert r.headroom_bytes == g.usable_bytes - r.required_bytes
    assert r.fits
    assert not fit(g, g.usable_bytes, 1).fits
    assert fit(g, g.usable_bytes - 1, 1).fits            # exactly full still fits
    assert [x.gpu for x in fit_all(gpus, GIB, 0)] == EXPECTED_IDS


def test_fit_rejects_negative_sizes(gpus):
    with pytest.raises(CalcError):
        fit(gpus["t4"], -1, 0)


# -- CLI -----------------------------------------------------------------------------------------------
def fit_json(capsys, *argv: str) -> list[dict]:
    code = main(["fit", *argv, "--json"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), err
    return json.loads(out)


def test_cli_fit_json_shape(capsys):
    rows = fit_json(capsys, "llama-3.2-1b", "--method", "lora", "--seq", "512")
    assert [r["gpu"] for r in rows] == EXPECTED_IDS
    for r in rows:
        assert set(r) == {"gpu", "usable_bytes", "required_bytes", "headroom_bytes", "fits"}
        assert all(isinstance(r[k], int) and not isinstance(r[k], bool)
                   for k in ("usable_bytes", "required_bytes", "headroom_bytes"))
        assert r["headroom_bytes"] == r["usable_bytes"] - r["required_bytes"]
        assert r["fits"] is (r["headroom_bytes"] >= 0)
    assert len({r["required_bytes"] for r in rows}) == 1      # the same setup on every GPU


def test_cli_fit_gpu_filter(capsys):
    rows = fit_json(capsys, "llama-3.2-1b", "--gpu", "h100-sxm", "--gpu", "t4")
    assert [r["gpu"] for r in rows] == ["h100-sxm", "t4"]


def test_cli_fit_table(capsys):
    code = main(["fit", "llama-3.2-1b", "--gpu", "rtx-4090"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert "GeForce RTX 4090" in out and "headroom GiB" in out


@pytest.mark.parametrize("argv, needle", [
    (["llama-3.2-1b", "--gpu", "v100"], "--gpu: unknown GPU 'v100'"),
    (["llama-3.2-1b", "--batch", "0"], "--batch: must be a positive integer"),
    (["llama-3.2-1b", "--rank", "0"], "--rank"),
])
def test_cli_fit_bad_input_is_one_line(argv, needle):
    proc = subprocess.run([sys.executable, "-m", "calc", "fit", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and needle in proc.stderr, proc.stderr


def test_cli_vocabulary_matches_the_memory_model():
    import calc.cli.options as fit_cmd
    import calc.memory as memory

    assert fit_cmd.METHODS == memory.METHODS
    assert fit_cmd.PRECISIONS == memory.DENSE_PRECISIONS + memory.QUANT_TYPES
    assert fit_cmd.ADAPTER_DTYPES == memory.ADAPTER_DTYPES
    for name in ("OPTIMIZERS", "MIXED_PRECISION", "ATTN", "LOSSES", "SHARDING"):
        assert getattr(fit_cmd, name) == getattr(memory, name), name


def test_registering_fit_does_not_import_the_memory_model():
    code = ("import argparse, sys; import calc.cli.fit as f; f.register(argparse.ArgumentParser().add_subparsers());"
            " print('calc.memory' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "False", proc.stderr


# -- hand-derived cases ----------------------------------------------------------------------------------
def test_full_fp32_adam_8b_does_not_fit_an_80gb_card(capsys):
    """Llama-3.1-8B, full fine-tuning, fp32 weights + fp32 grads + AdamW m, v: 16 B/param before any
    activation = 16 * 8,030,261,248 B = 119.7 GiB, far above the ~79 GiB an 80 GB card gives a process."""
    params = 8_030_261_248
    floor = 16 * params
    assert floor / GIB == pytest.approx(119.66, abs=0.01)
    rows = {r["gpu"]: r for r in fit_json(capsys, "llama-3.1-8b", "--method", "full", "--precision", "fp32",
                                          "--optimizer", "adamw", "--seq", "512", "--gradient-checkpointing")}
    for gid in ("a100-80gb", "h100-sxm"):
        assert rows[gid]["required_bytes"] >= floor
        assert not rows[gid]["fits"]
        assert rows[gid]["headroom_bytes"] < -35 * GIB
    assert rows["b200"]["fits"]                     # ~180 GB: room for 120 GiB + activations at seq 512


def test_qlora_8b_seq512_checkpointing_fits_a_24gb_card(capsys):
    """Llama-3.1-8B QLoRA (NF4+DQ, r=16 all-linear, bf16 autocast), batch 1, seq 512, checkpointing.
    By hand: NF4 linears ~3.5 GiB + fp32 embed/lm_head after prepare_model_for_kbit_training 3.9 GiB
    + adapters/grads/Adam 0.6 GiB + checkpointed activations and the 12V*T logits term ~1 GiB = ~9-10 GiB;
    our H200 run measured 10,495,816,704 B peak allocated. A 24 GB card gives a process ~23.6 GiB."""
    rows = {r["gpu"]: r for r in fit_json(capsys, "llama-3.1-8b", "--method", "qlora", "--rank", "16",
                                          "--seq", "512", "--gradient-checkpointing")}
    for gid in ("rtx-3090", "rtx-4090", "a10", "l4"):
        assert rows[gid]["fits"], gid
        assert rows[gid]["headroom_bytes"] > 8 * GIB, gid
    assert 8 * GIB < rows["rtx-4090"]["required_bytes"] < 14 * GIB
