"""Encrypted model fields, declared as plainly as a column::

    class Patient(Base):
        name = encrypted(TEXT)
        phone = encrypted(TEXT, index="phone", normalize=normalize_phone)

``encrypted()`` adds the ciphertext column (named like the field) and, with ``index=``, a blind
index column ``<field>_bidx`` for equality search. With ``per_owner=True`` the index is scoped to
the row's key owner (the patient): the same value has another index on every patient, so the
column cannot be used to group or count patients by value; a row is found through the owner
(:meth:`EncryptedField.matches` with ``owner_id``) or, over every owner, by
:meth:`EncryptedField.owners_with`. Reading the attribute decrypts; assigning
encrypts, immediately when the object is in a session, else at flush. The session must be made
by a factory passed through :func:`bind_cipher`, which holds the :class:`FieldCipher`.

Models using encrypted fields provide ``id`` (a UUID assigned at construction) and
``key_owner_id()``: the patient whose data key protects the row (``SYSTEM_OWNER`` for non-PHI).
"""

from __future__ import annotations

import hmac
import json
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, Protocol, TypeVar, overload

from sqlalchemy import LargeBinary, String, event, insert, inspect, select, type_coerce
from sqlalchemy.orm import Session, mapped_column, object_session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from security.clock import Clock, SystemClock
from security.crypto import FieldCipher, field_aad

T = TypeVar("T")

_PENDING = "_careloop_pending_plain"
_CACHE = "_careloop_plain_cache"
_LOADED = "careloop_loaded_records"


class KeyOwned(Protocol):
    id: uuid.UUID

    def key_owner_id(self) -> uuid.UUID: ...


@dataclass(frozen=True)
class Codec(Generic[T]):
    """How a field's value becomes bytes and back."""

    name: str
    encode: Callable[[T], bytes]
    decode: Callable[[bytes], T]


def _decode_text(raw: bytes) -> str:
    return raw.decode("utf-8")


def _encode_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


TEXT: Codec[str] = Codec("text", lambda value: value.encode("utf-8"), _decode_text)
DATE: Codec[date] = Codec(
    "date", lambda value: value.isoformat().encode(), lambda raw: date.fromisoformat(raw.decode())
)
FLOAT: Codec[float] = Codec("float", lambda value: repr(float(value)).encode(), lambda raw: float(raw.decode()))
JSON: Codec[Any] = Codec("json", _encode_json, lambda raw: json.loads(raw.decode("utf-8")))


class CipherUnavailableError(RuntimeError):
    """An encrypted field was touched outside a session that carries the cipher."""


def cipher_of(session: Session) -> FieldCipher:
    cipher = session.info.get("cipher")
    if not isinstance(cipher, FieldCipher):
        raise CipherUnavailableError("this session was not made by a factory bound to a FieldCipher")
    return cipher


def clock_of(session: Session) -> Clock:
    clock = session.info.get("clock")
    return clock if clock is not None else SystemClock()


