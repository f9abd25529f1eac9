"""The mkdocs-macros module: thin glue from ``calc`` to Markdown.

Registered with ``plugins: - macros: module_name: macros`` in mkdocs.yml. Only ``env.macro``,
``env.filter`` and ``env.variables`` are used (portable to ProperDocs and Zensical's macros shim), and
``define_env`` is idempotent because Zensical calls it once per page. No arithmetic happens here:
every number comes from one ``calc`` function, named in each macro's docstring.
"""

from __future__ import annotations

from macros import tables


def define_env(env) -> None:
    """Register every macro the pages call."""
    for name in tables.MACROS:
        env.macro(getattr(tables, name), name)
