"""The simulator: staff chat with any flow as a test patient, over the console channel.

The page posts each message as JSON to ``/admin/simulator/messages`` (CSRF token in the
``X-CSRFToken`` header); the bot handles it exactly as a message from a patient's phone, so what
staff see is what a patient would get. It speaks only as test patients (``care.test_patients``):
the staff member's own (made at their first message) unless the request names another test patient
they may see; a request naming a real patient is refused (403) and changes nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from admin.auth import actor_of, now, require, signed_in_user
from admin.i18n import current_language
from admin.web import blueprint
from bot.channels.console.inbound import simulate
from care.care_teams import OutsideCareTeamError
from care.errors import NotFoundError
from care.identifiers import IdentifierError, normalize_card_no
from care.test_patients import NotATestPatientError, find_own_test_patient
from security.roles import Permission
from web.context import audit_refusal, request_session, service

MAX_TEXT = 1000


@blueprint.get("/simulator")
@require(Permission.FLOWS_MANAGE)
def simulator() -> ResponseReturnValue:
    """Show the chat page, naming the staff member's test patient if they have one yet."""
    mine = find_own_test_patient(request_session(), signed_in_user())
    return render_template("admin/simulator.html", max_text=MAX_TEXT, own_card=mine.card_no if mine else "")


def _bad(reason: str) -> ResponseReturnValue:
    return jsonify(error="bad_request", reason=reason), 400


@blueprint.post("/simulator/messages")
@require(Permission.FLOWS_MANAGE)
def simulator_message() -> ResponseReturnValue:
    """Send one message as a test patient; answer ``{"replies": [...], "patient": {"card_no", "name"}}``.

    The body names the patient by ``card_no`` or ``patient_id``, or by neither (the staff member's own
    test patient).
    """
    user = signed_in_user()
    data: Any = request.get_json(silent=True)
    if not isinstance(data, dict):
        return _bad(_("Send a JSON object with the message text (and a test patient's card number if you like)."))
    card_no, patient_ref, text = data.get("card_no"), data.get("patient_id"), data.get("text")
    if card_no is not None and not isinstance(card_no, str):
        return _bad(_("A card number is text."))
    if not isinstance(text, str) or not text.strip():
        return _bad(_("Enter a message."))
    if len(text) > MAX_TEXT:
        return _bad(_("The message is too long (at most %(count)d characters).", count=MAX_TEXT))
    card: str | None = None
    if card_no is not None and card_no.strip():
        try:
            card = normalize_card_no(card_no)
        except IdentifierError:
            return _bad(_("A card number has only letters, digits, '-' and '_'."))
    patient_id: uuid.UUID | None = None
    if patient_ref is not None:
        try:
            patient_id = uuid.UUID(str(patient_ref))
        except ValueError:
            return _bad(_("A patient id is a UUID."))
    try:
        done = simulate(request_session(), service("bot"), staff=user, text=text.strip(), speaker=actor_of(user),
                        at=now(), card_no=card, patient_id=patient_id, language=current_language())
    except NotFoundError:
        return jsonify(error="not_found", reason=_("No active patient has this card number.")), 404
    except NotATestPatientError as refusal:
        return _refused(refusal.patient_id, error="not_a_test_patient", reason=_(
            "The simulator speaks only as test patients, never as a real patient. "
            "Leave the card number empty to use your own test patient."))
    except OutsideCareTeamError as refusal:
        return _refused(refusal.patient_id, error="outside_care_team", reason=_(
            "This test patient is neither yours nor in your care teams. "
            "Leave the card number empty to use your own test patient."))
    return jsonify(replies=done.reply.texts, patient={"card_no": done.patient.card_no, "name": done.patient.name})


def _refused(patient_id: uuid.UUID, *, error: str, reason: str) -> ResponseReturnValue:
    """Answer 403 and audit the refusal (the request's own transaction, and anything it began, rolls back)."""
    audit_refusal(actor=actor_of(signed_in_user()), action="simulator.refused", resource_type="patient",
                  resource_id=patient_id, details={"reason": error})
    return jsonify(error=error, reason=reason), 403
