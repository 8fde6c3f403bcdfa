"""The govshare command, through typer's runner (same process, real lake)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from govshare.cli import app
from tests.conftest import population_rows, write_delivery

runner = CliRunner()


@pytest.fixture(autouse=True)
def runtime(monkeypatch, settings):
    monkeypatch.setenv("GOVSHARE_HOME", str(settings.home))
    monkeypatch.setenv("COLUMNS", "200")


def test_ingest_prints_counts_and_version(tmp_path, contracts):
    rows = population_rows(30)
    rows[2]["region_code"] = "999999"
    path = write_delivery(contracts["population"], rows, tmp_path / "p.csv", "gbk")
    result = runner.invoke(app, ["ingest", "population", str(path)])
    assert result.exit_code == 0, result.output
    assert "population: published" in result.output
    assert "read 30" in result.output and "published 29" in result.output
    assert "quarantined 1" in result.output and "version v1" in result.output

    status = runner.invoke(app, ["status"])
    assert status.exit_code == 0, status.output
    assert "人口基础信息" in status.output and "published version 1" in status.output


def test_refused_delivery_exits_non_zero_with_reason(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    result = runner.invoke(app, ["ingest", "population", str(path)])
    assert result.exit_code == 1
    assert "failed" in result.output and "empty.csv" in result.output


def test_unknown_dataset(tmp_path):
    result = runner.invoke(app, ["ingest", "nothing", str(tmp_path / "x.csv")])
    assert result.exit_code == 2
    assert "unknown dataset" in result.output


def test_contracts_command_reports_broken_contract(tmp_path, monkeypatch):
    assert runner.invoke(app, ["contracts"]).exit_code == 0
    (tmp_path / "broken.yaml").write_text("dataset: broken\n", encoding="utf-8")
    monkeypatch.setenv("GOVSHARE_SCHEMAS_DIR", str(tmp_path))
    result = runner.invoke(app, ["contracts"])
    assert result.exit_code == 2
    assert "broken.yaml" in result.output and "at title" in result.output
