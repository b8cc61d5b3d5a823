"""The patients a staff member looks after: the list and a patient's page, within their care teams.

Administrators and the clinic lead see every patient; everyone else the patients of their care
teams and their own test patient (``care.care_teams``). A patient outside them is a 403 that names
the reason, and the refusal is audited; break-glass (a later issue) will be offered on that page
to the roles that hold it.
"""

from __future__ import annotations

import uuid

from flask import abort, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from admin.auth import actor_of, require, signed_in_user
from admin.web import blueprint
from care import directory
from care.care_teams import OutsideCareTeamError, scope_of
from care.errors import NotFoundError
from care.models import User
from security.roles import Permission
from web.context import audit_refusal, request_session

MAX_CARD = 64


@blueprint.get("/patients")
@require(Permission.PATIENT_READ)
def patients() -> ResponseReturnValue:
    """List the patients of the staff member's care teams, newest first; ``?card=`` finds one by card number."""
    user = signed_in_user()
    card = request.args.get("card", "").strip()[:MAX_CARD] or None
    try:
        page = max(1, int(request.args.get("page", "1")))
    except ValueError:
        page = 1
    listing = directory.list_patients(request_session(), scope=scope_of(user), actor=actor_of(user), card_no=card,
                                      page=page)
    return render_template("admin/patients.html", listing=listing, card=card or "")


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
    return render_template("admin/patient.html", page=page)


def outside_care_team(user: User, refusal: OutsideCareTeamError, *, resource_type: str,
                      resource_id: uuid.UUID) -> ResponseReturnValue:
    """Answer 403 for a patient outside the staff member's care teams, and audit the refusal."""
    audit_refusal(actor=actor_of(user), action="access.denied", resource_type=resource_type, resource_id=resource_id,
                  details={"reason": "care_team", "patient": str(refusal.patient_id),
                           "break_glass_possible": refusal.break_glass_possible})
    return render_template("admin/error.html", title=_("Not in your care teams"), message=_(
        "This patient is not in your care teams. Ask the clinic lead to add the patient to your team.")), 403
