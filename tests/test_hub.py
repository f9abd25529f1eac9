"""CONFIG may be a Hugging Face Hub id: fetched through huggingface_hub, from a local stand-in for the Hub.

The stand-in (a threading HTTP server on 127.0.0.1, ``HF_ENDPOINT`` pointed at it) answers
``/<namespace>/<name>/resolve/<revision>/config.json`` the way huggingface.co does for ``hf_hub_download``: a HEAD
with ``ETag`` and ``X-Repo-Commit``, then the GET; failures carry the Hub's ``X-Error-Code`` header
(``RepoNotFound``, ``GatedRepo``, ``RevisionNotFound``, ``EntryNotFound``; huggingface_hub's
``utils/_http.py`` ``hf_raise_for_status`` maps them to its errors). The real Hub is never contacted.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("huggingface_hub")

TINY = {"model_type": "llama", "vocab_size": 1000, "hidden_size": 64, "intermediate_size": 176,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": False}
TINY_V1 = {**TINY, "num_hidden_layers": 3}
REPOS = {"acme/tiny-llama": {"main": TINY, "v1": TINY_V1}, "acme/gated": {"main": TINY}, "acme/empty": {}}
GATED = {"acme/gated"}
TOKEN = "hf_test_token"


class _Hub(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def _answer(self, body_wanted: bool) -> None:
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) != 5 or parts[2] != "resolve":
            return self._error(404, "RepoNotFound")
        repo, rev, filename = f"{parts[0]}/{parts[1]}", parts[3], parts[4]
        if repo not in REPOS:
            return self._error(401, "RepoNotFound")
        if repo in GATED and self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._error(401, "GatedRepo")
        if filename != "config.json" or (not REPOS[repo] and rev == "main"):
            return self._error(404, "EntryNotFound")
        if rev not in REPOS[repo]:
            return self._error(404, "RevisionNotFound")
        body = json.dumps(REPOS[repo][rev]).encode()
        self.send_response(200)
        self.send_header("ETag", '"' + hashlib.sha1(body).hexdigest() + '"')
        self.send_header("X-Repo-Commit", hashlib.sha1(f"{repo}@{rev}".encode()).hexdigest())  # one per revision
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        if body_wanted:
            self.wfile.write(body)

    def _error(self, status: int, code: str) -> None:
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self):  # noqa: N802 - http.server's names
        self._answer(False)

    def do_GET(self):  # noqa: N802
        self._answer(True)


@pytest.fixture(scope="module")
def hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def calc(args, endpoint: str, home: Path, token: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1")
    if token:
        env["HF_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "calc", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_a_hub_id_counts_like_the_same_config_json_on_disk(hub, tmp_path):
    local = tmp_path / "config.json"
    local.write_text(json.dumps(TINY))
    from_file = calc(["params", str(local), "--json"], hub, tmp_path / "hf")
    from_hub = calc(["params", "acme/tiny-llama", "--json"], hub, tmp_path / "hf")
    assert from_hub.returncode == 0, from_hub.stderr
    assert json.loads(from_hub.stdout) == json.loads(from_file.stdout)
    fit = calc(["fit", "acme/tiny-llama", "--gpu", "rtx-4090", "--json"], hub, tmp_path / "hf")
    assert fit.returncode == 0 and json.loads(fit.stdout)[0]["gpu"] == "rtx-4090"


def test_revision_selects_a_branch_or_tag(hub, tmp_path):
    out = calc(["params", "acme/tiny-llama", "--revision", "v1", "--json"], hub, tmp_path / "hf")
    main = calc(["params", "acme/tiny-llama", "--json"], hub, tmp_path / "hf")
    three, two = json.loads(out.stdout), json.loads(main.stdout)
    assert three["total_params"] > two["total_params"]
    # the v1 config has 3 layers instead of 2: one more layer's LoRA modules
    assert sum(m["count"] for m in three["modules"]) * 2 == sum(m["count"] for m in two["modules"]) * 3


def test_a_cached_config_is_used_when_the_hub_is_unreachable(hub, tmp_path):
    home = tmp_path / "hf"
    assert calc(["params", "acme/tiny-llama", "--json"], hub, home).returncode == 0
    offline = calc(["params", "acme/tiny-llama", "--json"], f"http://127.0.0.1:{_closed_port()}", home)
    assert offline.returncode == 0, offline.stderr


@pytest.mark.parametrize("args, token, message", [
    (["params", "acme/nope"], None, "acme/nope: no such model on the Hugging Face Hub"),
    (["params", "acme/gated"], None, "acme/gated: is gated: accept its licence on huggingface.co, then set HF_TOKEN"),
    (["params", "acme/tiny-llama", "--revision", "v9"], None, "acme/tiny-llama@v9: has no revision 'v9'"),
    (["params", "acme/empty"], None, "acme/empty: has no config.json"),
])
def test_each_failure_is_one_line_naming_the_repository(hub, tmp_path, args, token, message):
    out = calc(args, hub, tmp_path / "hf", token)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [f"error: {message}" + out.stderr.strip().split(message, 1)[1]]


def test_a_gated_model_opens_with_a_token(hub, tmp_path):
    out = calc(["params", "acme/gated", "--json"], hub, tmp_path / "hf", token=TOKEN)
    assert out.returncode == 0, out.stderr


def test_offline_and_not_cached_fails_at_once_with_one_line(tmp_path):
    start = time.monotonic()
    out = calc(["params", "Qwen/Qwen3-8B"], f"http://127.0.0.1:{_closed_port()}", tmp_path / "hf")
    assert out.returncode == 2
    assert out.stderr.strip() == ("error: Qwen/Qwen3-8B: cannot reach the Hugging Face Hub (offline, or "
                                  "HF_HUB_OFFLINE=1) and its config.json is not in the local cache")
    assert time.monotonic() - start < 20   # not huggingface_hub's five retries with back-off


def test_things_that_are_not_hub_ids_are_refused_before_any_request(tmp_path):
    out = calc(["params", "a/b/c"], "http://127.0.0.1:9", tmp_path / "hf")
    assert out.returncode == 2 and "is not a preset id, an existing config.json or a Hugging Face Hub id" in out.stderr
    out = calc(["params", "llama-3.2-1b", "--revision", "main"], "http://127.0.0.1:9", tmp_path / "hf")
    assert out.returncode == 2 and out.stderr.strip() == "error: --revision: applies to a Hugging Face Hub id, not to a preset"
