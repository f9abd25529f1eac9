"""Macros for refs (being written)."""

MACROS: tuple[str, ...] = ()
