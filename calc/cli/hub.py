"""A model's ``config.json`` from the Hugging Face Hub, by repository id (``Qwen/Qwen3-8B``).

The command line accepts, wherever it takes CONFIG, a preset id, a path, or a Hub id; this module handles the last.
It uses ``huggingface_hub.hf_hub_download`` (imported only here, only when a Hub id is given), so it honours what
that library honours: its cache (``HF_HOME`` / ``HF_HUB_CACHE``, a cached file is used offline), ``HF_TOKEN`` (or a
stored login) for gated and private repositories, ``HF_ENDPOINT`` (a mirror; the tests point it at a local stand-in),
``HF_HUB_OFFLINE=1``, and ``--revision`` (a branch, tag or commit). Each way it can fail becomes one line naming the
repository: not found, gated without a token, no such revision, no config.json, offline and not cached.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

from calc.errors import CalcError

#: A Hub repository id: ``namespace/name`` (the Hub's own rule: letters, digits, ``-``, ``_``, ``.``; no ``--`` or
#: ``..``; at most 96 characters each side).
HUB_ID = re.compile(r"^(?!.*(--|\.\.))[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


def is_hub_id(ref: str) -> bool:
    """Does ``ref`` read as a Hub repository id (and not as a path with a suffix)?"""
    return bool(HUB_ID.match(ref)) and not ref.endswith((".json", ".yaml", ".yml"))


def fetch_config(repo_id: str, revision: str | None = None) -> Path:
    """The local path of ``repo_id``'s ``config.json`` (downloaded into, or read from, the Hub cache).

    Raises :class:`CalcError` with ``source`` = the repository id and a one-line reason.
    """
    try:
        import huggingface_hub
        from huggingface_hub import errors
        from huggingface_hub.utils import disable_progress_bars, logging
    except ImportError:  # pragma: no cover - it is a dependency of the package
        raise CalcError("reading a config from the Hub needs huggingface_hub (pip install -e .)",
                        source=repo_id) from None
    where = f"{repo_id}@{revision}" if revision else repo_id
    # the one line below is the message; the library's own retry warnings and progress bars would add more
    logging.set_verbosity_error()
    disable_progress_bars()
    try:
        offline = not _reachable(huggingface_hub.constants.ENDPOINT)
        return Path(huggingface_hub.hf_hub_download(repo_id, "config.json", revision=revision,
                                                    local_files_only=offline))
    except errors.GatedRepoError:
        raise CalcError("is gated: accept its licence on huggingface.co, then set HF_TOKEN (or run "
                        "`hf auth login`)", source=where) from None
    except errors.RepositoryNotFoundError:
        raise CalcError("no such model on the Hugging Face Hub (a private one needs HF_TOKEN)", source=where) from None
    except errors.RevisionNotFoundError:
        raise CalcError(f"has no revision {revision!r}", source=where) from None
    except errors.RemoteEntryNotFoundError:
        raise CalcError("has no config.json", source=where) from None
    except errors.LocalEntryNotFoundError:
        raise CalcError("cannot reach the Hugging Face Hub (offline, or HF_HUB_OFFLINE=1) and its config.json is "
                        "not in the local cache", source=where) from None
    except errors.HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        raise CalcError(f"the Hub answered HTTP {status or '?'}", source=where) from None
    except (OSError, ValueError) as err:
        raise CalcError(f"cannot read its config.json ({type(err).__name__})", source=where) from None


def _reachable(endpoint: str, timeout_s: float = 5.0) -> bool:
    """Can a TCP connection to the Hub endpoint be opened? huggingface_hub retries a failed connection five times
    with back-off (about 23 s) before it falls back to its cache; a machine without a network should hear "offline"
    at once, and still be served from the cache."""
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False
