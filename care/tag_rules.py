"""Tag rules (自动设置标签): a tag set on every patient for whom an expression over their facts holds.

A rule is a name, a tag, an expression in the flows' safe expression language over the facts of
:mod:`care.rule_facts`, a version and an enabled flag::

    careloop tags rules add 高血压风险 --tag 高血压 --expr "latest.sbp >= 140 or latest.dbp >= 90"

How a rule acts on one patient (:func:`evaluate_patients`):

* it holds and the patient lacks the tag: the tag is added, its origin the rule and its version;
* it stops holding: the tag is removed if a rule set it and staff did not pin it (a tag staff set
  is pinned; a tag a flow set is never a rule's to remove). Several rules may set one tag: it stays
  while any of them holds, and moves to the one that holds;
* a disabled rule holds for no one; an expression that cannot be evaluated for a patient (which
  the language reports as unknown) changes nothing for them.

When it runs:

* for one patient, when a fact of theirs changes: imports, readings, answers and profile or tag
  changes mark the patient (:mod:`care.reevaluation`); the worker's ``tag_reevaluation`` job drains
  the marks in chunks (:func:`drain_reevaluations`), running every rule on each patient;
* over every patient when a rule is created or edited (a new version): a :class:`TagRuleRun` row
  that the ``tag_rule_runs`` job advances one chunk of patients at a time, in patient id order,
  committing its progress (``done`` of ``total``, the last patient done) with each chunk, so that a
  worker killed mid-run loses at most one chunk, which the next tick redoes;
* every day for the rules that read facts the calendar changes (age, days since contact or
  answer): :func:`start_daily_runs`.

The language is given by the caller (:class:`RuleLanguage`; the bot wires the flows' expression
evaluator, ``bot.tag_rules``), with the names a rule may read (:class:`care.rule_facts.FactCatalogue`).
Every tag change is audited (the kind of source only, as :mod:`care.tags` does); the origin of a
tag, in its encrypted ``source``, names the rule and its version.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from care.errors import ConflictError, NotFoundError, Problem, ValidationFailedError
from care.interventions.service import tag_set, tags_that_start
from care.models import (
    Observation,
    Patient,
    PatientStatus,
    PatientTag,
    RunStatus,
    TagReevaluation,
    TagRule,
    TagRuleRun,
    TagRuleVersion,
)
from care.observations import latest_values_of
from care.plans.service import tag_changed, tag_key, tags_that_enrol
from care.reevaluation import clear_tag_reevaluation
from care.rule_facts import INDICATOR_NAMES, TIME_NAMES, ContactTimes, FactCatalogue, gather
from care.tags import (
    TagOrigin,
    clean_tag,
    patient_ids_with_each,
    patient_ids_with_tag,
    tag_rows_of,
    tag_rows_of_each,
)
from security.audit import Actor, log
from security.dialects import claim_rows, lock_rows
from security.fields import clock_of

logger = logging.getLogger("careloop.tag_rules")

MAX_NAME = 64
MAX_EXPRESSION = 1000
#: Patients per chunk of a bulk run, of a preview, and per batch of the re-evaluation queue.
CHUNK = 200
#: Who the audit trail names for the tags rules set and remove.
RULES_ACTOR = Actor("system", "tag-rules", "worker")
DAILY = timedelta(days=1)


class RuleLanguage(Protocol):
    """The expression language rules are written in."""

    def paths(self, source: str) -> frozenset[tuple[str, ...]]:
        """Return the names ``source`` reads, each as its path (``latest.sbp`` -> ``("latest", "sbp")``).

        :raises ValueError: the expression is not allowed (the reason is for staff).
        """
        ...

    def holds(self, source: str, facts: Mapping[str, Any]) -> bool | None:
        """Return whether ``source`` holds over ``facts``; None when it cannot be evaluated for them."""
        ...


@dataclass(frozen=True)
class RuleEngine:
    """What evaluating rules needs besides the database: the language, the names, the contact log."""

    language: RuleLanguage
    catalogue: FactCatalogue
    contact: ContactTimes | None = None

    def roots(self, expression: str, *, field: str = "expression") -> frozenset[str]:
        """Check ``expression`` and return the fact names it starts from.

        :raises ValidationFailedError: naming ``field``: a syntax the language refuses, or the unknown names.
        """
        if not isinstance(expression, str) or not expression.strip():
            raise ValidationFailedError([Problem(field, "the expression is empty")])
        if len(expression) > MAX_EXPRESSION:
            raise ValidationFailedError([Problem(field, f"must be at most {MAX_EXPRESSION} characters")])
        try:
            paths = self.language.paths(expression)
        except ValueError as refused:
            raise ValidationFailedError([Problem(field, str(refused))]) from None
        unknown = self.catalogue.unknown(paths)
        if unknown:
            names = ", ".join(f"'{name}'" for name in unknown)
            raise ValidationFailedError([Problem(
                field, f"unknown name{'s' if len(unknown) > 1 else ''} {names} (see 'Tag rules' in README.md for "
                       "the facts a rule can read)")])
        return frozenset(path[0] for path in paths)


@dataclass(frozen=True)
class ActiveRule:
    """A rule as evaluated: its current version, and the fact names it reads."""

    id: uuid.UUID
    name: str
    tag: str
    expression: str
    version: int
    enabled: bool
    roots: frozenset[str]

    @property
    def origin(self) -> TagOrigin:
        return TagOrigin.rule(self.id, self.version)


@dataclass
class Outcome:
    """What an evaluation did: patients evaluated, tags added, removed, and evaluations that failed."""

    evaluated: int = 0
    tagged: int = 0
    untagged: int = 0
    failed: int = 0

    def add(self, other: Outcome) -> None:
        self.evaluated += other.evaluated
        self.tagged += other.tagged
        self.untagged += other.untagged
        self.failed += other.failed


# -- rules -----------------------------------------------------------------------------------------------
def _clean_name(name: str) -> str:
    cleaned = " ".join(name.split()) if isinstance(name, str) else ""
    if not cleaned or len(cleaned) > MAX_NAME or not cleaned.isprintable():
        raise ValidationFailedError([Problem("name", f"a rule name is one line of 1-{MAX_NAME} characters")])
    return cleaned


def _key(name: str) -> str:
    return name.casefold()[:MAX_NAME]


def _actor_ref(actor: Actor) -> str:
    return f"{actor.kind}:{actor.id}"[:128]


def get_rule(session: Session, name: str) -> TagRule:
    """Return the rule named ``name`` (in any case).

    :raises NotFoundError: there is none.
    """
    cleaned = " ".join(name.split()) if isinstance(name, str) else ""
    rule = session.scalars(select(TagRule).where(TagRule.name_key == _key(cleaned))).one_or_none()
    if rule is None:
        raise NotFoundError(f"no tag rule named {name!r} (see: careloop tags rules list)")
    return rule


def rule_by_id(session: Session, rule_id: uuid.UUID) -> TagRule:
    """Return the rule of ``rule_id``.

    :raises NotFoundError: there is none.
    """
    rule = session.get(TagRule, rule_id)
    if rule is None:
        raise NotFoundError("no such tag rule")
    return rule


def _keep_version(session: Session, rule: TagRule, actor: Actor) -> None:
    session.add(TagRuleVersion(rule_id=rule.id, version=rule.version, tag=rule.tag, expression=rule.expression,
                               enabled=rule.enabled, created_at=rule.updated_at, created_by=_actor_ref(actor)))


def add_rule(session: Session, engine: RuleEngine, name: str, *, tag: str, expression: str, actor: Actor,
             enabled: bool = True) -> tuple[TagRule, TagRuleRun]:
    """Make the rule ``name`` (version 1) and start its run over every patient; audited.

    :raises ValidationFailedError: naming ``name``, ``tag`` or ``expression``.
    :raises ConflictError: a rule of that name (in any case) exists.
    """
    cleaned = _clean_name(name)
    tag_name = clean_tag(tag)
    engine.roots(expression)
    if session.scalar(select(func.count()).select_from(TagRule).where(TagRule.name_key == _key(cleaned))):
        raise ConflictError(f"a tag rule named {cleaned!r} already exists (change it with: careloop tags rules edit)")
    now = clock_of(session).now()
    rule = TagRule(name=cleaned, name_key=_key(cleaned), tag=tag_name, expression=expression.strip(), version=1,
                   enabled=enabled, created_at=now, updated_at=now)
    session.add(rule)
    _keep_version(session, rule, actor)
    log(session, actor=actor, action="tag_rule.create", resource_type="tag_rule", resource_id=rule.id,
        details={"name": rule.name, "tag": rule.tag, "version": 1, "enabled": enabled})
    return rule, start_run(session, rule, reason="created")


def edit_rule(session: Session, engine: RuleEngine, name: str, *, expression: str | None = None,
              enabled: bool | None = None, actor: Actor) -> tuple[TagRule, TagRuleRun | None]:
    """Change the rule's expression or enabled flag: a new version, and a run over every patient; audited.

    Nothing changes (and no run starts) when the values given are the rule's already.

    :raises NotFoundError: no rule of that name.
    :raises ValidationFailedError: naming ``expression``, or ``change`` when nothing was asked.
    """
    rule = get_rule(session, name)
    if expression is None and enabled is None:
        raise ValidationFailedError([Problem("change", "give --expr, --enabled or --disabled")])
    new_expression = rule.expression if expression is None else expression.strip()
    if expression is not None:
        engine.roots(expression)
    new_enabled = rule.enabled if enabled is None else enabled
    if new_expression == rule.expression and new_enabled == rule.enabled:
        return rule, None
    rule.expression, rule.enabled = new_expression, new_enabled
    rule.version += 1
    rule.updated_at = clock_of(session).now()
    _keep_version(session, rule, actor)
    log(session, actor=actor, action="tag_rule.update", resource_type="tag_rule", resource_id=rule.id,
        details={"name": rule.name, "tag": rule.tag, "version": rule.version, "enabled": rule.enabled})
    return rule, start_run(session, rule, reason="edited")


def _active(engine: RuleEngine, rule: TagRule) -> ActiveRule:
    try:
        roots = engine.roots(rule.expression)
    except ValidationFailedError:
        # A rule stored before a fact or questionnaire it names went away: it holds for no one until edited.
        logger.warning("tag rule %s v%d reads names that no longer exist; it is not evaluated", rule.id, rule.version)
        return ActiveRule(rule.id, rule.name, rule.tag, rule.expression, rule.version, False, frozenset())
    return ActiveRule(rule.id, rule.name, rule.tag, rule.expression, rule.version, rule.enabled, roots)


def active_rules(session: Session, engine: RuleEngine, *, tag: str | None = None) -> list[ActiveRule]:
    """Return every rule (of ``tag``, or all), disabled ones included (they hold for no one), by name."""
    query = select(TagRule).order_by(TagRule.name_key)
    if tag is not None:
        query = query.where(TagRule.tag == tag)
    return [_active(engine, rule) for rule in session.scalars(query)]


@dataclass(frozen=True)
class RuleSummary:
    """A rule as listed, with the progress of its latest run."""

    name: str
    tag: str
    expression: str
    version: int
    enabled: bool
    run_status: str | None
    run_done: int
    run_total: int
    id: uuid.UUID


def list_rules(session: Session) -> list[RuleSummary]:
    """Return every rule by name, with its latest run's status and progress."""
    summaries = []
    for rule in session.scalars(select(TagRule).order_by(TagRule.name_key)):
        run = latest_run(session, rule)
        summaries.append(RuleSummary(rule.name, rule.tag, rule.expression, rule.version, rule.enabled,
                                     run.status if run else None, run.done if run else 0, run.total if run else 0,
                                     rule.id))
    return summaries


