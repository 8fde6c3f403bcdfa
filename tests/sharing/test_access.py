"""Sharing enforcement on every data path: the matrix of endpoints × datasets × callers,
grants with items, row filters and items in clear, and expiry and revocation taking effect
at once. Ground truth is read from the lake directly, never through the API."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb
import pytest

from catalog.contracts import load_contracts
from catalog.store.lake import Lake, published_table
from tests.conftest import approve_request, bearer

CONSUMERS = ("consumer_a", "analyst_a", "consumer_b", "analyst_b")


@pytest.fixture(scope="module")
def env(access_world):
    return access_world


@pytest.fixture(scope="module")
def contracts(env):
    return load_contracts(env[3].schemas_dir)


@pytest.fixture(scope="module")
def truth(env, contracts):
    """Every published row of every dataset, as text, straight from the lake."""
    with Lake(env[3]).reader() as con:
        return {
            name: [
                {k: (None if v is None else str(v)) for k, v in row.items()}
                for row in con.execute(f"SELECT * FROM {published_table(name)}")
                .fetch_df()
                .astype(object)
                .where(lambda df: df.notna(), None)
                .to_dict("records")
            ]
            for name in contracts
        }


def _period() -> dict:
    return {"period_start": "2026-01-01", "period_end": "2030-12-31"}


def _most_common(rows, item):
    values = [r[item] for r in rows if r[item]]
    return max(set(values), key=values.count)


@pytest.fixture(scope="module")
def grants(env, truth):
    """Department A's grants, oldest first (the newest applies when none is named):
    population P1 (4 items, id in clear, one district), P3 (id masked, filtered on the id's
    prefix), P4 (id masked, names in clear: joined on names with P2, the review rebuilt
    1,759 of 1,880 numbers), P2 (newest: names in clear, birth date and region in clear, id
    masked — the linkage case); credit records (all items, masked); legal persons
    (unconditional; one region, representatives' ids in clear — the filter must hold on
    every path).
    Department B: nothing."""
    client, tokens, _, _ = env
    district = _most_common(truth["population"], "region_code")
    legal_region = _most_common(truth["legal_persons"], "region_code")
    bodies = {
        "population_p1": {
            "dataset": "population",
            "items": ["id_number", "name", "region_code", "status"],
            "unmasked_items": ["id_number"],
            "row_filter": [{"item": "region_code", "op": "eq", "values": [district]}],
        },
        "population_p3": {
            "dataset": "population",
            "items": ["id_number", "sex", "status"],
            "row_filter": [{"item": "id_number", "op": "prefix", "values": [district[:4]]}],
        },
        "population_p4": {
            "dataset": "population",
            "items": ["id_number", "name", "status"],
            "unmasked_items": ["name"],
        },
        "population_p2": {
            "dataset": "population",
            "items": ["id_number", "name", "sex", "birth_date", "region_code", "status"],
            "unmasked_items": ["name"],
        },
        "credit_records": {
            "dataset": "credit_records",
            "items": [i.name for i in load_contracts(env[3].schemas_dir)["credit_records"].items],
        },
        "legal_persons": {
            "dataset": "legal_persons",
            "items": ["uscc", "name", "legal_rep_name", "legal_rep_id", "region_code"],
            "unmasked_items": ["legal_rep_id"],
            "row_filter": [{"item": "region_code", "op": "eq", "values": [legal_region]}],
        },
    }
    made = {}
    for name, body in bodies.items():
        body = {"purpose": "依法履职核查", "legal_basis": "测试依据", **_period(), **body}
        made[name] = approve_request(client, tokens, body)["grant"]
    return made


def _newest(grants, dataset):
    mine = [g for g in grants.values() if g["dataset"] == dataset]
    return max(mine, key=lambda g: g["id"]) if mine else None


def expected_scope(contracts, grants, endpoint, dataset, who, named=None):
    """The rules of SPEC §6 written out independently of catalog/sharing/access.py:
    None means 403, else (items, items in clear, filter). ``named``: the grant the caller
    names with ``grant=``."""
    contract = contracts[dataset]
    sharing = contract.catalog.sharing
    method = "api" if endpoint == "rows" else "bulk_download"
    names = [i.name for i in contract.items]
    if who == "office" or sharing.type == "not_shared" or method not in sharing.method:
        return None
    if who.endswith("_provider"):
        return (names, set(names), []) if who == f"{dataset}_provider" else None
    mine = who.endswith("_a")
    if named is not None:  # a named grant is the whole scope, on any sharing type
        return (named["items"], set(named["unmasked_items"]), named["row_filter"]) if mine else None
    if sharing.type == "unconditional":  # everyone: every row, sensitive items masked
        return names, set(), []
    grant = _newest(grants, dataset) if mine else None
    if grant:
        return grant["items"], set(grant["unmasked_items"]), grant["row_filter"]
    return None


def _fetch(client, token, endpoint, dataset, grant=None):
    url = f"/datasets/{dataset}/{endpoint}"
    url += "?limit=1000" if endpoint == "rows" else "?format=csv"
    if grant is not None:
        url += f"&grant={grant}"
    response = client.get(url, headers=bearer(token))
    if response.status_code != 200:
        return response.status_code, None, response.text
    if endpoint == "rows":
        return 200, response.json()["rows"], response.text
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))
    return 200, rows, response.text


def _passes(row, clauses):
    for c in clauses:
        value = row[c["item"]] or ""
        if c["op"] in ("eq", "in") and value not in c["values"]:
            return False
        if c["op"] == "prefix" and not any(value.startswith(v) for v in c["values"]):
            return False
    return True


PROVIDERS = [
    f"{d}_provider"
    for d in ("population", "legal_persons", "geography", "licences", "credit_records")
]


def _check_response(contract, truth_rows, scope, rows, body, context):
    """Columns, rows and masking of one 200 response against the expected scope."""
    items, clear, clauses = scope
    sensitive = {i.name for i in contract.items if i.sensitivity == "sensitive"}
    real = [r for r in truth_rows if _passes(r, clauses)]
    assert len(rows) == min(len(real), 1000), context
    assert all(list(r) == list(items) for r in rows), context
    for clause in clauses:  # the filter holds on what is shown in clear, too
        if clause["item"] in items and clause["item"] not in sensitive:
            assert all(_passes({clause["item"]: r[clause["item"]]}, [clause]) for r in rows)
    for item in sensitive & set(items):
        raw = {r[item] for r in truth_rows if r[item]}
        allowed = {r[item] for r in real if r[item]}
        shown = [r[item] for r in rows if r[item]]
        if item in clear:  # in clear only the rows the filter lets through
            assert set(shown) <= allowed, context
        else:  # masked: no value equals a real one, and long identifiers never appear
            assert all(v not in raw for v in shown), (context, item)
            assert all("*" in v or v.startswith("ps_") for v in shown), (context, item)
            long_raw = [v for v in raw if len(v) >= 11]
            assert not any(v in body for v in long_raw), (context, item)
    for item in set(contract.item_names) - set(items):
        assert not any(item in r for r in rows)


@pytest.mark.parametrize("endpoint", ["rows", "export"])
@pytest.mark.parametrize("who", ["office", *PROVIDERS, *CONSUMERS])
def test_enforcement_matrix_no_leaks(env, contracts, truth, grants, endpoint, who):
    client, tokens, _, _ = env
    for dataset, contract in contracts.items():
        scope = expected_scope(contracts, grants, endpoint, dataset, who)
        status, rows, body = _fetch(client, tokens[who], endpoint, dataset)
        if scope is None:
            assert status == 403, (dataset, who, body)
            continue
        assert status == 200, (dataset, who, body)
        _check_response(contract, truth[dataset], scope, rows, body, (dataset, who, endpoint))


@pytest.mark.parametrize("endpoint", ["rows", "export"])
@pytest.mark.parametrize("who", ["consumer_a", "analyst_a", "consumer_b"])
def test_every_narrowing_holds_under_a_named_grant(env, contracts, truth, grants, endpoint, who):
    """Each grant read by name, on every path: its items, its filter, its items in clear —
    on the unconditional legal persons register as on the conditional datasets."""
    client, tokens, _, _ = env
    for name, grant in grants.items():
        dataset = grant["dataset"]
        scope = expected_scope(contracts, grants, endpoint, dataset, who, named=grant)
        status, rows, body = _fetch(client, tokens[who], endpoint, dataset, grant["id"])
        if scope is None:
            assert status == 403, (name, who, body)
            continue
        assert status == 200, (name, who, body)
        _check_response(contracts[dataset], truth[dataset], scope, rows, body, (name, who))


def _identity_candidates(masked: str, row: dict, clauses: list, region_codes: set[str]):
    """Every resident identity number (GB 11643) that fits a partial mask ``PPPP**********SSSC``
    given what the same row shows in clear: any date in the row as the birth date, any
    six-digit code in the row or the grant's filter as the region. None when the row gives
    no birth date (then thousands of dates fit: nothing can be rebuilt)."""
    shown = [str(v) for k, v in row.items() if v and "*" not in str(v)]
    births = {v.replace("-", "") for v in shown if len(v) == 10 and v[4] == "-" and v[7] == "-"}
    if not births:
        return None
    codes = {v for v in shown if len(v) == 6 and v.isdigit()}
    codes |= {v for c in clauses for v in c["values"] if len(v) == 6 and v.isdigit()}
    prefix, tail = masked[:4], masked[14:]
    districts = {c for c in codes if c.startswith(prefix)} or {
        c for c in region_codes if c.startswith(prefix)
    }
    found = set()
    for district in districts:
        for birth in births:
            candidate = district + birth + tail
            if _ric_ok(candidate):
                found.add(candidate)
    return found


def _ric_ok(number: str) -> bool:
    """ISO 7064 MOD 11-2 check character of GB 11643 (python-stdnum computes it)."""
    from stdnum.cn import ric

    return number[:17].isdigit() and ric.calc_check_digit(number[:17] + "0") == number[17]


def _linked_rows(responses: list[list[dict]]) -> dict[str, set[str]]:
    """What a department can join across all it read: each value shown in clear that looks
    like a name (two to four characters, not a code, on a few rows only: a status is no
    name) → every clear value of every row that shows it. Joining on names is what an
    analyst holding several responses does."""
    rows_with: dict[str, list[set[str]]] = {}
    for rows in responses:
        for row in rows:
            shown = {str(v) for v in row.values() if v and "*" not in str(v)}
            for value in shown:
                if 2 <= len(value) <= 4 and not value.isascii():
                    rows_with.setdefault(value, []).append(shown)
    return {value: set().union(*found) for value, found in rows_with.items() if len(found) <= 6}


def _rebuilt(masked, row, clauses, codes, linked, real_ids) -> int | None:
    """1 when the partial mask ``masked`` is rebuilt as a unique real number from what the
    department knows of that row's person, 0 when not, None when nothing dates it."""
    context = dict(row)
    for value in [str(v) for v in row.values() if v and "*" not in str(v)]:
        for n, extra in enumerate(linked.get(value, ())):
            context[f"_linked_{value}_{n}"] = extra
    candidates = _identity_candidates(masked, context, clauses, codes)
    if candidates is None:
        return None
    return int(len(candidates) == 1 and bool(candidates & real_ids))


