"""Department scorecards: the quantity, quality, timeliness and use of what each department
provides, per month, with a transparent score and a ranking (SPEC §5: the office "regularly
evaluates the quantity, quality, update and use of the information provided").

Measures of a department in a month (its datasets are those whose contract names it as
provider; the month runs from local midnight on the 1st in the office's time zone):

- quantity: datasets, rows in their latest versions at the month's end, versions published
  and deliveries rejected in the month;
- completeness: 1 - failures of ``required`` rules / (rows delivered x required rules), over
  the versions published in the month (rejected deliveries count under quantity);
- validity: the same over every other rule, and per rule;
- uniqueness: the same over the key's uniqueness rule;
- consistency: the share of rows whose declared cross-dataset references resolved, over the
  newest check of each reference (:mod:`catalog.quality.references`);
- timeliness: the mean over its datasets of the share of the month each was not overdue
  against its update cycle (:func:`catalog.quality.freshness.fresh_share`);
- use: the share of its published datasets that another department used (read, exported or
  verified against) in the month; with calls and rows by consumer department and purpose,
  and the access requests it received and granted.

The score is the weighted mean of completeness, validity, uniqueness, consistency,
timeliness and use
(weights in ``score_weights``), x 100. A measure without data that month is left out and the
other weights rescaled; the weights used are stored and shown with every score. Every
computation is kept, so a month recomputed later can be compared with what was reported.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import duckdb
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog.contracts import Contract
from catalog.ingest.rules import compile_rules
from catalog.quality.freshness import fresh_share
from catalog.quality.references import RESULTS as REFERENCE_RESULTS
from catalog.sharing.audit import AuditEvent, append
from catalog.sharing.principal import Principal
from catalog.state.db import StateStore
from catalog.state.models import AccessRequest, AuditEntry, Grant, Scorecard
from catalog.store.versions import RUNS, VERSIONS

SCORED = ("completeness", "validity", "uniqueness", "consistency", "timeliness", "use")
USE_ACTIONS = ("read", "export", "verify")
USE_RESULTS = ("ok", "yes", "no")  # a verification answered no is a use too


# --------------------------------------------------------------------------- months


def parse_month(text: str) -> tuple[int, int]:
    """``YYYY-MM`` as (year, month); ValueError naming what is wrong."""
    if not (text.isascii() and len(text) == 7):
        raise ValueError(f"month must be YYYY-MM, got {text[:20]!r}")
    try:
        parsed = datetime.strptime(text, "%Y-%m")
    except ValueError:
        raise ValueError(f"month must be YYYY-MM, got {text[:20]!r}") from None
    if not 2000 <= parsed.year <= 2100:
        raise ValueError(f"month must be between 2000-01 and 2100-12, got {text[:20]!r}")
    return parsed.year, parsed.month


def month_bounds(month: str, zone: str) -> tuple[datetime, datetime]:
    """[start, end) of a month in UTC, from local midnight on the 1st."""
    year, number = parse_month(month)
    tz = ZoneInfo(zone)
    start = datetime(year, number, 1, tzinfo=tz)
    following = date(year + number // 12, number % 12 + 1, 1)
    end = datetime(following.year, following.month, 1, tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def current_month(now: datetime, zone: str) -> str:
    return now.astimezone(ZoneInfo(zone)).strftime("%Y-%m")


# --------------------------------------------------------------------------- measures


@dataclass(frozen=True)
class Department:
    code: str
    name: str
    contracts: tuple[Contract, ...]


def departments(contracts: Iterable[Contract]) -> list[Department]:
    """Providing departments, from the contracts (code order)."""
    grouped: dict[str, list[Contract]] = defaultdict(list)
    for contract in contracts:
        grouped[contract.catalog.provider.code].append(contract)
    return [
        Department(code, group[0].catalog.provider.name, tuple(group))
        for code, group in sorted(grouped.items())
    ]


def _dimensions(contract: Contract) -> dict[str, str]:
    """Each compiled rule's quality dimension (completeness, validity or uniqueness)."""
    return {rule.name: rule.dimension for rule in compile_rules(contract)}