def latest_run(session: Session, rule: TagRule) -> TagRuleRun | None:
    """Return the rule's newest run, or None."""
    return session.scalars(select(TagRuleRun).where(TagRuleRun.rule_id == rule.id)
                           .order_by(TagRuleRun.started_at.desc(), TagRuleRun.rule_version.desc(),
                                     TagRuleRun.id).limit(1)).first()


def rule_counts(session: Session) -> dict[str, int]:
    """Return how many rules (enabled or not) set each tag."""
    return {tag: int(count) for tag, count in
            session.execute(select(TagRule.tag, func.count()).group_by(TagRule.tag))}


# -- runs ------------------------------------------------------------------------------------------------
def _living(query: Any) -> Any:
    return query.where(Patient.status != PatientStatus.ERASED.value)


def start_run(session: Session, rule: TagRule, *, reason: str) -> TagRuleRun:
    """Start a run of ``rule``'s current version over every patient; a run of it still going is superseded."""
    now = clock_of(session).now()
    for running in session.scalars(select(TagRuleRun).where(TagRuleRun.rule_id == rule.id,
                                                            TagRuleRun.status == RunStatus.RUNNING.value)):
        running.status, running.finished_at, running.updated_at = RunStatus.SUPERSEDED.value, now, now
    total = int(session.scalar(_living(select(func.count()).select_from(Patient))) or 0)
    run = TagRuleRun(rule_id=rule.id, rule_version=rule.version, reason=reason, status=RunStatus.RUNNING.value,
                     total=total, done=0, tagged=0, untagged=0, failed=0, started_at=now, updated_at=now)
    session.add(run)
    return run