def _real_value(truth_rows: list[dict], row: dict, name: str) -> str | None:
    """The real value behind a pseudonymised item: the one truth row that agrees with every
    value the row shows in clear (the test knows the truth; an attacker does not). Dates of
    the truth carry a time of day: a shown value matches as a prefix."""
    shown = {k: v for k, v in row.items() if k != name and v and "*" not in str(v)}
    shown = {k: v for k, v in shown.items() if not str(v).startswith("ps_")}
    matches = [r for r in truth_rows if all(str(r[k]).startswith(str(v)) for k, v in shown.items())]
    return matches[0][name] if len(matches) == 1 else None


def _partial(number: str) -> str:
    return number[:4] + "*" * 10 + number[-4:]


@pytest.mark.parametrize("who", ["consumer_a", "consumer_b"])
def test_linkage_attack_rebuilds_no_masked_identity_number(env, contracts, truth, grants, who):
    """Everything a department can read (every grant it holds, every default view), joined
    on the row and on names across responses: rebuild each partially masked identity number
    from birth dates, regions and the check character (GB 11643). None may come out. The
    control applies the same attack to the partial masks an item would have shown had the
    masks been chosen per response alone: there it rebuilds many, so the attack has teeth."""
    from catalog.regions import regions

    client, tokens, _, _ = env
    codes = set(regions())
    mine = who.endswith("_a")
    reads = [
        (g["dataset"], g["id"], g["row_filter"], g["unmasked_items"])
        for g in grants.values()
        if mine
    ]
    reads += [(d, None, [], []) for d in ("legal_persons", "credit_records", "population")]
    fetched = []
    for dataset, grant_id, clauses, clear in reads:
        status, rows, _ = _fetch(client, tokens[who], "rows", dataset, grant_id)
        if status == 200:
            fetched.append((dataset, clauses, clear, rows))
    linked = _linked_rows([rows for *_, rows in fetched])
    rebuilt = control = 0
    for dataset, clauses, clear, rows in fetched:
        contract = contracts[dataset]
        masked_items = [
            i.name for i in contract.items if i.mask == "identity" and i.name not in clear
        ]
        real_ids = {r[n] for r in truth[dataset] for n in masked_items if r[n]}
        for row in rows:
            for name in masked_items:
                value = row.get(name)
                if not value:
                    continue
                assert value not in real_ids
                if "*" in value and value != "****":  # a partial mask (redacted: nothing)
                    rebuilt += _rebuilt(value, row, clauses, codes, linked, real_ids) or 0
                    continue
                real = _real_value(truth[dataset], row, name)
                if real:  # the control: the partial mask this value would have had
                    shown = {k: v for k, v in row.items() if k != name}
                    control += (
                        _rebuilt(_partial(real), shown, clauses, codes, linked, real_ids) or 0
                    )
    assert rebuilt == 0
    if mine:  # department A holds birth dates and regions: partial masks would have leaked
        assert control > 100