class EncryptedField(Generic[T]):
    """The descriptor behind :func:`encrypted`."""

    def __init__(
        self,
        codec: Codec[T],
        *,
        index: str | None,
        normalize: Callable[[T], str] | None,
        unique: bool,
        nullable: bool,
        per_owner: bool = False,
    ) -> None:
        if per_owner and index is None:
            raise TypeError("an index per owner needs an index kind")
        self.codec = codec
        self.index = index
        self.normalize = normalize
        self.unique = unique
        self.nullable = nullable
        self.per_owner = per_owner
        self.name = ""
        self.storage = ""
        self.index_storage = ""
        self._owner: type[Any] | None = None

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._owner = owner
        self.name = name
        self.storage = f"_{name}_ct"
        # The mapped ciphertext column carries the field's own name in the database.
        setattr(owner, self.storage, mapped_column(name, LargeBinary, nullable=self.nullable))
        if self.index is not None:
            self.index_storage = f"{name}_bidx"
            setattr(
                owner,
                self.index_storage,
                mapped_column(f"{name}_bidx", LargeBinary(32), index=True, unique=self.unique, nullable=True),
            )

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> EncryptedField[T]: ...

    @overload
    def __get__(self, instance: object, owner: type[Any]) -> T | None: ...

    def __get__(self, instance: object | None, owner: type[Any]) -> EncryptedField[T] | T | None:
        if instance is None:
            return self
        pending: dict[str, Any] = instance.__dict__.get(_PENDING) or {}
        if self.name in pending:
            return pending[self.name]  # type: ignore[no-any-return]
        ciphertext: bytes | None = getattr(instance, self.storage)
        if ciphertext is None:
            return None
        cache: dict[str, tuple[bytes, Any]] = instance.__dict__.setdefault(_CACHE, {})
        hit = cache.get(self.name)
        if hit is not None and hit[0] == ciphertext:
            return hit[1]  # type: ignore[no-any-return]
        session = object_session(instance)
        if session is None:
            raise CipherUnavailableError(f"cannot decrypt {self.name!r} of a detached record")
        value = self._open(session, instance, ciphertext)
        cache[self.name] = (ciphertext, value)
        return value

    def __set__(self, instance: object, value: T | None) -> None:
        session = object_session(instance)
        if session is None or session.info.get("cipher") is None:
            instance.__dict__.setdefault(_PENDING, {})[self.name] = value
            return
        self.seal(session, instance, value)

    def _open(self, session: Session, instance: Any, ciphertext: bytes) -> T:
        cipher = cipher_of(session)
        owner_id = instance.key_owner_id()
        now = clock_of(session).now()
        if not cipher.is_cached(owner_id):
            _load_keys_of_loaded(session, cipher, owner_id, now)
        key = cipher.data_key(session, owner_id, create=False, now=now)
        return self.value_of(cipher, key, type(instance).__tablename__, instance.id, ciphertext)

    def seal(self, session: Session, instance: Any, value: T | None) -> None:
        """Encrypt ``value`` into the ciphertext column (and refresh the blind index)."""
        pending = instance.__dict__.get(_PENDING)
        if pending:
            pending.pop(self.name, None)
        if value is None:
            if not self.nullable:
                raise ValueError(f"{type(instance).__name__}.{self.name} is required")
            setattr(instance, self.storage, None)
            if self.index_storage:
                setattr(instance, self.index_storage, None)
            instance.__dict__.setdefault(_CACHE, {}).pop(self.name, None)
            return
        cipher = cipher_of(session)
        if instance.id is None:
            instance.id = uuid.uuid4()
        key = cipher.data_key(session, instance.key_owner_id(), create=True, now=clock_of(session).now())
        ciphertext = self._ciphertext(cipher, key, type(instance).__tablename__, instance.id, value)
        setattr(instance, self.storage, ciphertext)
        instance.__dict__.setdefault(_CACHE, {})[self.name] = (ciphertext, value)
        if self.index_storage:
            setattr(instance, self.index_storage, self.index_value(cipher, value, owner_id=instance.key_owner_id()))

    def _ciphertext(self, cipher: FieldCipher, key: bytes, table: str, row_id: object, value: T) -> bytes:
        return cipher.seal(key, field_aad(table, self.name, row_id), self.codec.encode(value))

    def column_values(
        self, cipher: FieldCipher, key: bytes | None, table: str, row_id: object, value: T | None, *,
        owner_id: uuid.UUID | None = None,
    ) -> dict[str, bytes | None]:
        """The stored columns (ciphertext, blind index) of ``value`` in row ``row_id`` of ``table``.

        What assigning the field stores, for rows written without an object (:func:`insert_new`);
        ``key`` is the row owner's data key (unused, and may be None, when ``value`` is None), and
        ``owner_id`` that owner (needed by an index per owner).
        """
        if value is None:
            if not self.nullable:
                raise ValueError(f"{table}.{self.name} is required")
            return {self.name: None, **({self.index_storage: None} if self.index_storage else {})}
        if key is None:
            raise ValueError(f"{table}.{self.name} needs its owner's data key")
        stored: dict[str, bytes | None] = {self.name: self._ciphertext(cipher, key, table, row_id, value)}
        if self.index_storage:
            stored[self.index_storage] = self.index_value(cipher, value, owner_id=owner_id)
        return stored

    def value_of(self, cipher: FieldCipher, key: bytes, table: str, row_id: object, ciphertext: bytes) -> T:
        """The value stored as ``ciphertext`` in row ``row_id`` of ``table``, for rows read without an object."""
        return self.codec.decode(cipher.open(key, field_aad(table, self.name, row_id), ciphertext))

    def _indexed(self, value: T) -> tuple[str, str]:
        """The index kind and ``value`` normalised the way the field normalises."""
        if self.index is None:
            raise TypeError(f"{self.name} has no blind index")
        return self.index, self.normalize(value) if self.normalize is not None else str(value)

    def index_value(self, cipher: FieldCipher, value: T, *, owner_id: uuid.UUID | None = None) -> bytes:
        """The blind index of ``value`` (normalised the way the field normalises); on the rows of ``owner_id``
        for an index per owner."""
        kind, normalized = self._indexed(value)
        if not self.per_owner:
            return cipher.blind_index(kind, normalized)
        if owner_id is None:
            raise TypeError(f"the index of {self.name} is per owner: name the owner")
        return cipher.owner_index(cipher.owner_trapdoor(kind, normalized), owner_id)

    def matches(self, session: Session, value: T, *, owner_id: uuid.UUID | None = None) -> ColumnElement[bool]:
        """A WHERE clause that finds rows whose field equals ``value`` (through the blind index); an index
        per owner finds the rows of ``owner_id`` only (the clause should also name that owner)."""
        index = self.index_value(cipher_of(session), value, owner_id=owner_id)
        return self.index_column() == index  # type: ignore[no-any-return]

    def owners_with(self, session: Session, value: T, owner: Any) -> list[uuid.UUID]:
        """Return the owners of the rows whose field equals ``value``, in one query (an index per owner).

        ``owner`` is the mapped column that names each row's owner. The query reads every row's
        owner and index; the trapdoor of ``value`` is computed once, each row then costs one HMAC.
        The owner is read as stored (a UUID from PostgreSQL, its 32 hex digits from SQLite), which
        spares making a UUID object of every row.
        """
        return self.owners_with_each(session, [value], owner)[0]

    def owners_with_each(self, session: Session, values: Sequence[T], owner: Any) -> list[list[uuid.UUID]]:
        """Return, for each of ``values``, the owners of the rows whose field equals it, in one query.

        As :meth:`owners_with`, at one HMAC per row and value (counting the patients of a few tags).
        """
        if not self.per_owner:
            raise TypeError(f"the index of {self.name} is not per owner: use matches()")
        cipher = cipher_of(session)
        trapdoors = [cipher.owner_trapdoor(*self._indexed(value)) for value in values]
        found: list[list[uuid.UUID]] = [[] for _ in values]
        if not trapdoors:
            return found
        # Typed as text and bytes so that no result processor runs: each row comes as the driver reads it.
        query = select(type_coerce(owner, String()), type_coerce(self.index_column(), LargeBinary()))
        for row in session.execute(query):
            stored_owner: object = row[0]
            stored_index: object = row[1]
            if stored_index is None:
                continue
            if isinstance(stored_owner, uuid.UUID):
                owner_id: uuid.UUID | None = stored_owner
                raw = stored_owner.bytes
            else:
                owner_id, raw = None, bytes.fromhex(str(stored_owner))
            for position, trapdoor in enumerate(trapdoors):
                if hmac.digest(trapdoor, raw, "sha256") == stored_index:
                    found[position].append(owner_id if owner_id is not None else uuid.UUID(bytes=raw))
                    break  # one row holds one value
        return found

    def stored_index(self, instance: object) -> bytes | None:
        """The blind index currently stored on ``instance``."""
        return getattr(instance, self.index_storage) if self.index_storage else None

    def column(self) -> Any:
        """The mapped ciphertext column (for IS NULL tests; its bytes are never compared)."""
        return getattr(self._owner, self.storage)

    def index_column(self) -> Any:
        """The mapped blind-index column, for building queries (``.in_(...)``, ordering)."""
        if not self.index_storage:
            raise TypeError(f"{self.name} has no blind index")
        return getattr(self._owner, self.index_storage)


