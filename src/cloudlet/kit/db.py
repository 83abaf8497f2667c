"""Engines, sessions and the column types every domain shares (SQLite and PostgreSQL alike)."""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Engine,
    Enum,
    MetaData,
    String,
    bindparam,
    cast,
    create_engine,
    event,
    func,
    insert,
    literal_column,
    select,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every table; constraint names are stable for Alembic."""

    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware, SQLite included."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use kit.clock.now()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def enum_column(kind: type[enum.Enum], length: int = 20) -> Enum:
    """A column type for an enum, stored as its values in a VARCHAR.

    Not a native database enum, so a later value needs no ALTER TYPE on PostgreSQL.
    """
    return Enum(kind, native_enum=False, length=length, values_callable=lambda e: [str(m.value) for m in e])


WRITE = {"cloudlet_write": True}
CONNECTED = "cloudlet_connected"  # Session.info key: the session took a connection (ending it does I/O)


def insert_rows(session: Session, model: type[Base], rows: Sequence[Mapping[str, Any]]) -> None:
    """Append rows of a model's table (each row with the same keys): one statement whatever their number.

    Why: the request log's writer appends a line for every request. An executemany on SQLite steps the
    statement once a row and lets go of the GIL around each step; a writer thread then waits for the busy
    event loop to hand the GIL back thousands of times (2,000 lines took one to two seconds, holding
    SQLite's write lock all along, and fell behind a loaded server). On PostgreSQL SQLAlchemy binds every
    value of an executemany one by one (insertmanyvalues). So the rows go in as one JSON parameter, each
    value first converted by its column's type as SQLAlchemy would, that the database unpacks itself:
    json_each on SQLite, json_populate_recordset (into the table's own row type) on PostgreSQL.
    """
    if not rows:
        return
    connection = session.connection()
    table, dialect = model.__table__, connection.dialect
    names = list(rows[0])
    converters = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]
    values = [[value if convert is None or value is None else convert(value)
               for convert, value in zip(converters, (row[name] for name in names), strict=True)]
              for row in rows]
    if dialect.name == "sqlite":
        each = func.json_each(bindparam("rows", type_=String)).table_valued("value")
        picks = select(*(func.json_extract(each.c.value, f"$[{i}]") for i in range(len(names))))
        payload: list[Any] = values
    else:
        row_type: ColumnClause[Any] = literal_column(f"NULL::{dialect.identifier_preparer.format_table(table)}")
        unpacked = func.json_populate_recordset(row_type, cast(bindparam("rows", type_=String), JSON))
        columns = unpacked.table_valued(*names)
        picks = select(*(columns.c[name] for name in names))
        payload = [dict(zip(names, row, strict=True)) for row in values]
    connection.execute(insert(model).from_select(names, picks), {"rows": json.dumps(payload, default=_json_value)})


def _json_value(value: object) -> str:
    if isinstance(value, datetime):  # PostgreSQL's driver adapts datetimes itself: no bind processor made text
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} cannot be appended as JSON")


def make_engine(url: str, *, pool_size: int = 40) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys, a busy timeout and explicit BEGINs."""
    if url.startswith("sqlite"):
        # as many pooled connections as the server has request threads, so none is reopened per request
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=pool_size, max_overflow=pool_size)
        _tune_sqlite(engine)
        return engine
    return create_engine(url, pool_size=pool_size // 2, max_overflow=pool_size // 2, pool_pre_ping=True)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A writing transaction takes the write lock up front: a deferred one that reads, then
        # writes after another writer committed, fails at once with "database is locked".
        writing = connection.get_execution_options().get("cloudlet_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def _mark_connected(session: Session, _transaction: Any, _connection: Any) -> None:
    session.info[CONNECTED] = True


class Database:
    """An engine and the session factories for reading and for writing transactions."""

    def __init__(self, url: str, *, pool_size: int = 40) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = sessionmaker(self.engine.execution_options(**WRITE), expire_on_commit=False)
        self.after_commit: list[Callable[[Session], None]] = []
        event.listen(self._writer, "after_commit", self._run_after_commit)
        for factory in (self._reader, self._writer):
            event.listen(factory, "after_begin", _mark_connected)

    def _run_after_commit(self, session: Session) -> None:
        for hook in self.after_commit:
            hook(session)

    @property
    def is_sqlite(self) -> bool:
        """Whether this is the embedded SQLite database."""
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self, *, write: bool = True) -> Iterator[Session]:
        """A session whose transaction commits when the block ends cleanly and rolls back otherwise."""
        factory = self._writer if write else self._reader
        with factory() as session, session.begin():
            yield session

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection in a reading transaction, ended when the block ends: for Core statements that load
        no ORM object, at about half the cost of a session around the same statement."""
        with self.engine.connect() as connection:
            yield connection

    def open(self, *, write: bool = True) -> Session:
        """A session for a caller that cannot use `session()`; end it with finish().

        Opening does no I/O: the transaction begins at the first use (autobegin), the connection is
        taken at the first statement. A request whose caller came from the credential cache may never
        use it, and then sets up no transaction at all.
        """
        return (self._writer if write else self._reader)()

    @staticmethod
    def connected(session: Session) -> bool:
        """Whether a session made here has taken a connection; one that has not ends without any I/O."""
        return bool(session.info.get(CONNECTED))

    @staticmethod
    def finish(session: Session, *, commit: bool) -> None:
        """Commit (or roll back) a session made by open(), and close it."""
        try:
            if commit:
                session.commit()
            else:
                session.rollback()
        finally:
            session.close()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