def test_the_linkage_grant_gets_pseudonyms_stable_within_the_grant(env, grants):
    """Grant P2 shows birth date and region in clear, so its identity numbers are keyed
    pseudonyms: the same in two calls and in the export, different under another grant,
    and the rows are not in the order of the real numbers (that order is region then birth
    date, which is what the mask hides)."""
    client, tokens, _, _ = env
    p2, p3 = grants["population_p2"], grants["population_p3"]
    url = f"/datasets/population/rows?limit=1000&grant={p2['id']}"
    first = client.get(url, headers=bearer(tokens["consumer_a"])).json()
    again = client.get(url, headers=bearer(tokens["analyst_a"])).json()
    assert first["pseudonymised"] == ["id_number"]
    ids = [r["id_number"] for r in first["rows"]]
    assert all(v.startswith("ps_") and len(v) == 23 for v in ids)
    assert len(set(ids)) == len(ids) and ids == [r["id_number"] for r in again["rows"]]
    other = client.get(
        f"/datasets/population/rows?limit=1000&grant={p3['id']}",
        headers=bearer(tokens["consumer_a"]),
    ).json()
    assert other["pseudonymised"] == ["id_number"]  # filtered on the id itself
    assert not set(ids) & {r["id_number"] for r in other["rows"]}
    keys = [(r["region_code"], r["birth_date"]) for r in first["rows"]]
    ranks = {k: i for i, k in enumerate(sorted(set(keys)))}
    positions = list(range(len(keys)))
    assert abs(_spearman(positions, [ranks[k] for k in keys])) < 0.3


