"""``govshare admin …`` (departments, users, tokens) and ``govshare audit …``.

These act as the local operator: whoever runs them has the machine, so each action is
audited under the operator's login name rather than a token.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.audit import AuditEvent, AuditQuery, append, search, verify
from catalog.identity import (
    IdentityError,
    add_department,
    add_user,
    ensure_department,
    issue_token,
    office_exists,
    revoke_token,
    user_by_name,
)
from catalog.settings import Settings
from catalog.state.db import StateStore
from catalog.state.models import AuditEntry, User

admin_app = typer.Typer(help="Departments, users and tokens.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
console = Console()


def operator() -> str:
    return f"cli:{getpass.getuser()}"


@contextmanager
def _transaction() -> Iterator[Session]:
    store = StateStore(Settings())
    try:
        with store.transaction() as session:
            yield session
    except IdentityError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    finally:
        store.close()


def _audit(session: Session, action: str, detail: dict) -> None:
    event = AuditEvent(action=action, result="ok", detail=detail, operator=operator())
    append(session, event, datetime.now(UTC))


def _show_token(username: str, plain: str, expires: datetime) -> None:
    console.print(
        f"token for [bold]{username}[/bold] (valid until {expires:%Y-%m-%d %H:%M} UTC; "
        "shown once, keep it safe):"
    )
    console.print(plain, soft_wrap=True, highlight=False)


@admin_app.command()
def bootstrap(
    department_code: Annotated[str, typer.Option(help="USCC of the information office")],
    department_name: Annotated[str, typer.Option(help="Name of the information office")],
    username: Annotated[str, typer.Option(help="The first office administrator")],
) -> None:
    """Create the first office administrator and print their token (only once)."""
    now = datetime.now(UTC)
    with _transaction() as session:
        if office_exists(session):
            raise IdentityError("an office user exists already; use `govshare admin user`")
        ensure_department(session, department_code, department_name, now)
        user = add_user(session, username, department_code, "office", now)
        _audit(session, "admin.bootstrap", {"username": username, "department": department_code})
        token, plain = issue_token(session, user, now, Settings().token_ttl_days, "bootstrap")
    _show_token(username, plain, token.expires_at)


@admin_app.command()
def department(
    code: Annotated[str, typer.Argument(help="Unified social credit code")],
    name: Annotated[str, typer.Argument(help="Department name")],
) -> None:
    """Register a department."""
    with _transaction() as session:
        add_department(session, code, name, datetime.now(UTC))
        _audit(session, "department.add", {"code": code})
    console.print(f"[green]department {code} registered[/green]")


@admin_app.command()
def user(
    username: Annotated[str, typer.Argument()],
    department_code: Annotated[str, typer.Option("--department", help="Department USCC")],
    role: Annotated[str, typer.Option(help="office, provider, consumer or analyst")],
    display_name: Annotated[str, typer.Option(help="Full name")] = "",
) -> None:
    """Register a user of a department with one role."""
    with _transaction() as session:
        add_user(session, username, department_code, role, datetime.now(UTC), display_name)
        _audit(session, "user.add", {"username": username, "role": role})
    console.print(f"[green]user {username} ({role}) registered[/green]")


@admin_app.command()
def users() -> None:
    """List users and their departments."""
    table = Table("id", "username", "role", "department", "active")
    with _transaction() as session:
        for u in session.execute(select(User).order_by(User.id)).scalars():
            table.add_row(str(u.id), u.username, u.role, u.department.code, str(u.active))
    console.print(table)


@admin_app.command()
def token(
    username: Annotated[str, typer.Argument()],
    days: Annotated[int | None, typer.Option(help="Validity in days")] = None,
    label: Annotated[str, typer.Option(help="What the token is for")] = "",
) -> None:
    """Issue a token to a user; it is printed once and only its hash is kept."""
    with _transaction() as session:
        issued, plain = issue_token(
            session,
            user_by_name(session, username),
            datetime.now(UTC),
            days or Settings().token_ttl_days,
            label,
        )
    console.print(f"token id {issued.id}")
    _show_token(username, plain, issued.expires_at)


@admin_app.command()
def revoke(
    token_id: Annotated[int, typer.Argument(help="Token id (from `token` or the API)")],
) -> None:
    """Revoke a token; it stops working at once."""
    with _transaction() as session:
        revoke_token(session, token_id, datetime.now(UTC))
    console.print(f"[green]token {token_id} revoked[/green]")


@audit_app.command("verify")
def verify_log(
    expect_head: Annotated[
        str | None, typer.Option(help="A head hash noted earlier: the log must still contain it")
    ] = None,
) -> None:
    """Check the hash chain: any edited, deleted or reordered entry is named (exit 1)."""
    with _transaction() as session:
        report = verify(session)
        anchored = expect_head is None or _contains_hash(session, expect_head)
    if report.intact and anchored:
        console.print(
            f"[green]audit log intact[/green]: {report.entries:,} entries, head {report.head_hash}"
        )
        return
    for fault in report.faults:
        console.print(f"[red]{fault}[/red]")
    if not anchored:
        console.print(f"[red]the log no longer holds the expected head {expect_head}[/red]")
    raise typer.Exit(1)


def _contains_hash(session: Session, wanted: str) -> bool:
    return session.scalar(select(AuditEntry.seq).where(AuditEntry.hash == wanted)) is not None


@audit_app.command()
def show(
    limit: Annotated[int, typer.Option("-n", help="How many entries")] = 20,
    dataset: Annotated[str | None, typer.Option(help="Only this dataset")] = None,
) -> None:
    """The newest audit entries."""
    table = Table("seq", "at (UTC)", "who", "dept", "action", "dataset", "v", "rows", "result")
    query = AuditQuery(datasets=[dataset] if dataset else None)
    with _transaction() as session:
        for e in search(session, query, limit=limit, offset=0):
            table.add_row(
                str(e.seq),
                f"{e.at:%Y-%m-%d %H:%M:%S}",
                e.username,
                e.department_code or "",
                e.action,
                e.dataset or "",
                str(e.version or ""),
                str(e.row_count if e.row_count is not None else ""),
                e.result,
            )
    console.print(table)