def _ratio(failures: int, checked: int) -> float | None:
    return None if checked == 0 else max(0.0, 1 - failures / checked)


def _quality(
    con: duckdb.DuckDBPyConnection, dept: Department, start: datetime, end: datetime
) -> dict:
    """Completeness, validity (overall and per rule) and uniqueness of the versions the
    department published in the window, from each version's stored quality summary."""
    failures = {"completeness": 0, "validity": 0, "uniqueness": 0}
    checked = {"completeness": 0, "validity": 0, "uniqueness": 0}
    per_rule: dict[str, list[int]] = {}
    for contract in dept.contracts:
        dimensions = _dimensions(contract)
        rows = con.execute(
            f"SELECT quality FROM {VERSIONS} WHERE dataset = ? AND published_at >= ? "
            f"AND published_at < ?",
            [contract.dataset, start, end],
        ).fetchall()
        for (quality_json,) in rows:
            quality = json.loads(quality_json)
            read = int(quality.get("rows_read", 0))
            for rule, failed in quality.get("rules", {}).items():
                # A rule no longer compiled (an older version's) counts as validity.
                measure = dimensions.get(rule, "validity")
                failures[measure] += int(failed)
                checked[measure] += read
                if measure == "validity":
                    counts = per_rule.setdefault(f"{contract.dataset}:{rule}", [0, 0])
                    counts[0] += int(failed)
                    counts[1] += read
    result: dict = {m: _ratio(failures[m], checked[m]) for m in failures}
    result["validity_by_rule"] = {
        rule: _ratio(failed, read) for rule, (failed, read) in sorted(per_rule.items())
    }
    return result


def _quantity(
    con: duckdb.DuckDBPyConnection, dept: Department, start: datetime, end: datetime
) -> dict:
    names = [c.dataset for c in dept.contracts]
    marks = ", ".join("?" for _ in names)
    versions = con.execute(
        f"SELECT count(*) FROM {VERSIONS} WHERE dataset IN ({marks}) "
        f"AND published_at >= ? AND published_at < ?",
        [*names, start, end],
    ).fetchone()[0]
    rows = con.execute(
        f"SELECT coalesce(sum(row_count), 0) FROM (SELECT row_count FROM {VERSIONS} "
        f"WHERE dataset IN ({marks}) AND published_at < ? "
        f"QUALIFY row_number() OVER (PARTITION BY dataset ORDER BY version DESC) = 1)",
        [*names, end],
    ).fetchone()[0]
    rejected = con.execute(
        f"SELECT count(*) FROM {RUNS} WHERE dataset IN ({marks}) AND status = 'rejected' "
        f"AND finished_at >= ? AND finished_at < ?",
        [*names, start, end],
    ).fetchone()[0]
    return {
        "datasets": len(names),
        "rows": int(rows),
        "versions": int(versions),
        "deliveries_rejected": int(rejected),
    }


def _consistency(con: duckdb.DuckDBPyConnection, dept: Department, end: datetime) -> float | None:
    """Share of checked rows whose references resolved, over the newest check of each
    reference of the department's datasets before ``end``."""
    names = [c.dataset for c in dept.contracts if c.references]
    if not names:
        return None
    marks = ", ".join("?" for _ in names)
    resolved, checked = con.execute(
        f"SELECT coalesce(sum(resolved), 0), coalesce(sum(checked), 0) FROM ("
        f"SELECT resolved, checked FROM {REFERENCE_RESULTS} "
        f"WHERE dataset IN ({marks}) AND checked_at < ? "
        f"QUALIFY row_number() OVER (PARTITION BY dataset, reference "
        f"ORDER BY version DESC, checked_at DESC) = 1)",
        [*names, end],
    ).fetchone()
    return _ratio(int(checked) - int(resolved), int(checked))


