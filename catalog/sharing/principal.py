"""The caller of an action as the core sees it, below both identity and audit (which name
it) so that neither imports the other for it."""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from catalog.state.models import User


@dataclass(frozen=True)
class Principal:
    """The caller of an action, as the core sees it."""

    user_id: int
    username: str
    role: str
    department_id: int
    department_code: str
    department_name: str
    token_id: int | None = None

    @classmethod
    def of(cls, user: User, token_id: int | None = None) -> Principal:
        dept = user.department
        return cls(user.id, user.username, user.role, dept.id, dept.code, dept.name, token_id)


def local_operator() -> str:
    """The machine operator, as audit entries name them: ``cli:<login>``."""
    return f"cli:{getpass.getuser()}"


def actor_name(actor: Principal | None, operator: str) -> str:
    """How the platform state names who did something: a username or ``cli:<login>``."""
    return actor.username if actor is not None else operator
