"""Patient tags (added by flows, rules or staff), and the clinic's tag definitions.

A tag's index is per patient (``PatientTag.tag``), so a patient's own tag is found through the
patient, and the patients who have a tag by one query over the tags' ``(patient, index)`` pairs,
each checked against the tag's trapdoor (:func:`patient_ids_with_tag`).

Each tag row says where it came from (:class:`TagOrigin`, stored encrypted as ``source``) and when
(``added_at``). Staff-set tags are ``pinned``: a rule never removes a pinned tag, and staff may pin
a tag a rule or a flow set (:func:`pin_tag`).

A tag definition (:class:`~care.models.TagDefinition`: colour, zh/en description) is optional:
any tag may be used without one, and is then shown without a colour.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from care.errors import Problem, ValidationFailedError
from care.interventions.service import tag_set
from care.models import Patient, PatientTag, TagDefinition
from care.plans.service import tag_changed
from care.reevaluation import request_at_commit
from security.audit import Actor, log
from security.fields import clock_of

MAX_TAG = 64
MAX_DESCRIPTION = 500
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


def clean_tag(tag: str, *, field: str = "tag") -> str:
    """Return ``tag`` as stored (trimmed, lower case); raise :class:`ValidationFailedError` naming ``field``."""
    cleaned = tag.strip().lower() if isinstance(tag, str) else ""
    if not cleaned or len(cleaned) > MAX_TAG or not cleaned.isprintable():
        raise ValidationFailedError([Problem(field, f"must be one line of 1-{MAX_TAG} characters")])
    return cleaned



@dataclass(frozen=True)
class TagOrigin:
    """Where a tag came from: a rule (its id and version), a staff member (their id), a flow (its id).

    Stored as the tag row's encrypted ``source``: ``rule:<rule id>:<version>``, ``staff:<id>``,
    ``flow:<flow id>``; any other source reads as its kind with the rest as ``ref``.
    """

    kind: str
    ref: str = ""
    version: int | None = None

    @classmethod
    def rule(cls, rule_id: uuid.UUID, version: int) -> TagOrigin:
        return cls("rule", str(rule_id), version)

    @classmethod
    def staff(cls, staff_id: str) -> TagOrigin:
        return cls("staff", staff_id)

    @classmethod
    def parse(cls, source: str | None) -> TagOrigin:
        """Read a stored ``source`` back."""
        kind, _, rest = (source or "").partition(":")
        if kind == "rule":
            ref, _, version = rest.partition(":")
            return cls("rule", ref, int(version) if version.isdigit() else None)
        return cls(kind, rest)

    @property
    def source(self) -> str:
        """The stored form."""
        if self.kind == "rule":
            return f"rule:{self.ref}:{self.version or 0}"
        return f"{self.kind}:{self.ref}" if self.ref else self.kind

    def rule_id(self) -> uuid.UUID | None:
        """The rule that set the tag, or None when no rule did."""
        if self.kind != "rule":
            return None
        try:
            return uuid.UUID(self.ref)
        except ValueError:
            return None


def tags_of(session: Session, patient: Patient) -> set[str]:
    rows = session.scalars(select(PatientTag).where(PatientTag.patient_id == patient.id))
    return {row.tag for row in rows if row.tag}


def tag_rows_of(session: Session, patient_id: uuid.UUID) -> list[PatientTag]:
    """Return the patient's tag rows (their tag, source, time and pin)."""
    return tag_rows_of_each(session, [patient_id]).get(patient_id, [])


def tag_rows_of_each(session: Session, patient_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[PatientTag]]:
    """:func:`tag_rows_of` of each of these patients, in one query (a chunk of a rule's bulk run)."""
    found: dict[uuid.UUID, list[PatientTag]] = {}
    for row in session.scalars(select(PatientTag).where(PatientTag.patient_id.in_(list(patient_ids)))):
        found.setdefault(row.patient_id, []).append(row)
    return found


def _find(session: Session, patient: Patient, tag: str) -> PatientTag | None:
    query = select(PatientTag).where(PatientTag.patient_id == patient.id,
                                     PatientTag.tag.matches(session, tag, owner_id=patient.id))
    return session.scalars(query).one_or_none()


def source_kind(source: str) -> str:
    """What kind of thing added a tag (``flow``, ``rule``, ``staff``): ``flow:phq9`` says which screening did."""
    return source.split(":", 1)[0][:32]