def _timeliness(
    con: duckdb.DuckDBPyConnection,
    dept: Department,
    start: datetime,
    end: datetime,
    grace_ratio: float,
) -> tuple[float | None, dict[str, float | None]]:
    shares: dict[str, float | None] = {}
    for contract in dept.contracts:
        times = [
            row[0]
            for row in con.execute(
                f"SELECT published_at FROM {VERSIONS} WHERE dataset = ? AND published_at < ?",
                [contract.dataset, end],
            ).fetchall()
        ]
        shares[contract.dataset] = fresh_share(
            [t.astimezone(UTC) for t in times],
            contract.catalog.update_cycle,
            start,
            end,
            grace_ratio,
        )
    known = [s for s in shares.values() if s is not None]
    return (sum(known) / len(known) if known else None), shares


def _use(
    session: Session, dept: Department, published: set[str], start: datetime, end: datetime
) -> dict:
    """Uses by other departments, requests received and granted, from the state database."""
    names = [c.dataset for c in dept.contracts]
    uses = session.execute(
        select(
            AuditEntry.dataset,
            AuditEntry.department_code,
            AuditEntry.purpose,
            func.count(),
            func.coalesce(func.sum(AuditEntry.row_count), 0),
        )
        .where(
            AuditEntry.dataset.in_(names),
            AuditEntry.action.in_(USE_ACTIONS),
            AuditEntry.result.in_(USE_RESULTS),
            AuditEntry.department_code.is_not(None),
            AuditEntry.department_code != dept.code,
            AuditEntry.at >= start,
            AuditEntry.at < end,
        )
        .group_by(AuditEntry.dataset, AuditEntry.department_code, AuditEntry.purpose)
        .order_by(AuditEntry.dataset, AuditEntry.department_code, AuditEntry.purpose)
    ).all()
    received = session.scalar(
        select(func.count()).where(
            AccessRequest.dataset.in_(names),
            AccessRequest.submitted_at >= start,
            AccessRequest.submitted_at < end,
        )
    )
    granted = session.scalar(
        select(func.count()).where(
            Grant.dataset.in_(names), Grant.granted_at >= start, Grant.granted_at < end
        )
    )
    used = {row[0] for row in uses}
    return {
        "share": (len(used & published) / len(published)) if published else None,
        "datasets_used": sorted(used),
        "calls": int(sum(row[3] for row in uses)),
        "rows_served": int(sum(row[4] for row in uses)),
        "by_consumer": [
            {
                "dataset": row[0],
                "department_code": row[1],
                "purpose": row[2],
                "calls": int(row[3]),
                "rows": int(row[4]),
            }
            for row in uses
        ],
        "requests_received": int(received or 0),
        "requests_granted": int(granted or 0),
    }


def score(measures: Mapping[str, float | None], weights: Mapping[str, float]) -> tuple:
    """(score x 100 rounded to 0.1, or None; the weights actually used, rescaled to 1)."""
    present = {m: weights.get(m, 0.0) for m in SCORED if measures.get(m) is not None}
    total = sum(present.values())
    if total <= 0:
        return None, {}
    used = {m: w / total for m, w in present.items()}
    value = sum(float(measures[m]) * w for m, w in used.items())  # type: ignore[arg-type]
    return round(value * 100, 1), {m: round(w, 4) for m, w in used.items()}


def compute(
    con: duckdb.DuckDBPyConnection,
    session: Session,
    contracts: Iterable[Contract],
    month: str,
    *,
    zone: str,
    weights: Mapping[str, float],
    grace_ratio: float,
    now: datetime,
) -> list[dict]:
    """Every providing department's scorecard for ``month``, ranked (1 = best; equal scores
    share a rank; departments without a score come last, unranked)."""
    start, end = month_bounds(month, zone)
    end = min(end, now)
    cards = []
    for dept in departments(contracts):
        quantity = _quantity(con, dept, start, end)
        quality = _quality(con, dept, start, end)
        timeliness, by_dataset = _timeliness(con, dept, start, end, grace_ratio)
        # A share is None exactly for a dataset without a version before the month's end.
        published = {name for name, share in by_dataset.items() if share is not None}
        use = _use(session, dept, published, start, end)
        measures = {
            "completeness": quality["completeness"],
            "validity": quality["validity"],
            "uniqueness": quality["uniqueness"],
            "timeliness": timeliness,
            "use": use["share"],
            "consistency": _consistency(con, dept, end),
        }
        value, used = score(measures, weights)
        cards.append(
            {
                "month": month,
                "department_code": dept.code,
                "department_name": dept.name,
                "score": value,
                "weights": used,
                "measures": {
                    **measures,
                    "quantity": quantity,
                    "validity_by_rule": quality["validity_by_rule"],
                    "timeliness_by_dataset": by_dataset,
                    "use_detail": use,
                },
            }
        )
    _rank(cards)
    return cards


