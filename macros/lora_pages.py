"""Macros for lora_pages (being written)."""

MACROS: tuple[str, ...] = ()
