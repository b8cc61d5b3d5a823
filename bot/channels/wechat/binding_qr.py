"""Binding QR codes: a parametrised QR code that, scanned, binds the scanner's openid to one patient once.

WeChat makes the code (``qrcode/create``, a ``QR_STR_SCENE`` carrying a one-time ``bind:<token>``
scene); it is kept on the patient's binding token. The worker's :class:`BindingQrJob` gives every
enrolled, unbound patient a live code and renews it before its 30 days run out; the webhook binds
on the ``subscribe``/``SCAN`` event that carries the scene.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session
from wechatpy.exceptions import WeChatClientException

from bot.channels.wechat.adapter import WeChatAdapter
from bot.channels.wechat.errors import WeChatApiError, errcode
from bot.identity import issue_binding_token, new_binding_scene
from bot.models import BindingToken
from care.models import ChannelConsent, Patient, PatientStatus
from security.fields import clock_of

logger = logging.getLogger("careloop.wechat")

QR_EXPIRE_SECONDS = 30 * 24 * 3600  # WeChat's temporary QR codes live at most 30 days
SHOW_QR_URL = "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket={ticket}"


@dataclass(frozen=True)
class BindingQr:
    ticket: str
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class IssuedQr:
    """A QR code WeChat made for a scene, not yet kept on a binding token."""

    scene: str
    ticket: str
    expire_seconds: int


def request_binding_qr(adapter: WeChatAdapter, scene: str | None = None) -> IssuedQr:
    """Ask WeChat for a parametrised QR code (30 days) carrying a fresh one-time ``bind:<token>`` scene.

    It touches no database transaction of the caller's (the access_token comes through the shared
    store's own short sessions), so call it with no transaction open: on SQLite an open write
    transaction would make the token store wait for it.

    Raises:
        WeChatApiError: WeChat would not make the code (or no token could be had).
    """
    scene = scene or new_binding_scene()
    body = {"expire_seconds": QR_EXPIRE_SECONDS, "action_name": "QR_STR_SCENE",
            "action_info": {"scene": {"scene_str": scene}}}
    try:
        result = adapter.api.call(lambda client: client.qrcode.create(body))
    except (WeChatClientException, requests.RequestException) as error:
        code = errcode(error) if isinstance(error, WeChatClientException) else None
        raise WeChatApiError(f"WeChat would not make the QR code ({type(error).__name__})", errcode=code) from error
    return IssuedQr(scene=scene, ticket=str(result["ticket"]),
                    expire_seconds=int(result.get("expire_seconds") or QR_EXPIRE_SECONDS))


def keep_binding_qr(session: Session, patient: Patient, issued: IssuedQr) -> BindingQr:
    """Keep a QR code WeChat made as the patient's binding token: scanning it binds the scanner to this
    patient once (subscribe, or SCAN for a follower). The caller commits."""
    _scene, row = issue_binding_token(session, patient, issued.scene)
    row.qr_ticket = issued.ticket
    row.expires_at = min(row.expires_at, row.created_at + timedelta(seconds=issued.expire_seconds))
    return BindingQr(ticket=issued.ticket, url=SHOW_QR_URL.format(ticket=quote(issued.ticket, safe="")),
                     expires_at=row.expires_at)


QR_RENEW_BEFORE = timedelta(days=3)


def patients_needing_binding_qr(session: Session, *, limit: int) -> list[uuid.UUID]:
    """Enrolled patients not bound on WeChat and not opted out of it, without a code that lives on
    for more than three days (made at enrolment, renewed before its 30 days run out)."""
    now = clock_of(session).now()
    live_code = (
        select(BindingToken.id)
        .where(BindingToken.patient_id == Patient.id, BindingToken.consumed_at.is_(None),
               BindingToken.expires_at > now + QR_RENEW_BEFORE, BindingToken.qr_ticket.column().is_not(None))
        .exists()
    )
    opted_out = (
        select(ChannelConsent.id)
        .where(ChannelConsent.patient_id == Patient.id, ChannelConsent.channel == "wechat",
               ChannelConsent.opted_out.is_(True))
        .exists()
    )
    query = (
        select(Patient.id)
        .where(Patient.status == PatientStatus.ACTIVE.value, Patient.wechat_openid.index_column().is_(None),
               ~live_code, ~opted_out)
        .order_by(Patient.created_at).limit(limit)
    )
    return list(session.scalars(query))


UnitOfWork = Callable[[], AbstractContextManager[Session]]


class BindingQrJob:
    """The worker's tick that gives every unbound patient a live binding QR code (self-committing).

    Three steps, none inside another: a read of who needs a code; WeChat's calls, with no
    transaction open (the access_token store opens its own short ones); one write of the codes
    made. A WeChat failure stops the batch (the next tick retries); a code made for a patient who
    was bound meanwhile is simply not kept.
    """

    def __init__(self, adapter: WeChatAdapter, unit_of_work: UnitOfWork, *, limit: int = 20) -> None:
        self.adapter = adapter
        self.unit_of_work = unit_of_work
        self.limit = limit

    def tick(self) -> int:
        """Make the codes that are due; return how many were kept."""
        with self.unit_of_work() as session:
            patient_ids = patients_needing_binding_qr(session, limit=self.limit)
        issued: list[tuple[uuid.UUID, IssuedQr]] = []
        for patient_id in patient_ids:
            try:
                issued.append((patient_id, request_binding_qr(self.adapter)))
            except WeChatApiError as error:
                logger.warning("binding QR for patient %s not made: %s", patient_id, error)
                break
        if not issued:
            return 0
        with self.unit_of_work() as session:
            still = set(patients_needing_binding_qr(session, limit=max(self.limit, len(issued))))
            kept = 0
            for patient_id, qr in issued:
                patient = session.get(Patient, patient_id)
                if patient is not None and patient_id in still:
                    keep_binding_qr(session, patient, qr)
                    kept += 1
        return kept

