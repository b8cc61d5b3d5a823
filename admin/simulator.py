"""The simulator: staff chat with any flow as a patient, over the console channel.

The page posts each message as JSON to ``/admin/simulator/messages`` (CSRF token in the
``X-CSRFToken`` header); the bot handles it exactly as a message from the patient's phone, so what
staff see is what the patient would get, and the answers land in the record.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from admin.auth import actor_of, now, require, signed_in_user
from admin.web import blueprint
from bot.channels.console.inbound import send_as_patient
from care.errors import NotFoundError
from care.identifiers import IdentifierError, normalize_card_no
from security.roles import Permission
from web.context import request_session, service

MAX_TEXT = 1000


@blueprint.get("/simulator")
@require(Permission.FLOWS_MANAGE)
def simulator() -> ResponseReturnValue:
    """Show the chat page."""
    return render_template("admin/simulator.html", max_text=MAX_TEXT)


def _bad(reason: str) -> ResponseReturnValue:
    return jsonify(error="bad_request", reason=reason), 400


@blueprint.post("/simulator/messages")
@require(Permission.FLOWS_MANAGE)
def simulator_message() -> ResponseReturnValue:
    """Send one message as the patient; answer ``{"replies": [...]}``."""
    user = signed_in_user()
    data: Any = request.get_json(silent=True)
    if not isinstance(data, dict):
        return _bad(_("Send a JSON object with card_no and text."))
    card_no, text = data.get("card_no"), data.get("text")
    if not isinstance(card_no, str) or not card_no.strip():
        return _bad(_("Enter the patient's card number."))
    if not isinstance(text, str) or not text.strip():
        return _bad(_("Enter a message."))
    if len(text) > MAX_TEXT:
        return _bad(_("The message is too long (at most %(count)d characters).", count=MAX_TEXT))
    try:
        card = normalize_card_no(card_no)
    except IdentifierError:
        return _bad(_("A card number has only letters, digits, '-' and '_'."))
    try:
        reply = send_as_patient(request_session(), service("bot"), card_no=card, text=text.strip(),
                                speaker=actor_of(user), at=now())
    except NotFoundError:
        return jsonify(error="not_found", reason=_("No active patient has this card number.")), 404
    return jsonify(replies=reply.texts)
