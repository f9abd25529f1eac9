"""The mkdocs-macros module: thin glue from ``calc`` to Markdown.

Registered with ``plugins: - macros: module_name: macros`` in mkdocs.yml. Only ``env.macro``,
``env.filter``, ``env.variables`` and ``env.conf`` are used (portable to ProperDocs and Zensical's macros
shim), and ``define_env`` is idempotent because Zensical calls it once per page. No arithmetic happens
here: every number comes from one ``calc`` function, named in each macro's docstring.

Each module listed in :data:`MACRO_MODULES` exports ``MACROS``, the names of its macro functions.
"""

from __future__ import annotations

import importlib

from macros import calculator, charts, rot
from macros.assets import ensure_vega_bundle

MACRO_MODULES = ("tables", "rot", "lora_pages", "quant_pages", "memory_pages", "refs", "snippets", "site_pages",
                 "calculator")


def define_env(env) -> None:
    """Register every macro the pages call, and make sure the offline Vega bundle is in docs/."""
    modules = [importlib.import_module(f"macros.{name}") for name in MACRO_MODULES]  # registers the tables
    conf = getattr(env, "conf", None) or {}
    charts.SITE_URL = conf.get("site_url")
    docs_dir = conf.get("docs_dir")
    if docs_dir:
        ensure_vega_bundle(docs_dir)
        calculator.write_assets(docs_dir)
        rot.write_exports(docs_dir)
    for module in modules:
        for name in module.MACROS:
            env.macro(getattr(module, name), name)
