"""Freshness against update cycles with a frozen clock (issue 8 §6), notifications of stale
datasets, overdue requests and failed runs, and their webhook delivery with retries against
a real HTTP receiver on localhost (§8)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from catalog.ingest.delivery import run_ingest
from catalog.quality.freshness import fresh_share, freshness
from catalog.quality.notifications import Event, deliver_pending, notify_all, sweep
from catalog.settings import Settings
from catalog.state.db import StateStore
from catalog.state.models import Notification
from catalog.store.lake import Lake
from catalog.store.versions import Version, latest_version
from pipelines.quality.sensors import failure_event
from tests.conftest import Clock, bearer, population_rows, seed_identities, write_delivery

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _version(published_at: datetime) -> Version:
    return Version("population", 1, 1, 10, "h", {}, [], "run", published_at)


def test_a_daily_dataset_is_stale_after_its_cycle_and_grace(contracts):
    daily = contracts["population"]
    assert daily.catalog.update_cycle == "daily"
    grace = 0.25  # a day plus a quarter of a day: 30 hours
    fresh = freshness(daily, _version(T0), T0 + timedelta(hours=29, minutes=59), grace)
    stale = freshness(daily, _version(T0), T0 + timedelta(hours=31), grace)
    assert fresh.status == "fresh" and fresh.stale_since is None
    assert fresh.due_at == T0 + timedelta(hours=30)
    assert stale.status == "stale" and stale.stale_since == T0 + timedelta(hours=30)
    assert freshness(daily, None, T0, grace).status == "never_published"


def test_yearly_uses_the_longest_year_so_a_year_to_the_day_is_not_late(contracts):
    yearly = contracts["geography"]
    assert yearly.catalog.update_cycle == "yearly"
    leap_year_later = T0.replace(year=2027) + timedelta(days=1)  # 366 days after T0
    assert freshness(yearly, _version(T0), leap_year_later, 0.0).status == "fresh"


def test_share_of_a_month_not_overdue_by_hand():
    start, end = T0, T0 + timedelta(days=30)
    # Weekly: allowed age 7 days + 25% = 8.75 days. Versions on day 0 and day 20: overdue
    # from day 8.75 to day 20 (11.25 days) and from day 28.75 to day 30 (1.25 days).
    share = fresh_share([start, start + timedelta(days=20)], "weekly", start, end, 0.25)
    assert share == pytest.approx(1 - 12.5 / 30)
    # A dataset first published mid-month is judged from then on only.
    late = fresh_share([start + timedelta(days=10)], "weekly", start, end, 0.25)
    assert late == pytest.approx(1 - (20 - 8.75) / 20)
    assert fresh_share([], "weekly", start, end, 0.25) is None


@pytest.fixture
def published(tmp_path, settings, contracts):
    """Population published once (now), identities seeded; (settings, tokens, version)."""
    contract = contracts["population"]
    lake = Lake(settings)
    path = write_delivery(contract, population_rows(30), tmp_path / "drop.csv")
    assert run_ingest(contract, [path], lake).status == "published"
    with lake.reader() as con:
        version = latest_version(con, "population")
    lake.close()
    tokens = seed_identities(settings, contracts)
    return settings, tokens, version


def test_catalog_entries_flag_a_stale_dataset_with_since_when(published):
    settings, _tokens, version = published
    app = create_app(settings)
    clock = Clock()
    app.state.govshare.clock = clock
    with TestClient(app) as client:
        clock.now = version.published_at + timedelta(hours=1)
        assert client.get("/catalog/population").json()["freshness"]["status"] == "fresh"
        clock.now = version.published_at + timedelta(days=3)
        entry = client.get("/catalog/population").json()["freshness"]
        listing = {e["dataset"]: e for e in client.get("/catalog").json()}
        board = client.get("/quality/freshness").json()
    since = datetime.fromisoformat(entry["stale_since"])
    assert entry["stale"] is True and since == version.published_at + timedelta(hours=30)
    assert listing["population"]["freshness"]["stale"] is True
    assert listing["geography"]["freshness"]["status"] == "never_published"
    assert board[0]["dataset"] == "population" and board[0]["status"] == "stale"


def test_sweep_notifies_stale_datasets_and_overdue_requests_once(published, contracts):
    settings, tokens, version = published
    later = version.published_at + timedelta(days=40)
    app = create_app(settings)
    app.state.govshare.clock = Clock()
    with TestClient(app) as client:
        created = client.post(
            "/requests",
            headers=bearer(tokens["consumer_a"]),
            json={
                "dataset": "population",
                "items": ["id_number", "name"],
                "purpose": "社会救助资格核查",
                "legal_basis": "《社会救助暂行办法》第十条",
                "period_start": date.today().isoformat(),
                "period_end": (date.today() + timedelta(days=300)).isoformat(),
            },
        )
        assert created.status_code == 201, created.text
        store = StateStore(settings)
        lake = Lake(settings)
        with lake.reader() as con:
            first = sweep(store, con, contracts, settings, later)
            again = sweep(store, con, contracts, settings, later + timedelta(hours=1))
        lake.close()
        store.close()
        provider = client.get("/notifications", headers=bearer(tokens["population_provider"]))
        office = client.get("/notifications", headers=bearer(tokens["office"]))
        other = client.get("/notifications", headers=bearer(tokens["consumer_b"]))
    kinds = sorted(n["kind"] for n in provider.json())
    assert len(first) == 2 and again == []
    assert kinds == ["dataset_stale", "request_overdue"]
    assert len(office.json()) == 2 and other.json() == []
    overdue = next(n for n in provider.json() if n["kind"] == "request_overdue")
    assert overdue["detail"]["request_id"] == created.json()["id"]
    assert "社会救助" not in json.dumps(office.json(), ensure_ascii=False)  # no purpose text


class _Receiver(BaseHTTPRequestHandler):
    """Answers 503 to the first ``fail`` POSTs, then 200; keeps every body."""

    fail = 0
    bodies: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append(body)
        code = 503 if len(type(self).bodies) <= type(self).fail else 200
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver():
    class Handler(_Receiver):
        bodies: ClassVar[list[dict]] = []

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Handler, f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def _event(n: int) -> Event:
    return Event("run_failed", "error", f"run r{n} failed", f"test:{n}", "population", None)


def test_webhook_retries_with_backoff_until_the_receiver_takes_it(tmp_path, receiver):
    handler, url = receiver
    handler.fail = 2
    settings = Settings(home=tmp_path / "rt", webhook_url=url, webhook_backoff_seconds=0.01)
    store = StateStore(settings)
    created = notify_all(store, settings, [_event(1)], datetime.now(UTC))
    with store.reading() as session:
        row = session.get(Notification, created[0])
        status, attempts = row.webhook_status, row.webhook_attempts
    store.close()
    assert (status, attempts) == ("delivered", 3)
    assert len(handler.bodies) == 3 and handler.bodies[-1]["kind"] == "run_failed"


def test_webhook_gives_up_after_its_attempts_and_keeps_the_failure(tmp_path, receiver):
    handler, url = receiver
    handler.fail = 100
    settings = Settings(
        home=tmp_path / "rt", webhook_url=url, webhook_attempts=4, webhook_backoff_seconds=0.5
    )
    store = StateStore(settings)
    waits: list[float] = []
    from catalog.quality.notifications import notify

    notify(store, _event(2), datetime.now(UTC), webhook=True)
    outcome = deliver_pending(store, settings, sleep=waits.append)
    with store.reading() as session:
        row = session.query(Notification).one()
        status, attempts, error = row.webhook_status, row.webhook_attempts, row.webhook_error
    store.close()
    assert outcome == {"delivered": 0, "failed": 1}
    assert (status, attempts, error) == ("failed", 4, "HTTP 503")
    assert waits == [0.5, 1.0, 2.0]  # exponential backoff between the four attempts
    assert len(handler.bodies) == 4


def test_a_failed_run_notifies_without_the_numbers_its_message_quotes():
    class Run:
        run_id = "5f1c2a7e-0d9b-4c1e-9a55-0123456789ab"
        job_name = "ingest_population"
        tags: ClassVar[dict] = {"govshare/dataset": "population"}

    message = "row 12: 身份证号 330106199001011234 is not valid"
    event = failure_event(Run(), message, "11330100002482111E")
    assert Run.run_id in event.subject  # whole, never cut
    assert "330106199001011234" not in event.subject + json.dumps(event.detail)
    # Keyed like the ingest's own notification of the run, so the run notifies once.
    assert event.dedupe_key == f"run:{Run.run_id}"
