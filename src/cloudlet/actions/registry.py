"""The procedure registry: how each command is carried out, filled explicitly by app.py's composition.

A procedure is a command's tasks in order (each with its deadline) and one conclusion, which records
how the action ended: its last task on success, its clean-up after a failed task. The engine looks a
command up here when it runs an action or an operator ends one; nothing registers itself on import.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cloudlet.actions.deadlines import Deadline, SettingsReader

W = TypeVar("W")


@dataclass(frozen=True)
class Task(Generic[W]):
    """One step of a procedure: its name (the key every action records it under), its work, its deadline."""

    name: str
    body: Callable[[W], str]
    deadline: Deadline

    def __call__(self, work: W) -> str:
        """Do the task's work (with no deadline: the runner applies it)."""
        return self.body(work)


def task(seconds: float, *, waits: SettingsReader | None = None) -> Callable[[Callable[[W], str]], Task[W]]:
    """Declare a task with its deadline: `seconds` of its own plus the configured wait it includes, if any."""
    def declare(body: Callable[[W], str]) -> Task[W]:
        return Task(body.__name__, body, Deadline(seconds, waits))
    return declare


# (work, failed task, reason): both None on success
Conclusion = Callable[[W, str | None, str | None], None]


@dataclass(frozen=True)
class Procedure(Generic[W]):
    """How a command is carried out: its tasks in order, then one conclusion (success or clean-up).

    `recorded` is the task list its actions show: the tasks, then the last one the conclusion records. `work`
    makes what its tasks work with, (database, settings, node drivers, action id, bound on each node call or
    None); None for the engine's default (runner.use_work: an instance's).
    """

    command: str
    recorded: tuple[str, ...]
    tasks: tuple[Task[W], ...]
    conclude: Conclusion[W]
    work: Callable[..., W] | None = None


_lock = threading.Lock()
PROCEDURES: dict[str, Procedure[Any]] = {}
TASKS: dict[str, Task[Any]] = {}
COMMAND_OF_TASK: dict[str, str] = {}


def register(*procedures: Procedure[Any]) -> None:
    """Add procedures (again is fine; a different one under a taken command or task name is an error)."""
    with _lock:
        for procedure in procedures:
            if tuple(step.name for step in procedure.tasks) != procedure.recorded[:-1]:
                raise RuntimeError(f"the tasks of {procedure.command} do not match what its actions record")
            if PROCEDURES.setdefault(procedure.command, procedure) is not procedure:
                raise RuntimeError(f"two procedures carry out {procedure.command!r}")
            for step in procedure.tasks:  # a task's name is its key in every action: one function per name
                if TASKS.setdefault(step.name, step) is not step:
                    raise RuntimeError(f"two different tasks are named {step.name!r}")
                COMMAND_OF_TASK.setdefault(step.name, procedure.command)


def procedure_of(command: str) -> Procedure[Any]:
    """The procedure that carries out a command; RuntimeError when app.py registered none for it."""
    found = PROCEDURES.get(command)
    if found is None:
        raise RuntimeError(f"no procedure is registered for {command!r} (app.register_procedures)")
    return found


def task_named(name: str) -> Task[Any]:
    """A registered task by name."""
    found = TASKS.get(name)
    if found is None:
        raise RuntimeError(f"no registered procedure has a task {name!r}")
    return found


def procedure_of_task(name: str) -> Procedure[Any]:
    """The procedure a registered task belongs to (the first registered, for a task several share)."""
    found = COMMAND_OF_TASK.get(name)
    if found is None:
        raise RuntimeError(f"no registered procedure has a task {name!r}")
    return procedure_of(found)