def start_daily_runs(session: Session, engine: RuleEngine) -> int:
    """Start a run of each enabled rule that reads a fact the calendar changes, once a day; return how many."""
    now = clock_of(session).now()
    started = 0
    for rule in session.scalars(select(TagRule).where(TagRule.enabled.is_(True)).order_by(TagRule.name_key)):
        if not _active(engine, rule).roots & TIME_NAMES:
            continue
        last = latest_run(session, rule)
        if last is not None and (last.status == RunStatus.RUNNING.value or now - last.started_at < DAILY):
            continue
        start_run(session, rule, reason="daily")
        started += 1
    return started


def run_chunk(session: Session, engine: RuleEngine, *, chunk: int = CHUNK, actor: Actor = RULES_ACTOR) -> int:
    """Advance the oldest running run by one chunk of patients (or finish it); return the patients evaluated.

    The run row is claimed (another worker takes another run); the chunk's patients are locked, so a
    conversation's turn and the run never change one patient's tags at once. Returns 0 when no run
    is going; a run found finished counts as 1 (the worker's tick goes on to the next run).
    """
    run = session.scalars(claim_rows(session, select(TagRuleRun).where(TagRuleRun.status == RunStatus.RUNNING.value)
                                     .order_by(TagRuleRun.started_at, TagRuleRun.id).limit(1))).first()
    if run is None:
        return 0
    now = clock_of(session).now()
    rule = session.get(TagRule, run.rule_id)
    if rule is None or rule.version != run.rule_version:
        run.status, run.finished_at, run.updated_at = RunStatus.SUPERSEDED.value, now, now
        return 1
    query = _living(select(Patient.id)).order_by(Patient.id).limit(chunk)
    if run.last_patient_id is not None:
        query = query.where(Patient.id > run.last_patient_id)
    ids = list(session.scalars(lock_rows(session, query)))
    if not ids:
        run.status, run.finished_at, run.updated_at = RunStatus.DONE.value, now, now
        log(session, actor=actor, action="tag_rule.run_done", resource_type="tag_rule", resource_id=rule.id,
            details={"version": run.rule_version, "reason": run.reason, "done": run.done, "tagged": run.tagged,
                     "untagged": run.untagged, "failed": run.failed})
        return 1
    outcome = evaluate_patients(session, engine, ids, active_rules(session, engine, tag=rule.tag), actor=actor)
    run.last_patient_id = ids[-1]
    run.done += len(ids)
    run.tagged += outcome.tagged
    run.untagged += outcome.untagged
    run.failed += outcome.failed
    run.updated_at = now
    return len(ids)