def _rank(cards: list[dict]) -> None:
    scored = sorted((c for c in cards if c["score"] is not None), key=lambda c: -c["score"])
    for index, card in enumerate(scored):
        same = index > 0 and scored[index - 1]["score"] == card["score"]
        card["rank"] = scored[index - 1]["rank"] if same else index + 1
    for card in cards:
        card.setdefault("rank", None)
    cards.sort(key=lambda c: (c["rank"] is None, c["rank"] or 0, c["department_code"]))


# --------------------------------------------------------------------------- history


def store_cards(
    store: StateStore,
    cards: list[dict],
    now: datetime,
    *,
    actor: Principal | None = None,
    operator: str = "cli",
) -> None:
    """Keep one computation (every department's card of one month), audited with it."""
    with store.transaction() as session:
        month = cards[0]["month"] if cards else None
        event = AuditEvent(
            action="scorecard.compute",
            result="ok",
            actor=actor,
            operator=operator,
            detail={"month": month, "departments": len(cards)},
        )
        append(session, event, now)
        for card in cards:
            session.add(
                Scorecard(
                    month=card["month"],
                    department_code=card["department_code"],
                    department_name=card["department_name"],
                    measures=card["measures"],
                    score=card["score"],
                    weights=card["weights"],
                    rank=card["rank"],
                    computed_at=now,
                )
            )


def card_dict(row: Scorecard) -> dict:
    return {
        "month": row.month,
        "department_code": row.department_code,
        "department_name": row.department_name,
        "score": row.score,
        "rank": row.rank,
        "weights": row.weights,
        "measures": row.measures,
        "computed_at": row.computed_at.isoformat(),
    }


def history(session: Session, month: str, department_code: str | None = None) -> list[dict]:
    """Every stored computation of a month (newest first), optionally one department's."""
    query = select(Scorecard).where(Scorecard.month == month)
    if department_code:
        query = query.where(Scorecard.department_code == department_code)
    rows = session.scalars(query.order_by(Scorecard.computed_at.desc(), Scorecard.rank))
    return [card_dict(row) for row in rows]


# --------------------------------------------------------------------------- benefit


def benefit(session: Session, contract: Contract, start: datetime, end: datetime) -> dict:
    """Who used a dataset, for which purposes, how often (other departments only)."""
    provider = contract.catalog.provider.code
    rows = session.execute(
        select(
            AuditEntry.department_code,
            AuditEntry.purpose,
            AuditEntry.action,
            func.count(),
            func.coalesce(func.sum(AuditEntry.row_count), 0),
            func.min(AuditEntry.at),
            func.max(AuditEntry.at),
        )
        .where(
            AuditEntry.dataset == contract.dataset,
            AuditEntry.action.in_(USE_ACTIONS),
            AuditEntry.result.in_(USE_RESULTS),
            AuditEntry.department_code.is_not(None),
            AuditEntry.department_code != provider,
            AuditEntry.at >= start,
            AuditEntry.at < end,
        )
        .group_by(AuditEntry.department_code, AuditEntry.purpose, AuditEntry.action)
        .order_by(func.count().desc(), AuditEntry.department_code)
    ).all()
    uses = [
        {
            "department_code": r[0],
            "purpose": r[1],
            "action": r[2],
            "calls": int(r[3]),
            "rows": int(r[4]),
            "first": r[5].isoformat() if r[5] else None,
            "last": r[6].isoformat() if r[6] else None,
        }
        for r in rows
    ]
    return {
        "dataset": contract.dataset,
        "since": start.isoformat(),
        "until": end.isoformat(),
        "departments": sorted({u["department_code"] for u in uses}),
        "calls": sum(u["calls"] for u in uses),
        "rows": sum(u["rows"] for u in uses),
        "uses": uses,
    }
