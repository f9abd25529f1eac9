"""Build-time assets: the offline Vega bundle that makes the inline SVG charts interactive.

``vl_convert.javascript_bundle()`` returns Vega, Vega-Lite and vega-embed as one self-contained script
(no CDN, version pinned through PyPI). It is written into ``docs/assets/javascripts/`` (git-ignored) when
missing or made by another vl-convert version, so MkDocs copies it into the site like any other file.
"""

from __future__ import annotations

from pathlib import Path

BUNDLE_NAME = "vega-bundle.js"


def _stamp() -> str:
    import vl_convert

    return f"/* vl-convert-python {getattr(vl_convert, '__version__', 'unknown')} bundle; generated, do not edit */\n"


def ensure_vega_bundle(docs_dir: str | Path) -> Path:
    """Write the bundle into ``<docs_dir>/assets/javascripts/`` unless an identical-version one is there."""
    import vl_convert

    target = Path(docs_dir) / "assets" / "javascripts" / BUNDLE_NAME
    stamp = _stamp()
    if target.is_file():
        with target.open(encoding="utf-8") as fh:
            if fh.readline() == stamp:
                return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(stamp + vl_convert.javascript_bundle(), encoding="utf-8")
    tmp.replace(target)  # atomic: a concurrent build never sees half a bundle
    return target