def drain_reevaluations(session: Session, engine: RuleEngine, *, limit: int = CHUNK,
                        actor: Actor = RULES_ACTOR) -> int:
    """Evaluate every rule on the patients marked for re-evaluation (the oldest marks first); return how many.

    The marks are claimed and their patients locked without waiting: a patient in the middle of a
    turn (whose lock is held) keeps their mark for the next tick, and no two workers evaluate one
    patient. A mark made again while the patient was evaluated stays (its time is newer).
    """
    marks = list(session.scalars(claim_rows(session, select(TagReevaluation).order_by(
        TagReevaluation.requested_at, TagReevaluation.id).limit(limit))))
    if not marks:
        return 0
    free = set(session.scalars(claim_rows(session, select(Patient.id).where(
        Patient.id.in_([mark.patient_id for mark in marks])).order_by(Patient.id))))
    taken = [mark for mark in marks if mark.patient_id in free]
    if not taken:
        return 0
    evaluate_patients(session, engine, [mark.patient_id for mark in taken], active_rules(session, engine),
                      actor=actor)
    for mark in taken:
        clear_tag_reevaluation(session, mark.patient_id, requested_before=mark.requested_at)
    return len(taken)


# -- evaluation ------------------------------------------------------------------------------------------
def _patients(session: Session, ids: Sequence[uuid.UUID]) -> list[Patient]:
    found = {patient.id: patient for patient in session.scalars(_living(select(Patient).where(Patient.id.in_(ids))))}
    return [found[patient_id] for patient_id in ids if patient_id in found]


