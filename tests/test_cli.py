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


def _runs_table_messages(output: str) -> str:
    """The message column of `govshare status`'s "Last runs" table, its wrapped lines joined."""
    table = output[output.index("Last runs") :]
    cells = [line.split("│")[-2] for line in table.splitlines() if line.count("│") > 2]
    return " ".join(" ".join(cells).split())


def test_status_shows_reasons_whole_and_calls_it_the_quarantine_rate(
    tmp_path, contracts, settings, monkeypatch
):
    from catalog.store.lake import Lake
    from catalog.store.versions import latest_version, recent_runs

    good = write_delivery(contracts["population"], population_rows(20), tmp_path / "good.csv")
    assert runner.invoke(app, ["ingest", "population", str(good)]).exit_code == 0
    bad_rows = [dict(r, region_code="000000") for r in population_rows(20, seed=4)]
    bad = write_delivery(contracts["population"], bad_rows, tmp_path / "bad.csv")
    assert runner.invoke(app, ["ingest", "population", str(bad)]).exit_code == 1
    with Lake(settings).reader() as con:
        reason = next(r.message for r in recent_runs(con) if r.status == "rejected")
        quality = latest_version(con, "population").quality
    assert len(reason) > 80
    # Versions (and so the API) name the rate; failure_rate stays beside it, deprecated.
    assert quality["quarantine_rate"] == quality["failure_rate"] == 0.0
    monkeypatch.setenv("COLUMNS", "160")  # narrow enough for rich to wrap the reason
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert "quarantine rate" in result.output and "failure rate" not in result.output
    assert "0.00%" in result.output  # version 1: nothing quarantined
    assert " ".join(reason.split()) in _runs_table_messages(result.output)


def test_demo_without_serving_says_what_is_true_and_reissues_nothing(settings, monkeypatch):
    """`govshare demo --no-serve`: the tokens, where they are kept and how to start the API;
    no placeholder, no call to a server that is not running. Run again, it keeps the demo
    users and their tokens instead of issuing new ones."""
    from sqlalchemy import func, select

    from catalog.state.db import StateStore
    from catalog.state.models import Token

    # The Dagster ingest of the sample drops is tested in tests/pipelines.
    monkeypatch.setattr("govshare.cli._ingest_samples_with_dagster", lambda *_: None)
    listing = settings.home / "demo-tokens.txt"

    def demo() -> tuple[str, str, int]:
        result = runner.invoke(app, ["demo", "--no-serve"])
        assert result.exit_code == 0, result.output
        store = StateStore(settings)
        with store.reading() as session:
            tokens = session.scalar(select(func.count(Token.id)))
        store.close()
        return result.output, listing.read_text(encoding="utf-8"), tokens

    output, tokens_listed, issued = demo()
    consumer = next(
        line.split("\t")[3] for line in tokens_listed.splitlines() if line.startswith("civil_")
    )
    assert consumer in output and str(listing) in " ".join(output.split())
    assert "<" not in output and "curl" not in output
    assert "not running" in output and "govshare serve" in output
    assert issued == 8  # the office, five providers, a consumer and an analyst

    again, listed_again, issued_again = demo()
    assert listed_again == tokens_listed and issued_again == issued
    assert "kept from the last demo run" in again
