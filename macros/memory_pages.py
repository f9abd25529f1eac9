"""Macros for memory_pages (being written)."""

MACROS: tuple[str, ...] = ()
