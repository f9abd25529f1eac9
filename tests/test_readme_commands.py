"""CI runs the README's set-up commands as written: the extractor finds exactly them, or refuses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scripts.readme_commands import commands

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_has_a_site_command_and_a_test_command():
    site, test = commands(README)
    assert site.startswith("python3 -m venv .venv") and site.endswith("mkdocs serve")
    assert test.startswith("python3 -m venv .venv") and "pytest" in test


def test_ci_builds_with_the_site_command_instead_of_serving():
    out = subprocess.run([sys.executable, "scripts/readme_commands.py", "site", "--build", "/tmp/some site"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    site, _ = commands(README)
    assert out == site.replace("mkdocs serve", "mkdocs build --strict -d '/tmp/some site'")


def test_ci_runs_both_extracted_commands():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "scripts/readme_commands.py site --build" in ci and "scripts/readme_commands.py test" in ci
    assert 'bash -c "$test_cmd"' in ci and "exit 1" in ci.split('bash -c "$test_cmd"')[1]


@pytest.mark.parametrize("section, problem", [
    ("no section here", "no '## Set up' section"),
    ("## Set up\n\n```bash\npip install -e . && mkdocs serve\n```\n", "exactly two bash blocks"),
    ("## Set up\n\n```bash\nmkdocs serve\n```\n\n```bash\npip install x\n```\n", "must run pytest"),
    ("## Set up\n\n```bash\nmkdocs build\n```\n\n```bash\npytest\n```\n", "end with 'mkdocs serve'"),
    ("## Set up\n\n```bash\na &&\nmkdocs serve\n```\n\n```bash\npytest\n```\n", "one line each"),
])
def test_a_readme_ci_could_not_follow_is_refused(section, problem):
    with pytest.raises(ValueError, match=problem):
        commands("# Title\n\n" + section)
