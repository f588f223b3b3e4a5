"""The README and docs/ against the code: every config option and analysis command they name exists, every one
that exists is documented, every relative link resolves, and the README stays a newcomer's page."""

from __future__ import annotations

import re

import pytest

from analysis.__main__ import build_parser
from suite import CONF_DIR
from tests.conftest import ROOT

GROUPS = ("optimizer", "workload", "workload/data", "schedule", "tuning", "cluster", "study")
ALIASES = {"optimizer": {"all"}, "workload": {"cpu"}}  # expanded by the sweep, not files


def documents() -> dict[str, str]:
    return {
        p.relative_to(ROOT).as_posix(): p.read_text()
        for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    }


def options(group: str) -> set[str]:
    return {p.stem for p in (CONF_DIR / group).glob("*.yaml")}


def test_every_config_option_the_docs_name_exists():
    text = "\n".join(t for name, t in documents().items() if name != "docs/bad-input.md")  # (it names wrong ones)
    for group in GROUPS:
        named = set(re.findall(rf"(?<![\w./]){re.escape(group)}=([A-Za-z0-9_]+)\b", text))
        unknown = named - options(group) - ALIASES.get(group, set())
        assert unknown == set(), f"{group}: {sorted(unknown)}"


@pytest.mark.parametrize("group", GROUPS)
def test_every_config_option_that_exists_is_documented(group):
    text = "\n".join(documents().values())
    missing = {o for o in options(group) if f"`{o}`" not in text and f"{group}={o}" not in text}
    assert missing == set(), f"{group}: {sorted(missing)} in no document"


def test_the_analysis_commands_in_the_docs_are_the_ones_that_exist():
    commands = set(build_parser()._subparsers._group_actions[0].choices)  # (argparse's registry of subcommands)
    text = "\n".join(documents().values())
    named = set(re.findall(r"python -m analysis ([a-z_]+)", text))
    assert named - commands == set()
    assert commands - named == set(), "an analysis command no document shows"


def test_every_relative_link_resolves():
    for name, text in documents().items():
        base = (ROOT / name).parent
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (base / target).exists(), f"{name}: {target}"


def test_the_readme_is_a_newcomers_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for first in ('pip install -e ".[dev]"', "python -m suite optimizer=adamw workload=lm_tiny", "pytest", "docs/"):
        assert first in readme
