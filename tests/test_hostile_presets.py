"""Hostile preset files: every one is rejected with one line naming the file and the field, or rendered inert.

The corpus is ``tests/fixtures/hostile/``: ``rejected/*.yaml`` (one file per case, the first line says what it
is), ``rejected/duplicate-id/`` (two files whose ids read alike: ``acme-7b`` and ``acme_7b``), and
``accepted/markup-name.yaml`` (HTML and JavaScript in every display field, which is legal and must show as
text everywhere). Each rejected case is checked three ways:

* :func:`calc.presets.load_preset` (the duplicate case: :func:`calc.presets.load_presets` on its directory)
  raises :class:`CalcError` whose one-line message names the file and whose ``field`` is the offending one;
  problems with the file itself (not UTF-8, a YAML alias, a syntax error) have no field and name the line;
* ``python -m calc preset check FILE`` exits 2 with exactly one line on stderr and nothing on stdout;
* for a sample of cases, the site build with the file added fails — and ``scripts/build_site.sh`` leaves the
  previous good site byte-for-byte in place (plain ``mkdocs build`` empties the site directory first).

Duplicate ids: an id must be lower case and equal its file name, so two files in one directory can never
share an id exactly; the loader compares ids with ``_`` and ``-`` read alike (:func:`calc.preset_files.id_key`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from calc.cli import main
from calc.errors import CalcError
from calc.preset_files import MAX_FILE_BYTES
from calc.presets import load_preset, load_presets
from tests.conftest import BUILD_ENV

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "fixtures" / "hostile"
REJECTED = CORPUS / "rejected"
ACCEPTED = CORPUS / "accepted"
DUPLICATES = REJECTED / "duplicate-id"

# case (file stem) -> (CalcError.field, a phrase of the message). field None: the file as a whole is bad.
EXPECTED: dict[str, tuple[str | None, str]] = {
    "missing-required": ("stated_params_source", "Field required"),
    "missing-config-key": ("config.hidden_size", "is required"),
    "unknown-field": ("license", "Extra inputs are not permitted"),
    "unknown-config-key": ("config.rope_theta", "not a key calc reads for llama"),
    "wrong-type": ("config.num_hidden_layers", "must be an integer, got '32'"),
    "wrong-type-stated": ("stated_params", "valid number"),
    "bool-as-int": ("config.num_hidden_layers", "must be an integer, got True"),
    "zero-size": ("config.hidden_size", "must be positive, got 0"),
    "negative-size": ("config.intermediate_size", "must be positive, got -11008"),
    "negative-stated": ("stated_params", "greater than 0"),
    "kv-heads-not-dividing": ("config.num_key_value_heads", "(12) must divide num_attention_heads (32)"),
    "head-dim-gpt2": ("config.head_dim", "must equal hidden_size / num_attention_heads for gpt2"),
    "head-dim-falcon": ("config.head_dim", "must equal hidden_size / num_attention_heads for falcon"),
    "id-not-file-name": ("id", "must equal the file name 'id-not-file-name'"),
    "source-url-javascript": ("source_url", "must be an http(s) URL"),
    "source-url-file": ("source_url", "must be an http(s) URL"),
    "source-url-data": ("source_url", "must be an http(s) URL"),
    "source-url-ftp": ("stated_params_source", "must be an http(s) URL"),
    "huge-hidden-size": ("config.hidden_size", "absurdly large"),
    "huge-layers": ("config.num_hidden_layers", "absurdly large"),
    "huge-experts": ("config.num_local_experts", "absurdly large"),
    "huge-stated": ("stated_params", "less than"),
    "nan-stated": ("stated_params", "less than"),
    "huge-digits": (None, "line 10: invalid value (Exceeds the limit (4300 digits)"),
    "model-type-list": ("config.model_type", "unsupported ['llama']"),
    "unsupported-model-type": ("config.model_type", "unsupported 'bert'"),
    "multiline-name": ("name", "must be one line"),
    "long-name": ("name", "at most 80 characters"),
    "terminal-escape": ("\x1b]0;owned\x07\x1b[2J", "Extra inputs are not permitted"),
    "alias-bomb": (None, "line 3: YAML aliases are not allowed"),
    "deep-nesting": (None, "nested more than 32 levels deep"),
    "duplicate-key": (None, "line 15: duplicate key 'hidden_size'"),
    "merge-key": (None, "YAML merge keys (<<) are not allowed"),
    "python-tag": (None, "could not determine a constructor for the tag 'tag:yaml.org,2002:python/object"),
    "bad-date": (None, "line 8: invalid value (month must be in 1..12)"),
    "invalid-yaml": (None, "invalid YAML"),
    "not-utf8": (None, "is not UTF-8"),
    "control-character": (None, "line 3: invalid YAML (unacceptable character #x0007"),
    "not-a-mapping": (None, "must be a YAML mapping"),
    "empty": (None, "must be a YAML mapping"),
}
CASES = sorted(EXPECTED)


def case_path(case: str) -> Path:
    return REJECTED / f"{case}.yaml"


def test_every_corpus_file_has_an_expectation():
    assert sorted(p.stem for p in REJECTED.glob("*.yaml")) == CASES
    assert sorted(p.name for p in DUPLICATES.glob("*.yaml")) == ["acme-7b.yaml", "acme_7b.yaml"]
    for path in REJECTED.glob("*.yaml"):
        assert path.read_bytes().startswith(b"# hostile case: "), path.name


# -- load_preset ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES)
def test_load_preset_rejects_with_one_line_naming_file_and_field(case):
    path = case_path(case)
    field, phrase = EXPECTED[case]
    with pytest.raises(CalcError) as exc:
        load_preset(path)
    err = exc.value
    assert err.source == str(path)
    assert err.field == field
    assert phrase in err.message, err.message
    message = str(err)
    assert message.startswith(f"{path}: {field + ': ' if field else ''}")
    assert "\n" not in message
    assert len(message) < 600


def test_the_duplicate_ids_are_each_valid_but_rejected_together():
    for path in DUPLICATES.glob("*.yaml"):
        load_preset(path)
    with pytest.raises(CalcError) as exc:
        load_presets(DUPLICATES)
    assert exc.value.source == str(DUPLICATES / "acme_7b.yaml")
    assert exc.value.field == "id"
    assert "acme-7b.yaml has the same id" in exc.value.message


def test_a_file_over_the_size_cap_is_rejected(tmp_path):
    path = tmp_path / "too-big.yaml"
    text = (REJECTED / "missing-required.yaml").read_text(encoding="utf-8")
    path.write_text("# " + "x" * MAX_FILE_BYTES + "\n" + text, encoding="utf-8")
    with pytest.raises(CalcError, match=r"bytes; files like it are at most") as exc:
        load_preset(path)
    assert exc.value.source == str(path)


def test_the_markup_preset_is_accepted_verbatim():
    preset = load_preset(ACCEPTED / "markup-name.yaml")
    assert preset.name == "<script>alert(1)</script><img src=x onerror=alert(2)>"
    assert "onmouseover" in preset.family and "javascript:" in preset.stated_params_note


# -- the CLI ----------------------------------------------------------------------------------------------------

def _cli(capsys, *files: Path) -> tuple[int, str, str]:
    code = main(["preset", "check", *map(str, files)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", CASES)
def test_preset_check_prints_exactly_one_line_and_exits_2(capsys, case):
    path = case_path(case)
    field, phrase = EXPECTED[case]
    code, out, err = _cli(capsys, path)
    assert (code, out) == (2, "")
    assert err.endswith("\n") and err.count("\n") == 1, err
    shown_field = field.encode("unicode_escape").decode("ascii") if field else None
    assert err.startswith(f"error: {path}: {shown_field + ': ' if shown_field else ''}"), err
    assert phrase.split(" (")[0] in err
    assert "\x1b" not in err and "\x07" not in err  # terminal escapes from the file are shown escaped


def test_preset_check_reports_the_duplicate_once(capsys):
    code, out, err = _cli(capsys, DUPLICATES)
    assert code == 2
    assert [line for line in out.splitlines() if line.startswith("== ")][0].startswith("== acme-7b: ")
    assert "acme_7b" not in out
    assert err.count("\n") == 1
    assert err.startswith(f"error: {DUPLICATES / 'acme_7b.yaml'}: id: duplicate id 'acme_7b'")


def test_python_m_calc_preset_check_over_the_whole_corpus():
    files = [str(case_path(c)) for c in CASES]
    proc = subprocess.run([sys.executable, "-m", "calc", "preset", "check", *files], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == len(files), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for line, name in zip(lines, files):
        assert line.startswith(f"error: {name}: ")


# -- site builds ------------------------------------------------------------------------------------------------

_SKIP_DIRS = {".git", "site", ".ci-venv", "venv", ".venv", "__pycache__", ".pytest_cache", ".hypothesis", ".whl",
              "node_modules", "build", "dist"}


# Git-ignored files a build generates and would otherwise regenerate in every copy (4-5 s for the Vega bundle);
# version-stamped, so a stale one is replaced by the build itself (macros/assets.py).
GENERATED = ["docs/assets/javascripts/vega-bundle.js"]


def copy_project(dest: Path) -> Path:
    """The project as a fresh clone (plus uncommitted work) would have it: git's tracked and untracked-but-not-
    ignored files; without git, the tree minus build outputs and environments."""
    listed = None
    if shutil.which("git"):
        proc = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                              capture_output=True, timeout=60)
        if proc.returncode == 0:
            listed = [name for name in proc.stdout.decode("utf-8").split("\0") if name]
    if listed is None:
        shutil.copytree(REPO, dest, ignore=lambda d, names: [n for n in names if n in _SKIP_DIRS
                                                               or n.startswith(".site")])
        return dest
    for name in listed + GENERATED:
        src = REPO / name
        if src.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


def build_script(project: Path, dest: str = "site") -> subprocess.CompletedProcess:
    """``scripts/build_site.sh DEST`` in ``project`` with this interpreter."""
    env = {**os.environ, **BUILD_ENV, "PYTHON": sys.executable}
    return subprocess.run(["bash", "scripts/build_site.sh", dest], cwd=project, env=env, capture_output=True,
                          text=True, timeout=600)


def tree_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


LLAMA_2_70B_CONFIG = {  # meta-llama/Llama-2-70b-hf config.json as published; not a bundled preset
    "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
    "hidden_size": 8192, "initializer_range": 0.02, "intermediate_size": 28672, "max_position_embeddings": 4096,
    "model_type": "llama", "num_attention_heads": 64, "num_hidden_layers": 80, "num_key_value_heads": 8,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None, "tie_word_embeddings": False,
    "torch_dtype": "float16", "transformers_version": "4.32.0.dev0", "use_cache": True, "vocab_size": 32000,
}


@pytest.fixture(scope="module")
def good_build(tmp_path_factory):
    """A copy of the project with the markup preset added and a Llama-2-70B preset made by ``preset new``,
    built with scripts/build_site.sh into ``site/``."""
    project = copy_project(tmp_path_factory.mktemp("project") / "p")
    shutil.copy2(ACCEPTED / "markup-name.yaml", project / "calc" / "presets" / "markup-name.yaml")
    config = tmp_path_factory.mktemp("config") / "config.json"
    config.write_text(json.dumps(LLAMA_2_70B_CONFIG), encoding="utf-8")
    new = subprocess.run([sys.executable, "-m", "calc", "preset", "new", "--from-config", str(config), "--id",
                          "llama-2-70b", "--source-url",
                          "https://huggingface.co/meta-llama/Llama-2-70b-hf/blob/main/config.json",
                          "--stated-params", "70B", "--name", "Llama 2 70B", "--family", "Llama 2"],
                         cwd=project, capture_output=True, text=True, timeout=120)
    assert new.returncode == 0, new.stderr
    proc = build_script(project)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return project, project / "site"


def _pages(site: Path) -> dict[str, str]:
    return {p.relative_to(site).as_posix(): p.read_text(encoding="utf-8") for p in sorted(site.rglob("*.html"))}


def test_a_preset_made_by_preset_new_shows_on_the_home_and_presets_pages(good_build):
    _, site = good_build
    for page in ("index.html", "presets/index.html"):
        soup = BeautifulSoup((site / page).read_text(encoding="utf-8"), "html.parser")
        rows = [[td.get_text(strip=True) for td in tr.find_all("td")] for tr in soup.find_all("tr")]
        hits = [r for r in rows if "Llama 2 70B" in r]
        assert hits, f"{page}: no row for Llama 2 70B"
        assert any("68,976,648,192" in r for r in hits), hits


MARKUP_TEXTS = ("<script>alert(1)</script>", "<img src=x onerror=alert(2)>", "<b onmouseover=alert(3)>",
                "<iframe src=javascript:alert(4)>", "<svg onload=alert(6)>")


def test_the_markup_preset_renders_escaped_on_every_page(good_build):
    _, site = good_build
    pages = _pages(site)
    shown = 0
    for name, html in pages.items():
        for raw in MARKUP_TEXTS:
            assert raw not in html, f"{name}: unescaped {raw!r}"
        assert not re.search(r"<script[^>]*>\s*alert", html), name
        soup = BeautifulSoup(html, "html.parser")
        for el in soup.find_all(True):
            handlers = [a for a in el.attrs if a.lower().startswith("on")]
            assert not handlers, f"{name}: <{el.name} {handlers}>"
            for attr in ("href", "src", "action", "formaction"):
                value = str(el.get(attr) or "").strip().lower()
                assert not value.startswith(("javascript:", "data:", "vbscript:")), f"{name}: {el.name} {attr}={value}"
        for el in soup.find_all(["iframe", "object", "embed"]):
            pytest.fail(f"{name}: <{el.name}> in the page")
        for script in soup.find_all("script"):
            assert "alert(" not in script.get_text(), f"{name}: a script holds data from the preset"
        if "&lt;script&gt;alert(1)&lt;/script&gt;" in html:
            shown += 1
            text = soup.get_text()
            assert "<script>alert(1)</script><img src=x onerror=alert(2)>" in text  # shown to the reader as text
    assert shown >= 2, "the markup preset should appear (escaped) on the home and presets pages"
    index = (site / "search" / "search_index.json").read_text(encoding="utf-8")
    for raw in MARKUP_TEXTS:
        assert raw not in index and json.dumps(raw)[1:-1] not in index


REJECTED_BUILDS = {  # a sample: schema, config rule, file encoding, YAML alias, duplicate id
    "unknown-field": [REJECTED / "unknown-field.yaml"],
    "kv-heads-not-dividing": [REJECTED / "kv-heads-not-dividing.yaml"],
    "not-utf8": [REJECTED / "not-utf8.yaml"],
    "alias-bomb": [REJECTED / "alias-bomb.yaml"],
    "duplicate-id": [DUPLICATES / "acme-7b.yaml", DUPLICATES / "acme_7b.yaml"],
}


@pytest.mark.parametrize("case", sorted(REJECTED_BUILDS) + ["page-error"])
def test_a_failed_build_exits_non_zero_and_keeps_the_good_site(good_build, tmp_path, case):
    good_project, good_site = good_build
    project = copy_project(tmp_path / "p")
    shutil.copytree(good_site, project / "site")
    before = tree_hashes(project / "site")
    if case == "page-error":  # an error raised while pages render, after mkdocs has emptied its site directory
        with (project / "docs" / "faq.md").open("a", encoding="utf-8") as fh:
            fh.write("\n{{ no_such_macro() }}\n")
    else:
        for path in REJECTED_BUILDS[case]:
            shutil.copy2(path, project / "calc" / "presets" / path.name)
    proc = build_script(project)
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "site left as it was" in proc.stderr
    if case != "page-error":
        bad = REJECTED_BUILDS[case][-1].name
        assert bad in proc.stderr, proc.stderr[-2000:]  # the build's error names the file
    assert tree_hashes(project / "site") == before
    assert [p.name for p in project.iterdir() if p.name.startswith(".site")] == []
