"""``govshare admin …`` (departments, users, tokens) and ``govshare audit …``.

These act as the local operator: whoever runs them has the machine, so each action is
audited under the operator's login name rather than a token.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from catalog.settings import Settings
from catalog.sharing.principal import local_operator

admin_app = typer.Typer(help="Departments, users and tokens.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
console = Console()


def operator() -> str:
    return local_operator()


@contextmanager
def _transaction() -> Iterator[Session]:
    from catalog.sharing.identity import DutyConflict, IdentityError
    from catalog.state.db import StateStore

    store = StateStore(Settings())
    try:
        with store.transaction() as session:
            yield session
    except (IdentityError, DutyConflict) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    finally:
        store.close()


def _audit(session: Session, action: str, detail: dict) -> None:
    from catalog.sharing.audit import AuditEvent, append

    event = AuditEvent(action=action, result="ok", detail=detail, operator=operator())
    append(session, event, datetime.now(UTC))


def _show_activation(username: str, code: str, expires: datetime) -> None:
    console.print(
        f"one-time activation code for [bold]{username}[/bold] (valid until "
        f"{expires:%Y-%m-%d %H:%M} UTC; shown once: hand it to the user out of band):"
    )
    console.print(code, soft_wrap=True, highlight=False)


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
    from catalog.sharing.identity import bootstrap_office

    with _transaction() as session:
        user, issued, plain = bootstrap_office(
            session,
            department_code,
            department_name,
            username,
            datetime.now(UTC),
            ttl_days=Settings().token_ttl_days,
            operator=operator(),
        )
    _show_token(user.username, plain, issued.expires_at)


@admin_app.command()
def department(
    code: Annotated[str, typer.Argument(help="Unified social credit code")],
    name: Annotated[str, typer.Argument(help="Department name")],
) -> None:
    """Register a department."""
    from catalog.sharing.identity import add_department

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
    """Register a user of a department with one role, unconfirmed, and print their one-time
    activation code (hand it to the user; they exchange it for a token at POST /activate)."""
    from catalog.sharing.identity import register_user

    with _transaction() as session:
        added, code = register_user(
            session,
            username,
            department_code,
            role,
            datetime.now(UTC),
            activation_ttl_days=Settings().activation_ttl_days,
            display_name=display_name,
            operator=operator(),
        )
        expires = added.activation_expires_at
    console.print(f"[green]user {username} ({role}) registered[/green], not confirmed yet")
    _show_activation(username, code, expires)


@admin_app.command()
def users() -> None:
    """List users: department, role, confirmation, flags."""
    from sqlalchemy import select

    from catalog.sharing.identity import is_confirmed, is_disabled
    from catalog.state.models import User

    table = Table("id", "username", "role", "department", "state", "confirmed by", "flag")
    with _transaction() as session:
        for u in session.execute(select(User).order_by(User.id)).scalars():
            state = "disabled" if is_disabled(u) else "active" if is_confirmed(u) else "unconfirmed"
            table.add_row(
                str(u.id), u.username, u.role, u.department.code, state,
                u.confirmed_by or "", u.flag or "",
            )  # fmt: skip
    console.print(table)


@admin_app.command()
def confirm(username: Annotated[str, typer.Argument()]) -> None:
    """Confirm a user as the machine operator (flagged: a confirmed user of their
    department should confirm them, at POST /department/users/{username}/confirm)."""
    from catalog.sharing.identity import confirm_user, user_by_name

    with _transaction() as session:
        confirmed = confirm_user(
            session, user_by_name(session, username), datetime.now(UTC), operator=operator()
        )
    console.print(f"[yellow]user {username} confirmed, flagged[/yellow]: {confirmed.flag}")


@admin_app.command()
def reset(username: Annotated[str, typer.Argument()]) -> None:
    """Reset an account: revoke its tokens, clear its confirmation, print a new activation
    code (for a user who lost their token)."""
    from catalog.sharing.identity import reset_activation, user_by_name

    with _transaction() as session:
        account = user_by_name(session, username)
        code, revoked = reset_activation(
            session,
            account,
            datetime.now(UTC),
            activation_ttl_days=Settings().activation_ttl_days,
            operator=operator(),
        )
        expires = account.activation_expires_at
    console.print(f"tokens revoked: {', '.join(map(str, revoked)) or 'none'}")
    _show_activation(username, code, expires)


@admin_app.command()
def disable(
    username: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option(help="Why (kept with the account)")],
) -> None:
    """Disable a user: every token of theirs is refused at once; history is kept."""
    from catalog.sharing.identity import disable_user, user_by_name

    with _transaction() as session:
        disable_user(
            session, user_by_name(session, username), datetime.now(UTC), reason, operator=operator()
        )
    console.print(f"[green]user {username} disabled[/green]")


@admin_app.command()
def enable(username: Annotated[str, typer.Argument()]) -> None:
    """Enable a disabled user again."""
    from catalog.sharing.identity import enable_user, user_by_name

    with _transaction() as session:
        enable_user(
            session, user_by_name(session, username), datetime.now(UTC), operator=operator()
        )
    console.print(f"[green]user {username} enabled[/green]")


@admin_app.command()
def revoke(
    token_id: Annotated[int, typer.Argument(help="Token id (from the API's token lists)")],
) -> None:
    """Revoke a token; it stops working at once."""
    from catalog.sharing.identity import revoke_token

    with _transaction() as session:
        revoke_token(session, token_id, datetime.now(UTC), operator=operator())
    console.print(f"[green]token {token_id} revoked[/green]")


@audit_app.command("verify")
def verify_log(
    expect_head: Annotated[
        str | None, typer.Option(help="A head hash noted earlier: the log must still contain it")
    ] = None,
) -> None:
    """Check the hash chain: any edited, deleted or reordered entry is named (exit 1)."""
    from catalog.sharing.audit import verify

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
    from sqlalchemy import select

    from catalog.state.models import AuditEntry

    return session.scalar(select(AuditEntry.seq).where(AuditEntry.hash == wanted)) is not None


@audit_app.command()
def show(
    limit: Annotated[int, typer.Option("-n", help="How many entries")] = 20,
    dataset: Annotated[str | None, typer.Option(help="Only this dataset")] = None,
) -> None:
    """The newest audit entries."""
    from catalog.sharing.audit import AuditQuery, search

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
