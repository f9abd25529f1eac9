"""Macros for quant_pages (being written)."""

MACROS: tuple[str, ...] = ()
