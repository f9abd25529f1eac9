"""The releases pages name (calc.versions) are the ones the project pins and the verify suite runs."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from calc.versions import CHECKED_AGAINST, label, version

ROOT = Path(__file__).resolve().parent.parent


def _pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = {}
    for req in project["optional-dependencies"]["verify"]:
        name, _, ver = req.partition("==")
        pins[name.strip().lower()] = ver.strip()
    return pins


@pytest.mark.parametrize("name", sorted(CHECKED_AGAINST))
def test_each_checked_release_is_the_verify_extras_pin(name):
    assert _pins()[name] == version(name)


def test_the_readme_test_command_installs_the_verify_extra():
    # CI runs the README's command (scripts/readme_commands.py), so this is what CI and a newcomer install
    from scripts.readme_commands import commands

    _, test = commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert re.search(r'pip install -e "\.\[[^\]]*\bverify\b[^\]]*\]"', test), test
    assert "torch==" not in test  # the pin lives in one place: the verify extra


def test_labels_read_as_pages_write_them():
    assert label("peft") == "PEFT " + _pins()["peft"]
    with pytest.raises(KeyError, match="checked against"):
        version("jax")


@pytest.mark.parametrize("name", sorted(CHECKED_AGAINST))
def test_installed_release_is_the_checked_one(name):
    try:
        installed = metadata.version(name)
    except metadata.PackageNotFoundError:
        pytest.skip(f"{name} is not installed (the verify extra)")
    assert installed.split("+")[0] == version(name)