def _decisions(engine: RuleEngine, rules: Sequence[ActiveRule], facts: Mapping[str, Any]
               ) -> dict[str, tuple[list[ActiveRule], bool]]:
    """Per tag: the rules that hold, and whether an enabled rule of it could not be evaluated."""
    decided: dict[str, tuple[list[ActiveRule], bool]] = {}
    for rule in rules:
        holding, unknown = decided.setdefault(rule.tag, ([], False))
        if not rule.enabled:
            continue
        verdict = engine.language.holds(rule.expression, facts)
        if verdict is None:
            decided[rule.tag] = (holding, True)
        elif verdict:
            holding.append(rule)
    return decided


def _latest_of(session: Session, names: frozenset[str], patient_ids: Sequence[uuid.UUID],
               ) -> dict[uuid.UUID, dict[str, Observation]] | None:
    """The newest observations of a chunk of patients, when the rules read any (None: they read none)."""
    return latest_values_of(session, patient_ids) if names & (INDICATOR_NAMES | {"latest"}) else None


def evaluate_patients(session: Session, engine: RuleEngine, patient_ids: Sequence[uuid.UUID],
                      rules: Sequence[ActiveRule], *, actor: Actor = RULES_ACTOR) -> Outcome:
    """Apply ``rules`` to each patient (see the module docstring); the caller holds the patients' locks."""
    outcome = Outcome()
    if not rules:
        outcome.evaluated = len(patient_ids)
        return outcome
    names = frozenset().union(*(rule.roots for rule in rules if rule.enabled))
    patients = _patients(session, patient_ids)
    ids = [patient.id for patient in patients]
    # What every patient of the chunk needs, read at once: the newest observations (when a rule reads
    # them), the tag rows, the tags plans enrol on and intervention programs start on. Nothing is queried
    # per patient for these, so the tags and audit entries the chunk adds go out in the unit of work's one flush.
    latest = _latest_of(session, names, ids)
    tag_rows = tag_rows_of_each(session, ids)
    enrolling = tags_that_enrol(session) | tags_that_start(session)
    for patient in patients:
        facts = gather(session, patient, names=names, catalogue=engine.catalogue, contact=engine.contact,
                       latest=None if latest is None else latest.get(patient.id, {}))
        rows = {row.tag: row for row in tag_rows.get(patient.id, []) if row.tag}
        for tag, (holding, unknown) in _decisions(engine, rules, facts).items():
            outcome.failed += int(unknown and not holding)
            _apply(session, patient, tag, rows.get(tag), holding, unknown, outcome, actor,
                   enrols=tag_key(tag) in enrolling)
        outcome.evaluated += 1
    return outcome


