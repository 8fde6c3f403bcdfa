"""Tests guard the docs: every setting, CLI command and endpoint is documented."""

from __future__ import annotations

import re

from api.app import create_app
from catalog.settings import REPO_ROOT, Settings
from govshare.cli import app as cli

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented():
    doc = (REPO_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert f"`GOVSHARE_{name.upper()}`" in doc, name


def test_every_cli_command_is_in_the_readme():
    for command in cli.registered_commands:
        name = command.name or command.callback.__name__
        assert f"`govshare {name}" in README, name
    for group in cli.registered_groups:
        for command in group.typer_instance.registered_commands:
            name = command.name or command.callback.__name__.replace("_", "-")
            assert f"`govshare {group.name} {name}" in README, (group.name, name)


def test_every_endpoint_is_in_the_readme(settings):
    paths = create_app(settings).openapi()["paths"]
    for path, operations in paths.items():
        for method in operations:
            assert f"`{method.upper()} {path}" in README, (method, path)


def test_ci_runs_the_readme_test_command():
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = [line for line in ci.splitlines() if line and not line.startswith(("#", "set", "cd"))]
    assert command[-1] == "./run tests"
    assert re.search(r"^\./run tests", README, re.MULTILINE)