def _spearman(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    vx = sum((x - mx) ** 2 for x in xs) ** 0.5
    vy = sum((y - my) ** 2 for y in ys) ** 0.5
    return cov / (vx * vy)


def test_no_department_ever_gets_a_partial_identity_mask(env, grants):
    """A partial identity mask hides the county and birth digits, which another grant can
    carry later: the second review saved partial masks, obtained a birth-date grant a week
    on and rebuilt 1,583 of 1,880 numbers. So every masked identity number, for every
    department and dataset, with or without dates beside it, is a pseudonym; names and
    phones keep their partial masks, which nothing else repeats (never showing a name's
    length)."""
    client, tokens, _, _ = env
    pages = [
        (
            "consumer_a",
            f"/datasets/credit_records/rows?limit=1000&grant={grants['credit_records']['id']}",
        ),
        ("consumer_b", "/datasets/legal_persons/rows?limit=1000"),
        ("consumer_b", "/datasets/licences/rows?limit=1000"),
    ]
    for who, url in pages:
        answer = client.get(url, headers=bearer(tokens[who]))
        if answer.status_code == 403:  # licences are not shared in the test world
            continue
        page = answer.json()
        for row in page["rows"]:
            for item in ("subject_id", "legal_rep_id", "holder_id"):
                if row.get(item):  # a pseudonym, or redacted (decision 55)
                    assert row[item].startswith("ps_") or row[item] == "****", (url, row[item])
    credit = client.get(pages[0][1], headers=bearer(tokens["consumer_a"])).json()
    assert {len(r["subject_name"]) for r in credit["rows"]} == {3}


def test_masking_formats(env, truth):
    client, tokens, _, _ = env
    rows = client.get(
        "/datasets/legal_persons/rows?limit=1000", headers=bearer(tokens["consumer_b"])
    ).json()["rows"]
    by_key = {r["uscc"]: r for r in truth["legal_persons"]}
    for row in rows:
        real = by_key[row["uscc"]]
        assert row["address"] == real["address"]  # a company's address is not sensitive
    # A sole trader's business name carries the owner's name. A partial name mask beside it
    # would say which characters of the business name are the representative's name; a
    # pseudonym would be a lookup table from those rows to the same person's other
    # companies (the review rebuilt 7 of 7). Only redaction hides it: of the name, and of
    # the representative's identity number, whose pseudonym repeats on every company of
    # the same person (a later review rebuilt the redacted names through it, 7 of 7).
    assert all(r["legal_rep_id"] in ("****", None) for r in rows)
    sole_traders = [r for r in rows if by_key[r["uscc"]]["legal_rep_name"] in r["name"]]
    assert sole_traders  # the attack has material
    assert all(r["legal_rep_name"] == "****" for r in rows)
    phones = client.get(
        "/datasets/population/rows?limit=5", headers=bearer(tokens["population_provider"])
    ).json()["rows"]
    assert any(r["phone"] and "*" not in r["phone"] for r in phones)  # the owner sees its data


@pytest.mark.parametrize(
    ("mask", "value", "shown"),
    [
        ("identity", "33010619900101123X", "3301**********123X"),
        ("phone", "13812345678", "138****5678"),
        ("name", "欧阳娜娜", "欧**"),
        ("name", "张", "张**"),
        ("address", "文三路1号", "文三****"),
        ("address", "浙江省杭州市西湖区文三路1号", "浙江省杭州市****"),
        ("redact", "anything", "****"),
        ("identity", None, None),
    ],
)
def test_mask_formats_in_sql(contracts, mask, value, shown):
    from catalog.contracts import DataItem
    from catalog.sharing.masking import mask_sql

    item = DataItem(
        name="v", label="v", type="string", description="", sensitivity="sensitive", mask=mask
    )
    assert (
        duckdb.sql(
            f"SELECT {mask_sql(item)} FROM (SELECT ?::VARCHAR AS v)", params=[value]
        ).fetchone()[0]
        == shown
    )


def test_a_grant_for_another_department_cannot_be_named(env, grants):
    client, tokens, _, _ = env
    gid = grants["population_p1"]["id"]
    assert (
        client.get(
            f"/datasets/population/rows?grant={gid}", headers=bearer(tokens["consumer_b"])
        ).status_code
        == 403
    )
    assert (
        client.get(
            f"/datasets/population/rows?grant={gid}", headers=bearer(tokens["consumer_a"])
        ).status_code
        == 200
    )


def test_expiry_takes_effect_at_once(env, contracts):
    client, tokens, clock, _ = env
    request = approve_request(
        client,
        tokens,
        {
            "dataset": "credit_records",
            "items": ["record_id", "list_type"],
            "purpose": "临时核查",
            "legal_basis": "测试",
            "period_start": "2026-01-01",
            "period_end": "2030-12-31",
        },
        requester="consumer_b",
        expires_on=str(clock.now.date() + timedelta(days=3)),
    )
    url = "/datasets/credit_records/rows?limit=5"
    first = client.get(url, headers=bearer(tokens["analyst_b"]))
    assert first.status_code == 200 and first.json()["items"] == ["record_id", "list_type"]
    assert request["grant"]["active"]
    try:
        clock.advance(days=5)
        assert client.get(url, headers=bearer(tokens["analyst_b"])).status_code == 403
        listed = client.get("/grants", headers=bearer(tokens["consumer_b"])).json()
        assert [g["active"] for g in listed if g["id"] == request["grant"]["id"]] == [False]
    finally:
        clock.advance(days=-5)


def test_revocation_takes_effect_at_once(env):
    client, tokens, _, _ = env
    request = approve_request(
        client,
        tokens,
        {
            "dataset": "population",
            "items": ["id_number", "status"],
            "purpose": "户籍核查",
            "legal_basis": "测试",
            "period_start": "2026-01-01",
            "period_end": "2030-12-31",
        },
        requester="analyst_b",
    )
    url = "/datasets/population/rows?limit=1"
    assert client.get(url, headers=bearer(tokens["consumer_b"])).status_code == 200
    gid = request["grant"]["id"]
    other = client.post(
        f"/grants/{gid}/revoke", json={"reason": "x"}, headers=bearer(tokens["geography_provider"])
    )
    assert other.status_code == 403  # not the providing department
    assert (
        client.post(
            f"/grants/{gid}/revoke", json={"reason": ""}, headers=bearer(tokens["office"])
        ).status_code
        == 422
    )
    revoked = client.post(
        f"/grants/{gid}/revoke",
        json={"reason": "用途已结束"},
        headers=bearer(tokens["population_provider"]),
    )
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    assert client.get(url, headers=bearer(tokens["consumer_b"])).status_code == 403
    assert (
        client.post(
            f"/grants/{gid}/revoke", json={"reason": "again"}, headers=bearer(tokens["office"])
        ).status_code
        == 409
    )


def test_a_grant_is_not_in_force_before_its_period_starts(env):
    """SPEC §6: a grant has a period; the review found one in force before its start."""
    client, tokens, clock, _ = env
    # Periods are days of the office's time zone (UTC+8): from 16:00 UTC on, its today is
    # the UTC date's tomorrow.
    start = clock.now.astimezone(ZoneInfo("Asia/Shanghai")).date() + timedelta(days=10)
    period = {"period_start": str(start), "period_end": str(start + timedelta(days=100))}
    rows = approve_request(
        client,
        tokens,
        {"dataset": "credit_records", "items": ["record_id", "list_type"],
         "purpose": "下季度核查", "legal_basis": "测试", **period},
        requester="consumer_b",
    )  # fmt: skip
    check = approve_request(
        client,
        tokens,
        {"dataset": "population", "kind": "verification", "service": "identity_name",
         "purpose": "下季度核验", "legal_basis": "测试", **period},
        requester="consumer_b",
    )  # fmt: skip
    bulk = approve_request(  # legal persons: shared by bulk download too
        client,
        tokens,
        {"dataset": "legal_persons", "items": ["uscc", "name"], "purpose": "下季度导出",
         "legal_basis": "测试", **period},
        requester="consumer_b",
    )  # fmt: skip
    reader = bearer(tokens["analyst_b"])
    paths = [
        f"/datasets/credit_records/rows?grant={rows['grant']['id']}",
        f"/datasets/legal_persons/export?grant={bulk['grant']['id']}",
    ]
    question = {"id_number": "11010519491231002X", "name": "张三"}

    def answers() -> list[int]:
        codes = [client.get(path, headers=reader).status_code for path in paths]
        codes.append(
            client.post("/verify/identity_name", json=question, headers=reader).status_code
        )
        return codes

    assert check["grant"]["active"] is False and rows["grant"]["active"] is False
    assert answers() == [403, 403, 403]
    try:
        clock.advance(days=9)  # the day before: still not in force
        assert answers() == [403, 403, 403]
        clock.advance(days=1, minutes=1)  # local midnight of the first day has passed
        assert answers() == [200, 200, 200]
    finally:
        clock.advance(days=-10, minutes=-1)


def _new_department(settings, code: str, usernames: dict[str, str]) -> dict[str, str]:
    """A department of its own (no grant of another test applies to it) with confirmed
    users; username → token."""
    from datetime import UTC

    from catalog.sharing.identity import add_department, add_user, confirm_user, issue_token
    from catalog.state.db import StateStore

    now = datetime.now(UTC)
    store = StateStore(settings)
    tokens = {}
    with store.transaction() as session:
        add_department(session, code, "丙局", now)
        for username, role in usernames.items():
            user = add_user(session, username, code, role, now, created_by="cli:test")
            confirm_user(session, user, now, operator="cli:test")
            tokens[username] = issue_token(session, user, now, 90, "test")[1]
    store.close()
    return tokens


def test_a_refusal_after_revocation_says_the_grant_was_revoked_and_when(env):
    """A new user's report: after a revocation the read was refused as if no grant had ever
    been given. The refusal names the grant, says it was revoked, when (office time) and why,
    on every path: rows, a named grant's rows and export, verification."""
    client, tokens, _, settings = env
    own = _new_department(
        settings, "113301000024851303", {"c_consumer": "consumer", "c_analyst": "analyst"}
    )
    tokens = {**tokens, **own}
    period = {"purpose": "撤销测试", "legal_basis": "测试", **_period()}
    rows = approve_request(
        client,
        tokens,
        {"dataset": "credit_records", "items": ["record_id", "list_type"], **period},
        requester="c_consumer",
    )
    bulk = approve_request(  # unconditional, read under a named grant
        client,
        tokens,
        {"dataset": "legal_persons", "items": ["uscc", "name"], **period},
        requester="c_consumer",
    )
    check = approve_request(
        client,
        tokens,
        {"dataset": "population", "kind": "verification", "service": "identity_name", **period},
        requester="c_consumer",
    )
    reader = bearer(tokens["c_analyst"])  # another user of the same department
    question = {"id_number": "11010519491231002X", "name": "张三"}
    calls = {
        rows["grant"]["id"]: lambda: client.get("/datasets/credit_records/rows", headers=reader),
        bulk["grant"]["id"]: lambda: client.get(
            f"/datasets/legal_persons/export?grant={bulk['grant']['id']}", headers=reader
        ),
        check["grant"]["id"]: lambda: client.post(
            "/verify/identity_name", json=question, headers=reader
        ),
    }
    for call in calls.values():
        assert call().status_code == 200
    zone = ZoneInfo(settings.timezone)
    for grant_id, call in calls.items():
        revoked = client.post(
            f"/grants/{grant_id}/revoke",
            json={"reason": "项目结束"},
            headers=bearer(tokens["office"]),
        )
        assert revoked.status_code == 200, revoked.text
        when = datetime.fromisoformat(revoked.json()["revoked_at"]).astimezone(zone)
        refused = call()
        assert refused.status_code == 403, refused.text
        detail = refused.json()["detail"]
        assert f"grant {grant_id}" in detail and "revoked" in detail, detail
        assert when.strftime("%Y-%m-%d %H:%M") in detail, (detail, when)
        assert "项目结束" in detail
    named = client.get(f"/datasets/credit_records/rows?grant={rows['grant']['id']}", headers=reader)
    assert named.status_code == 403 and "revoked" in named.json()["detail"]
    # A grant that was never revoked, only never given, gets the general refusal.
    other = client.get("/datasets/credit_records/rows?grant=999999", headers=reader)
    assert other.status_code == 403 and "revoked" not in other.json()["detail"]


def test_every_change_to_an_access_table_moves_the_generation(env):
    """API processes keep token and grant lookups while the access generation stands
    (``catalog.state.memo``): any change to a table they are read from, by any process or
    tool, must give it a value it never had (a counter would come back to an old value after
    a restore); an audit entry (every read writes one) must not change it. Triggers that went
    missing are re-created when a process opens the database."""
    from sqlalchemy import text

    from catalog.sharing.audit import AuditEvent, record
    from catalog.state.db import StateStore
    from catalog.state.models import GENERATION_TABLES

    client, tokens, clock, settings = env
    body = {"dataset": "credit_records", "items": ["record_id"], "purpose": "世代测试"}
    approve_request(client, tokens, {**body, "legal_basis": "测试", **_period()})
    other = StateStore(settings)  # another process's connection to the same database
    seen = [other.generation()]

    def change(*statements: str) -> None:
        for statement in statements:
            with other.engine.begin() as connection:
                connection.execute(text(statement))
            seen.append(other.generation())

    try:
        for table in GENERATION_TABLES:
            change(f"UPDATE {table} SET id = id WHERE id = (SELECT min(id) FROM {table})")
        change(
            "INSERT INTO departments (code, name, created_at) VALUES ('X1', 'x', '')",
            "DELETE FROM departments WHERE code = 'X1'",
        )
        assert len(set(seen)) == len(seen), seen  # a new value each time, none twice
        before = other.generation()
        record(other, AuditEvent(action="test.generation", result="ok"), clock())
        assert other.generation() == before
        with other.engine.begin() as connection:  # a table rebuilt without its triggers
            connection.execute(text("DROP TRIGGER generation_tokens_update"))
    finally:
        other.close()
    reopened = StateStore(settings)
    try:
        assert reopened.generation() != before  # what processes kept is dropped
        before = reopened.generation()
        change_tokens = "UPDATE tokens SET id = id WHERE id = (SELECT min(id) FROM tokens)"
        with reopened.engine.begin() as connection:
            connection.execute(text(change_tokens))
        assert reopened.generation() != before
    finally:
        reopened.close()


def test_a_grant_revoked_outside_this_api_is_refused_on_the_next_read(env):
    """A revocation written by another process (another API worker, a tool) reaches a read
    whose grants this process has kept."""
    from sqlalchemy import text

    from catalog.state.db import StateStore

    client, tokens, _, settings = env
    request = approve_request(
        client,
        tokens,
        {
            "dataset": "credit_records",
            "items": ["record_id", "list_type"],
            "purpose": "撤销测试",
            "legal_basis": "测试",
            **_period(),
        },
        requester="consumer_b",
    )
    grant = request["grant"]["id"]
    url = f"/datasets/credit_records/rows?limit=5&grant={grant}"
    for _ in range(2):  # kept by now
        assert client.get(url, headers=bearer(tokens["analyst_b"])).status_code == 200
    other = StateStore(settings)
    try:
        with other.engine.begin() as connection:
            connection.execute(
                text(
                    "UPDATE grants SET revoked_at = expires_at, revoke_reason = 'elsewhere' "
                    "WHERE id = :id"
                ),
                {"id": grant},
            )
    finally:
        other.close()
    refused = client.get(url, headers=bearer(tokens["analyst_b"]))
    assert refused.status_code == 403 and "revoked" in refused.text


def test_an_item_a_grant_shows_in_clear_is_not_pseudonymised_in_other_views(env):
    """An outside review: a grant showed representatives' identity numbers in clear for one
    region; the department's unconditional view of the same dataset pseudonymised them.
    Joined on the company code (clear in both), each pseudonym was named, and then named
    the person on companies outside the grant's region. What any view shows in clear is
    redacted, not pseudonymised, in the department's other views (the key excepted: its
    value is on one row only)."""
    client, tokens, _, settings = env
    own = _new_department(settings, "113301000024851316", {"r_consumer": "consumer"})
    tokens = {**tokens, **own}
    approve_request(
        client,
        tokens,
        {
            "dataset": "legal_persons",
            "items": ["uscc", "name", "legal_rep_id"],
            "unmasked_items": ["legal_rep_id"],
            "row_filter": [{"item": "region_code", "op": "eq", "values": ["330102"]}],
            "purpose": "联系测试",
            "legal_basis": "测试",
            **_period(),
        },
        requester="r_consumer",
    )
    reader = bearer(tokens["r_consumer"])
    default = client.get("/datasets/legal_persons/rows?limit=1000", headers=reader).json()
    assert default["rows"] and "legal_rep_id" in default["redacted"]
    assert all(r["legal_rep_id"] in ("****", None) for r in default["rows"])