def add_tag(session: Session, patient: Patient, tag: str, *, source: str, actor: Actor, pinned: bool = False) -> bool:
    """Add ``tag``; False when the patient already had it."""
    tag = clean_tag(tag)
    if _find(session, patient, tag) is not None:
        return False
    session.add(PatientTag(patient_id=patient.id, tag=tag, source=source, added_at=clock_of(session).now(),
                           pinned=pinned))
    # The audit trail is in clear: it names the kind of source, not the flow or rule whose facts set the tag.
    log(session, actor=actor, action="tag.add", resource_type="patient", resource_id=patient.id,
        patient_id=patient.id, details={"source": source_kind(source), **({"pinned": True} if pinned else {})})
    request_at_commit(session, patient.id, reason="tags")  # other rules may read the tags
    tag_changed(session, patient, tag, added=True, actor=actor)  # the plans that enrol on the tag
    tag_set(session, patient, tag, actor=actor)  # the interventions that start on it
    return True


def staff_tag(session: Session, patient: Patient, tag: str, *, staff_id: str, actor: Actor) -> bool:
    """Set ``tag`` by hand: added pinned, or, when the patient has it already, pinned; False if nothing changed."""
    found = _find(session, patient, clean_tag(tag))
    if found is None:
        return add_tag(session, patient, tag, source=TagOrigin.staff(staff_id).source, actor=actor, pinned=True)
    return pin_tag(session, patient, tag, pinned=True, actor=actor)


def pin_tag(session: Session, patient: Patient, tag: str, *, pinned: bool, actor: Actor) -> bool:
    """Pin (or unpin) the patient's ``tag``; False when they lack it or it already was."""
    found = _find(session, patient, clean_tag(tag))
    if found is None or found.pinned is pinned:
        return False
    found.pinned = pinned
    log(session, actor=actor, action="tag.pin" if pinned else "tag.unpin", resource_type="patient",
        resource_id=patient.id, patient_id=patient.id)
    return True


def remove_tag(session: Session, patient: Patient, tag: str, *, actor: Actor) -> bool:
    """Remove ``tag``; False when the patient did not have it."""
    found = _find(session, patient, clean_tag(tag))
    if found is None:
        return False
    session.delete(found)
    log(session, actor=actor, action="tag.remove", resource_type="patient", resource_id=patient.id,
        patient_id=patient.id)
    request_at_commit(session, patient.id, reason="tags")
    tag_changed(session, patient, tag, added=False, actor=actor)
    return True


def patient_ids_with_tag(session: Session, tag: str) -> list[uuid.UUID]:
    """Return the ids of the patients who have ``tag``, in one query.

    The query reads each tag row's patient and index (the unique index on both covers it); the
    tag's trapdoor, computed once, tells which rows hold ``tag``, at one HMAC a row.
    """
    return PatientTag.tag.owners_with(session, clean_tag(tag), PatientTag.patient_id)


def patient_ids_with_each(session: Session, tags: Iterable[str]) -> dict[str, list[uuid.UUID]]:
    """Return the patients of each of ``tags``, in one query over the tag rows (see :func:`patient_ids_with_tag`)."""
    names = list(dict.fromkeys(clean_tag(tag) for tag in tags))
    found = PatientTag.tag.owners_with_each(session, names, PatientTag.patient_id)
    return dict(zip(names, found, strict=True))


# -- definitions ------------------------------------------------------------------------------------------
def _description(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if len(text) > MAX_DESCRIPTION:
        raise ValidationFailedError([Problem(field, f"must be at most {MAX_DESCRIPTION} characters")])
    return text or None


def define_tag(session: Session, name: str, *, colour: str | None = None, description_zh: str | None = None,
               description_en: str | None = None, actor: Actor) -> tuple[TagDefinition, bool]:
    """Describe the tag ``name`` (a colour ``#RRGGBB``, a zh and an en description); return it and whether it is new.

    Given values replace the stored ones; values not given (None) stay as they were.

    :raises ValidationFailedError: naming ``name``, ``colour``, ``description_zh`` or ``description_en``.
    """
    tag = clean_tag(name, field="name")
    if colour is not None and not _COLOUR.match(colour.strip()):
        raise ValidationFailedError([Problem("colour", "must be a colour like #d9534f")])
    texts = {"description_zh": _description(description_zh, "description_zh"),
             "description_en": _description(description_en, "description_en")}
    now = clock_of(session).now()
    definition = session.scalars(select(TagDefinition).where(TagDefinition.name == tag)).one_or_none()
    created = definition is None
    if definition is None:
        definition = TagDefinition(name=tag, created_at=now, updated_at=now)
        session.add(definition)
    if colour is not None:
        definition.colour = colour.strip().lower()
    for field, text in texts.items():
        if text is not None:
            setattr(definition, field, text)
    definition.updated_at = now
    log(session, actor=actor, action="tag_definition.create" if created else "tag_definition.update",
        resource_type="tag_definition", resource_id=definition.id, details={"tag": tag})
    return definition, created


def tag_definitions(session: Session) -> dict[str, TagDefinition]:
    """Return every definition by tag name."""
    return {row.name: row for row in session.scalars(select(TagDefinition).order_by(TagDefinition.name))}
