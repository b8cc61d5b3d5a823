"""The patients a staff member looks after: the list and a patient's page, within their care teams.

Administrators and the clinic lead see every patient; everyone else the patients of their care
teams and their own test patient (``care.care_teams``). A patient outside them is a 403 that names
the reason, and the refusal is audited; a role holding break-glass (doctors, the clinic lead) is
offered there to open the page with a written reason, for two hours, audited and kept for review.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import format_datetime
from flask_babel import gettext as _

from admin.auth import actor_of, require, signed_in_user
from admin.forms import BreakGlassForm, PatientSearchForm
from admin.i18n import current_language
from admin.web import blueprint
from care import directory
from care.care_teams import OutsideCareTeamError, scope_of
from care.errors import ConflictError, NotFoundError, ValidationFailedError
from care.followups import FOLLOWUP_OUTCOMES
from care.models import User
from care.tasks import TASK_OUTCOMES
from security.roles import Permission
from web.context import audit_refusal, request_session

#: An indicator's code as the chart's URL names it: a short code (``sbp``) or a LOINC code (``8480-6``).
INDICATOR_CODE = re.compile(r"[A-Za-z0-9_.-]{1,32}")


@blueprint.route("/patients", methods=["GET", "POST"])
@require(Permission.PATIENT_READ)
def patients() -> ResponseReturnValue:
    """List the patients of the staff member's care teams, newest first, narrowed by a search and filters.

    GET takes the tag, plan and page from the query string; a search by name, card number or phone
    is POSTed (with the filters and page), so no search text ever appears in a URL or an access log.
    """
    user = signed_in_user()
    db = request_session()
    if request.method == "POST":
        form = PatientSearchForm()
        valid = form.validate()
    else:
        form = PatientSearchForm(formdata=request.args, meta={"csrf": False})
        form.q.data = ""  # a search text in a URL is ignored, never run
        valid = form.validate()
    if not valid and set(form.errors) <= {"page"}:
        valid, form.page.data = True, 1  # a page number out of range shows the first page
    choices = directory.filter_choices(db)
    form.plan.choices = [("", _("Any plan"))] + [
        (key, title_en if current_language() == "en" else title_zh) for key, title_zh, title_en in choices.plans]
    # A tag or a plan says something of the patients' health: the front desk (no record.read) filters by neither.
    clinical = user.can(Permission.RECORD_READ)
    filters = directory.PatientFilter(text=form.q.data or None, tag=(form.tag.data or None) if clinical else None,
                                      plan=(form.plan.data or None) if clinical else None)
    listing = directory.PatientList([], 0, 1, 1)
    if valid:
        try:
            listing = directory.list_patients(db, scope=scope_of(user), actor=actor_of(user), filters=filters,
                                              page=form.page.data or 1)
        except ValidationFailedError:
            form.tag.errors = [*form.tag.errors, _("A tag is one line of at most 64 characters.")]
    return render_template("admin/patients.html", form=form, listing=listing, tags=choices.tags if clinical else [],
                           searched=bool(filters.text), clinical=clinical)


@blueprint.get("/patients/<uuid:patient_id>")
@require(Permission.PATIENT_READ)
def patient(patient_id: uuid.UUID) -> ResponseReturnValue:
    """Show one patient of the staff member's care teams."""
    user = signed_in_user()
    try:
        page = directory.patient_page(request_session(), patient_id, user=user, actor=actor_of(user))
    except NotFoundError:
        abort(404)
    except OutsideCareTeamError as refusal:
        return outside_care_team(user, refusal, resource_type="patient", resource_id=patient_id)
    return render_template("admin/patient.html", page=page, task_outcomes=outcome_labels(TASK_OUTCOMES),
                           followup_outcomes=outcome_labels(FOLLOWUP_OUTCOMES))


def outcome_labels(outcomes: Mapping[str, tuple[str, str]]) -> dict[str, str]:
    """Return each outcome code's label in the panel's language (the services keep them as ``(zh, en)``)."""
    english = current_language() == "en"
    return {code: labels[1] if english else labels[0] for code, labels in outcomes.items()}


@blueprint.get("/patients/<uuid:patient_id>/trends/<code>.svg")
@require(Permission.RECORD_READ)
def trend_chart(patient_id: uuid.UUID, code: str) -> ResponseReturnValue:
    """Draw one indicator's trend of a patient as an SVG image (an ``<img>`` of the page: no script, CSP-safe)."""
    user = signed_in_user()
    if not INDICATOR_CODE.fullmatch(code):
        abort(404)
    try:
        svg = directory.trend_chart(request_session(), patient_id, code, user=user, actor=actor_of(user),
                                    lang="en" if current_language() == "en" else "zh")
    except NotFoundError:
        abort(404)
    except OutsideCareTeamError as refusal:
        return outside_care_team(user, refusal, resource_type="patient", resource_id=patient_id)
    return Response(svg, mimetype="image/svg+xml")


@blueprint.post("/patients/<uuid:patient_id>/break-glass")
@require(Permission.BREAK_GLASS)
def break_glass(patient_id: uuid.UUID) -> ResponseReturnValue:
    """Open a patient outside the doctor's care teams, with a written reason (audited, kept for review)."""
    user = signed_in_user()
    form = BreakGlassForm()
    if not form.validate():
        return render_template("admin/break_glass.html", form=form, patient_id=patient_id), 400
    try:
        grant = directory.open_by_break_glass(request_session(), patient_id, user=user, reason=form.reason.data,
                                              actor=actor_of(user))
    except NotFoundError:
        abort(404)
    except ValidationFailedError:
        form.reason.errors = [*form.reason.errors, _("Write the reason in 10 to 1000 characters.")]
        return render_template("admin/break_glass.html", form=form, patient_id=patient_id), 400
    except ConflictError:
        pass  # already theirs to open: nothing to break
    else:
        flash(_("You opened this record by break-glass until %(when)s. The opening is audited and will be reviewed.",
                when=format_datetime(grant.expires_at, "short")), "info")
    return redirect(url_for("admin.patient", patient_id=patient_id))


def outside_care_team(user: User, refusal: OutsideCareTeamError, *, resource_type: str,
                      resource_id: uuid.UUID) -> ResponseReturnValue:
    """Answer 403 for a patient outside the staff member's care teams, and audit the refusal.

    A role holding break-glass is offered the form to open the patient's page with a written reason.
    """
    audit_refusal(actor=actor_of(user), action="access.denied", resource_type=resource_type, resource_id=resource_id,
                  details={"reason": "care_team", "patient": str(refusal.patient_id),
                           "break_glass_possible": refusal.break_glass_possible})
    if refusal.break_glass_possible and resource_type == "patient" and request.method == "GET":
        return render_template("admin/break_glass.html", form=BreakGlassForm(), patient_id=refusal.patient_id), 403
    return render_template("admin/error.html", title=_("Not in your care teams"), message=_(
        "This patient is not in your care teams. Ask the clinic lead to add the patient to your team.")), 403