def encrypted(
    codec: Codec[T],
    *,
    index: str | None = None,
    normalize: Callable[[T], str] | None = None,
    unique: bool = False,
    nullable: bool = True,
    per_owner: bool = False,
) -> EncryptedField[T]:
    """Declare an encrypted field (and, with ``index``, its blind index column, scoped to the row's owner
    with ``per_owner``)."""
    return EncryptedField(codec, index=index, normalize=normalize, unique=unique, nullable=nullable,
                          per_owner=per_owner)


# Per model class, its encrypted fields by name (classes do not change once declared).
_FIELDS_OF: dict[type[Any], dict[str, EncryptedField[Any]]] = {}


def _fields_by_name(instance_type: type[Any]) -> dict[str, EncryptedField[Any]]:
    found = _FIELDS_OF.get(instance_type)
    if found is None:
        found = {}
        for klass in reversed(instance_type.__mro__):
            for name, attribute in vars(klass).items():
                if isinstance(attribute, EncryptedField):
                    found[name] = attribute
        _FIELDS_OF[instance_type] = found
    return found


def seal_pending_fields(session: Session, _context: object, _instances: object) -> None:
    """Encrypt values assigned before the object joined the session (a ``before_flush`` hook).

    The data keys of every owner involved are fetched (or made) first in bulk, not one query per row.
    """
    waiting = [instance for instance in list(session.new) + list(session.dirty) if instance.__dict__.get(_PENDING)]
    if not waiting:
        return
    owners = {
        instance.key_owner_id()
        for instance in waiting
        if any(value is not None for value in instance.__dict__[_PENDING].values())
    }
    cipher_of(session).load_keys(session, owners, create=True, now=clock_of(session).now())
    for instance in waiting:
        fields = _fields_by_name(type(instance))
        for name, value in list(instance.__dict__[_PENDING].items()):
            fields[name].seal(session, instance, value)


