"""Shardlyn's /v1/users (the caller's own account; administrators: everyone's) and /v1/admin/users."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cloudlet.auth import service as auth
from cloudlet.auth.models import User
from cloudlet.auth.schemas import MessageRead, PasswordChange, Suspension, UserCreate, UserList, UserRead
from cloudlet.kit.pagination import MAX_OFFSET
from cloudlet.surfaces.deps import AdminCaller, AppSettings, AuthedCaller, DbSession, SessionCaller
from cloudlet.surfaces.params import PathId

router = APIRouter(tags=["shardlyn"])

Limit = Annotated[int, Query(ge=1, le=200, description="How many users to return.")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="How many users to skip.")]


def _user_list(db: DbSession, limit: int, offset: int) -> UserList:
    page = auth.list_users(db, limit=limit, offset=offset)
    return UserList(users=page.items, total=page.total)


@router.get("/v1/users/me", response_model=UserRead, summary="Get current user")
def me(caller: AuthedCaller) -> User:
    """The account of whoever presents the credential."""
    return caller.user


@router.post("/v1/users/me/password", response_model=MessageRead, summary="Update password")
def change_password(body: PasswordChange, caller: SessionCaller, db: DbSession, settings: AppSettings) -> MessageRead:
    """Change the password (the current one is required); every refresh session ends."""
    auth.change_password(db, settings, caller.user, body.current_password, body.new_password)
    return MessageRead(message="Your password has been changed.")


@router.get("/v1/users", response_model=UserList, summary="List users")
def list_users(caller: AdminCaller, db: DbSession, limit: Limit = 50, offset: Offset = 0) -> UserList:
    """Every account, a page at a time, with the total."""
    return _user_list(db, limit, offset)


@router.post("/v1/users", status_code=201, response_model=UserRead, summary="Create user")
def create_user(body: UserCreate, caller: AdminCaller, db: DbSession, settings: AppSettings) -> User:
    """Open an account for someone (whatever the registration setting)."""
    return auth.admin_create_user(db, settings, body)


@router.get("/v1/users/{user_id}", response_model=UserRead, summary="Get user")
def get_user(user_id: PathId, caller: AdminCaller, db: DbSession) -> User:
    """One account."""
    return auth.get_user(db, user_id)


@router.delete("/v1/users/{user_id}", status_code=204, summary="Delete user")
def delete_user(user_id: PathId, caller: AdminCaller, db: DbSession) -> None:
    """Remove an account with its sessions, tokens and memberships; never the caller's own."""
    auth.delete_user(db, caller.user, user_id)


@router.get("/v1/admin/users", response_model=UserList, summary="List users")
def admin_list_users(caller: AdminCaller, db: DbSession, limit: Limit = 50, offset: Offset = 0) -> UserList:
    """Every account, a page at a time, with the total."""
    return _user_list(db, limit, offset)


@router.post("/v1/admin/users/{user_id}/suspend", response_model=UserRead, summary="Suspend user")
def suspend_user(user_id: PathId, caller: AdminCaller, db: DbSession, body: Suspension | None = None) -> User:
    """Stop an account from signing in or using any of its credentials."""
    return auth.suspend_user(db, caller.user, user_id, body.reason if body else None)


@router.post("/v1/admin/users/{user_id}/unsuspend", response_model=UserRead, summary="Unsuspend user")
def unsuspend_user(user_id: PathId, caller: AdminCaller, db: DbSession) -> User:
    """Let a suspended account sign in again."""
    return auth.unsuspend_user(db, user_id)
