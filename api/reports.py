"""``/api/v1``: the HTTP API for other systems.

``POST /api/v1/reports``: a checkup centre's system pushes one document of results. The body is
the file's bytes; ``Content-Type`` names its format (``text/csv``, the .xlsx type,
``application/hl7-v2`` or ``x-application/hl7-v2+er7``, ``application/fhir+json``); the source
authenticates with its API key (``Authorization: Bearer clk_...``, made by ``careloop api-keys
create``). Answers, always JSON:

- 200 ``{"status": "imported", "reports": {...}, "rows": {...}, "kept": {...}, "summary": "...",
  "problems": []}``: the counts ``careloop import reports`` prints, with the rows kept as they came
  (codes outside the indicator table); the source's stored local codes are applied;
- 401 no or unknown key; 403 a revoked key; 413 a body over :data:`REPORT_MAX_BYTES`;
  415 an unsupported type; 422 ``{"status": "rejected", "imported": false, "reports": {"imported": 0,
  ..., "rejected": n}, "withheld": {"reports", "rows"}, "problems": [{"where", "column", "reason"}]}``
  when any report of the document is refused: then nothing of the document is imported, and the
  body says so (the good reports are counted as withheld, not as imported).

Every answer is audited; a refusal is audited in its own unit of work, after the request's own
transaction was rolled back, so that the refusal is on record while the record is unchanged.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import RequestEntityTooLarge, TooManyRequests

from care.api_keys import KeyCheck, authenticate
from care.imports.report_formats import UnknownFormatError, format_for_media_type, media_types
from care.imports.reports import receive_pushed_reports
from security.audit import Actor
from web.context import audit_refusal, request_session
from web.rate_limits import blueprint_limiter

REPORT_MAX_BYTES = 20 * 1024 * 1024

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")

MESSAGES: dict[str, dict[str, str]] = {
    "unauthorized": {"zh": "缺少或无法识别的API密钥。", "en": "The API key is missing or not recognised."},
    "revoked": {"zh": "该API密钥已被停用。", "en": "This API key has been revoked."},
    "unsupported_media_type": {"zh": "不支持的内容类型。", "en": "This Content-Type is not supported."},
    "too_large": {"zh": "内容过大。", "en": "The body is too large."},
    "rejected": {"zh": "部分报告有问题，本次未导入任何内容。",
                 "en": "Some reports have problems; nothing of this document was imported."},
    "rate_limited": {"zh": "此地址被拒绝的请求过多，请稍后再试。",
                     "en": "Too many refused requests from this address; please try again later."},
    "conflict": {"zh": "同一报告正在被另一请求导入，请稍后重试。",
                 "en": "The same report is being imported by another request; please retry."},
}


def init_app(app: Flask) -> None:
    """Register the API blueprint, with a limit on refused requests per client address.

    Only refusals (401, 403) count, and once the address has used up ``CARELOOP_SIGN_IN_RATE_LIMIT``
    its requests are answered 429 before anything runs: no unbounded refusals in the audit trail,
    while a source with a valid key pushes as often as it needs.
    """
    app.register_blueprint(blueprint)
    # The webhooks and the rest of the app never enter the limiter: its hooks run for the API only.
    limiter = blueprint_limiter(app, blueprint)
    rate = str(app.config.get("CARELOOP_SIGN_IN_RATE_LIMIT") or "20 per minute")
    limiter.shared_limit(rate, scope="api-refused", methods=["POST"], deduct_when=_refused)(blueprint)


def _refused(response: Response) -> bool:
    return response.status_code in (401, 403)


@blueprint.errorhandler(TooManyRequests)
def _too_many(_refusal: TooManyRequests) -> tuple[Response, int]:
    return _error(429, "rate_limited")


def _error(status: int, code: str, **extra: Any) -> tuple[Response, int]:
    return jsonify({"error": code, "message": MESSAGES[code], **extra}), status


def _audit_refusal(status: int, key_id: str | None, source: str | None) -> None:
    """Record a refused push in its own unit of work (the request's transaction is rolled back)."""
    audit_refusal(actor=Actor("api", key_id or "unknown", request.remote_addr or "api"),
                  action="report.push_refused", resource_type="api_key", resource_id=key_id,
                  details={"status": status, "source": source})


def _bearer() -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


@blueprint.post("/reports")
def push_reports() -> Any:
    """Import a pushed document of results (see the module docstring)."""
    session = request_session()
    auth = authenticate(session, _bearer())
    if auth.record is None or auth.check is KeyCheck.UNKNOWN:
        _audit_refusal(401, None, None)
        response, status = _error(401, "unauthorized")
        response.headers["WWW-Authenticate"] = 'Bearer realm="careloop"'
        return response, status
    key_id, source = auth.record.key_id, auth.record.source_name
    if auth.check is KeyCheck.REVOKED:
        _audit_refusal(403, key_id, source)
        return _error(403, "revoked")
    try:
        fmt = format_for_media_type(request.mimetype or "")
    except UnknownFormatError:
        _audit_refusal(415, key_id, source)
        return _error(415, "unsupported_media_type", supported=media_types())
    request.max_content_length = REPORT_MAX_BYTES
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        _audit_refusal(413, key_id, source)
        return _error(413, "too_large", limit_bytes=REPORT_MAX_BYTES)
    actor = Actor("api", key_id, source)
    try:
        result = receive_pushed_reports(session, body, fmt, source_name=source, key_id=key_id, actor=actor)
        session.flush()
    except IntegrityError:
        _audit_refusal(409, key_id, source)
        return _error(409, "conflict")
    if not result.accepted:
        _audit_refusal(422, key_id, source)
        return jsonify({"message": MESSAGES["rejected"], **result.to_dict()}), 422
    return jsonify(result.to_dict())
