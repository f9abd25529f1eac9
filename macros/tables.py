"""Macros that render tables. Each one formats what a single ``calc`` function returns."""

from __future__ import annotations

from calc.pages.site import preset_summaries
from calc.fmt import human_count
from macros.render import code, link, md_table, text

MACROS = ("preset_table",)


def preset_table(r: int = 16, targets: str = "all-linear") -> str:
    """Every preset's size and LoRA share — numbers from :func:`calc.pages.site.preset_summaries`."""
    rows = [
        (
            link(s.preset.name, s.preset.source_url),
            text(s.preset.family),
            code(s.preset.config["model_type"]),
            f"{s.total_params:,}",
            human_count(s.total_params),
            f"{s.trainable_params:,}",
            f"{s.trainable_percent:.3f} %",
        )
        for s in preset_summaries(r=r, target_modules=targets)
    ]
    headers = ("Model", "Family", "model_type", "Parameters", "≈", f"LoRA r={r} trainable ({targets})",
               "Trainable share")
    return md_table(headers, rows, align="lllrrrr")