def sealed_row(cipher: FieldCipher, key: bytes | None, model: type[Any], record: Mapping[str, Any], *,
               owner_id: uuid.UUID | None = None) -> dict[str, Any]:
    """The stored column values of one new ``model`` record, its encrypted fields sealed as assigning them would.

    ``record`` maps attribute names to values and carries the row's ``id``; ``key`` is the data key
    of the record's owner (what its ``key_owner_id()`` names; None when no encrypted field holds a value),
    ``owner_id`` that owner (needed when a field's index is per owner).

    Raises:
        ValueError: a required encrypted field is None, or a value needs a key and none was given.
        KeyError: the record names something that is not a column or encrypted field of ``model``.
    """
    fields = _fields_by_name(model)
    columns = _columns_of(model)
    table = model.__tablename__
    row: dict[str, Any] = {}
    for name, value in record.items():
        field = fields.get(name)
        if field is None:
            row[columns[name]] = value
        else:
            row.update(field.column_values(cipher, key, table, record["id"], value, owner_id=owner_id))
    return row


_COLUMNS_OF: dict[type[Any], dict[str, str]] = {}


def _columns_of(model: type[Any]) -> dict[str, str]:
    found = _COLUMNS_OF.get(model)
    if found is None:
        found = _COLUMNS_OF[model] = {prop.key: prop.columns[0].key for prop in inspect(model).column_attrs}
    return found


def insert_new(
    session: Session, model: type[Any], records: Sequence[Mapping[str, Any]], owners: Sequence[uuid.UUID]
) -> None:
    """INSERT new records of ``model`` with one statement, encrypted fields sealed as assigning them would.

    For bulk writers (an import) that need no objects back: this skips the unit of work's
    per-object bookkeeping, not the security. Each record maps attribute names to values and
    carries its ``id``; ``owners[i]`` is the patient whose data key protects ``records[i]`` (what
    its ``key_owner_id()`` would return). The owners' data keys are fetched or made in bulk. All
    records hold the same names.

    Raises:
        ValueError: a required encrypted field is None, or owners do not match records.
        KeyError: a record names something that is not a column or encrypted field of ``model``.
    """
    if len(records) != len(owners):
        raise ValueError("insert_new needs one owner per record")
    if not records:
        return
    cipher = cipher_of(session)
    now = clock_of(session).now()
    fields = _fields_by_name(model)

    def needs_key(record: Mapping[str, Any]) -> bool:
        return any(record.get(name) is not None for name in fields)

    keyed = [owner_id for owner_id, record in zip(owners, records, strict=True) if needs_key(record)]
    cipher.load_keys(session, keyed, create=True, now=now)
    rows = [
        sealed_row(cipher, cipher.data_key(session, owner_id, create=True, now=now) if needs_key(record) else None,
                   model, record, owner_id=owner_id)
        for record, owner_id in zip(records, owners, strict=True)
    ]
    session.execute(insert(inspect(model).local_table), rows)


# How many loaded records a session remembers for the next bulk key fetch (bounds its memory).
_LOADED_LIMIT = 10_000


def note_loaded(session: Session, instance: object) -> None:
    """Remember a record with encrypted fields as it is loaded (a ``loaded_as_persistent`` hook).

    The first field read that misses the key cache then fetches the keys of every record noted
    so far in one query, instead of one query per record (a listed page, a streamed export).
    """
    if _fields_by_name(type(instance)):
        loaded = session.info.get(_LOADED)
        if loaded is None:
            loaded = session.info[_LOADED] = deque(maxlen=_LOADED_LIMIT)
        loaded.append(weakref.ref(instance))


def track_loaded_records(factory: sessionmaker[Session]) -> None:
    """Let sessions from ``factory`` fetch the data keys of the records they load in bulk."""
    event.listen(factory, "loaded_as_persistent", note_loaded)


def _load_keys_of_loaded(session: Session, cipher: FieldCipher, owner_id: uuid.UUID, now: datetime) -> None:
    loaded: deque[weakref.ref[Any]] | None = session.info.pop(_LOADED, None)
    if not loaded:
        return
    owners = {owner_id}
    for reference in loaded:
        instance = reference()
        if instance is None:
            continue
        state = inspect(instance)
        # Only records still loaded and current: asking an expired one for its owner would query.
        if state.persistent and not state.expired:
            owners.add(instance.key_owner_id())
    cipher.load_keys(session, owners, create=False, now=now)