def _apply(session: Session, patient: Patient, tag: str, row: PatientTag | None, holding: list[ActiveRule],
           unknown: bool, outcome: Outcome, actor: Actor, *, enrols: bool) -> None:
    now = clock_of(session).now()
    if holding:
        if row is None:
            origin = holding[0].origin
            session.add(PatientTag(patient_id=patient.id, tag=tag, source=origin.source, added_at=now, pinned=False))
            log(session, actor=actor, action="tag.add", resource_type="patient", resource_id=patient.id,
                patient_id=patient.id, details={"source": "rule"})
            outcome.tagged += 1
            if enrols:
                tag_changed(session, patient, tag, added=True, actor=actor)  # the plans that enrol on the tag
                tag_set(session, patient, tag, actor=actor)  # the interventions that start on it
            return
        current = TagOrigin.parse(row.source)
        if current.kind == "rule" and current not in {rule.origin for rule in holding}:
            # Held now by another rule, or by a newer version of the one that set it.
            row.source = holding[0].origin.source
            log(session, actor=actor, action="tag.update", resource_type="patient", resource_id=patient.id,
                patient_id=patient.id, details={"source": "rule"})
        return
    if row is None or row.pinned or unknown or TagOrigin.parse(row.source).kind != "rule":
        return
    session.delete(row)
    log(session, actor=actor, action="tag.remove", resource_type="patient", resource_id=patient.id,
        patient_id=patient.id, details={"source": "rule"})
    outcome.untagged += 1
    if enrols:
        tag_changed(session, patient, tag, added=False, actor=actor)


# -- preview ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preview:
    """What a rule would do now: patients it would tag, untag, for whom it holds, and who could not be evaluated."""

    would_tag: int
    would_untag: int
    holding: int
    failed: int
    patients: int


def preview(session: Session, engine: RuleEngine, *, tag: str, expression: str, chunk: int = CHUNK) -> Preview:
    """Count what a rule setting ``tag`` by ``expression`` would do over every patient, writing nothing.

    As if it were the only rule of ``tag``: it would tag the patients it holds for who lack the tag,
    and untag those who have it from a rule (not pinned) it does not hold for. Test patients are
    left out, as out of every count of the clinic.

    :raises ValidationFailedError: naming ``tag`` or ``expression``.
    """
    tag_name = clean_tag(tag)
    roots = engine.roots(expression)
    rule = ActiveRule(uuid.UUID(int=0), "preview", tag_name, expression.strip(), 0, True, roots)
    having = set(patient_ids_with_tag(session, tag_name))
    would_tag = would_untag = holding = failed = patients = 0
    last: uuid.UUID | None = None
    while True:
        query = _living(select(Patient)).where(Patient.is_test.is_(False)).order_by(Patient.id).limit(chunk)
        if last is not None:
            query = query.where(Patient.id > last)
        batch = list(session.scalars(query))
        if not batch:
            break
        last = batch[-1].id
        latest = _latest_of(session, roots, [patient.id for patient in batch])
        for patient in batch:
            patients += 1
            facts = gather(session, patient, names=roots, catalogue=engine.catalogue, contact=engine.contact,
                           latest=None if latest is None else latest.get(patient.id, {}))
            verdict = engine.language.holds(rule.expression, facts)
            if verdict is None:
                failed += 1
            elif verdict:
                holding += 1
                would_tag += int(patient.id not in having)
            elif patient.id in having:
                would_untag += int(_rule_owned(session, patient.id, tag_name))
    return Preview(would_tag, would_untag, holding, failed, patients)


def _rule_owned(session: Session, patient_id: uuid.UUID, tag: str) -> bool:
    row = next((row for row in tag_rows_of(session, patient_id) if row.tag == tag), None)
    return row is not None and not row.pinned and TagOrigin.parse(row.source).kind == "rule"


def tag_counts(session: Session, tags: Iterable[str]) -> dict[str, int]:
    """Return how many patients (test patients left out) have each of ``tags``, in one query over the tags."""
    test_patients = set(session.scalars(select(Patient.id).where(Patient.is_test.is_(True))))
    return {tag: len(set(owners) - test_patients) for tag, owners in patient_ids_with_each(session, tags).items()}
