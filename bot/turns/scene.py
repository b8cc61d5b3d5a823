"""What one turn writes, collected as rows per table and written once at its end.

The flow engine's events are applied by handlers (:mod:`bot.turns.effects`) that add rows to the
patient's scene in the unit of work: the conversation log, results, observations, staff tasks and
the audit entries of each. Rows are sealed as they are added (the encrypted fields under the
patient's data key, by the same field declarations and record builders the care services use).
:meth:`Scene.write` hands every table's rows to one batched writer
(:func:`security.dialects.write_batch`: one statement on PostgreSQL, one per table on SQLite), as
mailroom's runner writes a turn's scene. The turn's owner writes it when the turn ends; rows still
unwritten at commit are written then, and a rollback forgets them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, TypeVar, cast

from sqlalchemy import Table, inspect
from sqlalchemy.orm import Mapper, Session, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state

from security.audit import Actor, AuditEntry, entry_row, take_pending_entries
from security.dialects import Guard, TableRows, write_batch
from security.fields import cipher_of, clock_of, sealed_row
from security.session import audit_keys_of, before_commit, cancel_before_commit, unit_of_work_state


def table_of(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


T = TypeVar("T")


class PlainRow:
    """A row a turn read and changes as a plain object, outside the unit of work (a dataclass naming the
    mapped class of its table, ``model``, and its attributes): the scene that tracks it writes what changed
    in it (:meth:`Scene.track`), its encrypted fields sealed then, and no flush or commit walks it."""

    model: ClassVar[type[Any]]
    id: uuid.UUID
    updated_at: datetime  # written unchanged when a guarded row changed nothing: its guard is checked all the same

    def __post_init__(self) -> None:
        self._written: dict[str, Any] = {}
        self._written = dict(vars(self))

    def take_changes(self) -> dict[str, Any]:
        """The attributes assigned a different value since the row was read or its changes last taken (a
        value changed in place is not seen: assign a new one, as with the ORM's JSON columns)."""
        written = self._written
        changed = {name: value for name, value in vars(self).items()
                   if name != "_written" and value is not written[name] and value != written[name]}
        written.update(changed)
        return changed


AUDIT = table_of(AuditEntry)
_SCENES = "careloop.turn_scenes"


@dataclass
class Scene:
    """The rows one unit of work writes for one patient, in the order their tables were first written.

    ``key`` is the patient's data key (what the encrypted fields of their rows are sealed with);
    ``now`` the turn's time (every row of a turn carries the same).
    """

    session: Session
    patient_id: uuid.UUID
    key: bytes
    now: datetime
    _inserts: dict[Table, list[dict[str, Any]]] = field(default_factory=dict)
    # One entry per updated row, its values merged: PostgreSQL may not write a row twice in one statement.
    _updates: dict[tuple[Table, uuid.UUID], dict[str, Any]] = field(default_factory=dict)
    # Objects of the session whose changes this scene writes (see :meth:`track`), and the guarded one.
    _tracked: list[Any] = field(default_factory=list)
    _guarded: Any = None
    _guard: Guard | None = None

    @classmethod
    def of(cls, session: Session, patient_id: uuid.UUID, *, key: bytes | None = None) -> Scene:
        """The patient's scene in ``session``'s unit of work, begun on first use (``key``: their data key, if
        the caller has it already)."""
        scenes: dict[uuid.UUID, Scene] = unit_of_work_state(session).setdefault(_SCENES, {})
        scene = scenes.get(patient_id)
        if scene is None:
            # The scene belongs to the session's transaction (begun here if it was not): a rollback ends it.
            session.connection()
            now = clock_of(session).now()
            if key is None:
                key = cipher_of(session).data_key(session, patient_id, create=True, now=now)
            scene = scenes[patient_id] = cls(session, patient_id, key, now)
            before_commit(session, (_SCENES, patient_id), scene.write)
        return scene

    def add(self, model: type[Any], record: Mapping[str, Any]) -> None:
        """Add a new ``model`` row (``record``: attribute values with its ``id``), sealed as assigning would."""
        row = sealed_row(cipher_of(self.session), self.key, model, record)
        self._inserts.setdefault(table_of(model), []).append(row)

    def audit(self, *, actor: Actor, **entry: Any) -> None:
        """Add an audit entry (``action``, ``resource_type``, ...; see :func:`security.audit.entry_row`)."""
        row = entry_row(audit_keys_of(self.session), session=self.session, actor=actor, now=self.now, **entry)
        self._inserts.setdefault(AUDIT, []).append(row)

    def update(self, model: type[Any], row_id: uuid.UUID, values: Mapping[str, Any]) -> None:
        """Set ``values`` (attribute values; encrypted fields sealed here) on the existing ``model`` row ``row_id``."""
        sealed = sealed_row(cipher_of(self.session), self.key, model, {"id": row_id, **values})
        self._updates.setdefault((table_of(model), row_id), {"id": row_id}).update(sealed)

    def track(self, instance: Any, *, guard: Guard | None = None) -> None:
        """Write what the turn changes in ``instance`` (an object of the session: the conversation, the
        delivery's receipt) with the scene's rows, as one more update, instead of the unit of work's own
        UPDATE. With ``guard``, that update is the batch's guarded one (:func:`security.dialects.write_batch`)."""
        if not any(tracked is instance for tracked in self._tracked):
            self._tracked.append(instance)
        if guard is not None:
            self._guarded, self._guard = instance, guard

    def rows(self, model: type[Any]) -> list[dict[str, Any]]:
        """The new rows of ``model``'s table so far (stored column values)."""
        return list(self._inserts.get(table_of(model), []))

    def write(self, *, guard: Guard | None = None) -> None:
        """Write every row of the scene in the session's transaction; the scene ends (a later one begins afresh).

        What the unit of work holds as objects is flushed first (a patient enrolled in it, say, whose
        rows these reference). New rows go first, table by table, then the updates; with ``guard``,
        the last update only applies if its condition holds (else
        :class:`security.dialects.GuardFailedError`, and the caller rolls back).
        """
        scenes: dict[uuid.UUID, Scene] = unit_of_work_state(self.session).get(_SCENES, {})
        if scenes.get(self.patient_id) is self:
            del scenes[self.patient_id]
            cancel_before_commit(self.session, (_SCENES, self.patient_id))
        if AUDIT in self._inserts:
            # The entries the care services added as objects in this unit of work join the scene's.
            self._inserts[AUDIT][:0] = take_pending_entries(self.session)
        guarded = self._take_tracked_changes()
        if guarded is not None:
            # The guarded row's update goes last, where the batch checks its guard.
            self._updates[guarded] = self._updates.pop(guarded)
            guard = self._guard
        writes = [TableRows(table, rows) for table, rows in self._inserts.items()]
        writes += [TableRows(table, [row], update=True) for (table, _row_id), row in self._updates.items()]
        self._inserts, self._updates, self._tracked, self._guarded, self._guard = {}, {}, [], None, None
        if not writes:
            return
        self.session.flush()
        write_batch(self.session.connection(), writes, guard=guard)

    def _take_tracked_changes(self) -> tuple[Table, uuid.UUID] | None:
        """Move what changed in the tracked objects into the scene's updates, leaving the objects unchanged
        in the unit of work's eyes (it will not UPDATE them again); return the guarded row's key, if it changed."""
        guarded = None
        for instance in self._tracked:
            if isinstance(instance, PlainRow):
                changed = instance.take_changes()
                if not changed and instance is self._guarded:
                    changed = {"updated_at": instance.updated_at}
                if changed:
                    self.update(instance.model, instance.id, changed)
                    if instance is self._guarded:
                        guarded = (table_of(instance.model), instance.id)
                continue
            state = instance_state(instance)
            if not state.persistent or (not state.modified and instance is not self._guarded):
                continue
            columns = _columns_by_attribute(state.mapper)
            values = state.dict
            unmodified = state.unmodified
            # In the mapper's order: the batch's statement is cached by its columns.
            changed = {column: values[key] for key, column in columns.items()
                       if key not in unmodified and key in values}
            _as_if_just_loaded(self.session, instance)
            if not changed and instance is self._guarded:
                changed = {"updated_at": instance.updated_at}  # the guard is checked even when nothing changed
            if not changed:
                continue
            row_key = (table_of(type(instance)), instance.id)
            self._updates.setdefault(row_key, {"id": instance.id}).update(changed)
            if instance is self._guarded:
                guarded = row_key
        return guarded


def as_loaded(session: Session, model: type[T], values: Mapping[str, Any]) -> T:
    """A ``model`` object of ``session`` with ``values`` (attribute names: every column's) as if a query had
    loaded them, without the query: a row the turn read with other data, or has just inserted."""
    instance = cast(T, inspect(model).class_manager.new_instance())
    instance.__dict__.update(values)  # as the ORM's loading fills an object, without change events
    make_transient_to_detached(instance)
    session.add(instance)
    return instance


def _columns_by_attribute(mapper: Mapper[Any]) -> dict[str, str]:
    found = _COLUMNS_BY_ATTRIBUTE.get(mapper)
    if found is None:
        found = _COLUMNS_BY_ATTRIBUTE[mapper] = {prop.key: prop.columns[0].key for prop in mapper.column_attrs}
    return found


_COLUMNS_BY_ATTRIBUTE: dict[Mapper[Any], dict[str, str]] = {}


def _as_if_just_loaded(session: Session, instance: Any) -> None:
    """Make ``instance``'s current values its committed ones, so that the unit of work has nothing to flush
    for it."""
    # What a flush does to a row it wrote, for which there is no public call: marking attributes committed
    # one by one leaves the object flagged as modified, and expunging and re-adding it cost 3 % of an answer.
    state = instance_state(instance)
    state._commit_all(state.dict, session.identity_map)


def write_scenes(session: Session) -> None:
    """Write every scene of ``session``'s unit of work that is not written yet (a turn's end)."""
    scenes: dict[uuid.UUID, Scene] = unit_of_work_state(session).get(_SCENES, {})
    for scene in list(scenes.values()):
        scene.write()
