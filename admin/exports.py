"""The exports page: patients, follow-up records, questionnaire results and observations as .xlsx.

Staff choose a kind and filters; the export is queued (``care.exports``) and written by a thread of
this process after the request has committed, one chunk of patients per commit, so a large one never
holds up a request and its progress shows from any web process. The progress page refreshes itself
(a meta refresh: no script) until the file is ready; the file is downloaded once (then removed), or
removed an hour after it was made.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from flask import Flask, abort, current_app, flash, g, redirect, render_template, send_file, url_for
from flask.typing import ResponseReturnValue
from flask_babel import format_datetime
from flask_babel import gettext as _
from sqlalchemy.orm import Session

from admin.auth import actor_of, require, signed_in_user
from admin.forms import ExportForm
from admin.i18n import current_language
from admin.web import blueprint
from care import directory, exports
from care.errors import NotFoundError, ValidationFailedError
from care.exports import KINDS, ExportFilter
from care.models import ExportJob, ExportStatus
from security.audit import Actor
from security.roles import Permission
from web.context import SERVICES_KEY, SESSION_FACTORY_KEY, request_session

log = logging.getLogger(__name__)
RUNNER_KEY = "careloop.exports"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: Seconds between refreshes of the progress page.
REFRESH_SECONDS = 2


class ExportRunner:
    """Write queued exports in background threads, each in units of work of its own."""

    def __init__(self, open_session: Callable[[], Session], folder: Path) -> None:
        self.open_session = open_session
        self.folder = folder
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self, job_id: uuid.UUID, actor: Actor) -> None:
        """Write the export ``job_id`` in a new thread (its row must be committed already)."""
        thread = threading.Thread(target=self.run, args=(job_id, actor), name=f"export-{job_id}", daemon=True)
        with self._lock:
            self._threads = [alive for alive in self._threads if alive.is_alive()]
            self._threads.append(thread)
        thread.start()

    def run(self, job_id: uuid.UUID, actor: Actor) -> None:
        """Write the export, committing after each chunk; a failure marks it failed (logged by id only)."""
        session = self.open_session()
        try:
            run = exports.open_run(session, job_id, folder=self.folder, actor=actor)
            session.commit()
            while run.step(session):
                session.commit()
            session.commit()
        except Exception:  # a failed export must say so on its page, whatever went wrong
            log.exception("export %s failed", job_id)
            session.rollback()
            exports.fail(session, job_id, "the export could not be written")
            session.commit()
        finally:
            session.close()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the exports started so far to end (tests, and a clean shutdown)."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)


def init_app(app: Flask) -> None:
    """Give the app its export runner; exports live beside the blobs (``instance/exports`` by default)."""
    settings = app.extensions[SERVICES_KEY]["settings"]
    app.extensions[RUNNER_KEY] = ExportRunner(app.extensions[SESSION_FACTORY_KEY],
                                              exports.exports_folder(settings.blob_dir))


def _runner() -> ExportRunner:
    runner: ExportRunner = current_app.extensions[RUNNER_KEY]
    return runner


@blueprint.teardown_request
def start_queued_exports(error: BaseException | None) -> None:
    """Start the exports this request queued, now that its unit of work has committed them."""
    queued: list[tuple[uuid.UUID, Actor]] = g.pop("queued_exports", [])
    if error is None:
        for job_id, actor in queued:
            _runner().start(job_id, actor)


def _form() -> ExportForm:
    form = ExportForm()
    english = current_language() == "en"
    form.kind.choices = [(kind.name, kind.title("en" if english else "zh")) for kind in KINDS.values()]
    form.plan.choices = [("", _("Any plan"))] + [
        (key, title_en if english else title_zh)
        for key, title_zh, title_en in directory.filter_choices(request_session()).plans]
    return form


def _page(form: ExportForm) -> str:
    db = request_session()
    exports.purge_files(db, _runner().folder)
    return render_template("admin/exports.html", form=form, jobs=exports.recent_jobs(db, signed_in_user()),
                           kinds=KINDS, language_code=current_language())


@blueprint.get("/exports")
@require(Permission.EXPORT_RUN)
def exports_page() -> ResponseReturnValue:
    """Show the export form and the staff member's recent exports."""
    return _page(_form())


@blueprint.post("/exports")
@require(Permission.EXPORT_RUN)
def export_request() -> ResponseReturnValue:
    """Queue an export; it starts once this request has committed, and its progress page opens."""
    form = _form()
    if not form.validate():
        for field in (form.date_from, form.date_to):
            if field.errors:  # the form's own message is WTForms'
                field.errors = [_("Enter a day as YYYY-MM-DD.")]
        if form.kind.errors:
            form.kind.errors = [_("Choose what to export.")]
        return _page(form), 400
    user = signed_in_user()
    filters = ExportFilter(tag=(form.tag.data or "").strip().lower() or None, plan=form.plan.data or None,
                           date_from=form.date_from.data, date_to=form.date_to.data)
    try:
        job = exports.request_export(request_session(), kind=form.kind.data, filters=filters,
                                     lang=current_language(), user=user, actor=actor_of(user))
    except ValidationFailedError as refused:
        for problem in refused.problems:
            field = form.date_to if problem.field == "date_to" else form.tag if problem.field == "tag" else form.kind
            field.errors = [*field.errors, _("Not accepted: %(reason)s", reason=problem.reason)]
        return _page(form), 400
    g.setdefault("queued_exports", []).append((job.id, actor_of(user)))
    return redirect(url_for("admin.export_progress", job_id=job.id))


@blueprint.get("/exports/<uuid:job_id>")
@require(Permission.EXPORT_RUN)
def export_progress(job_id: uuid.UUID) -> ResponseReturnValue:
    """Show how far the export is; the page refreshes itself until the file is ready."""
    db = request_session()
    exports.purge_files(db, _runner().folder)
    try:
        job = exports.job_of(db, job_id, signed_in_user())
    except NotFoundError:
        abort(404)
    working = job.status in (ExportStatus.QUEUED.value, ExportStatus.RUNNING.value)
    return render_template("admin/export.html", job=job, kind=KINDS[job.kind], working=working,
                           refresh=REFRESH_SECONDS, percent=_percent(job),
                           expires=format_datetime(job.expires_at, "short") if job.expires_at else "")


def _percent(job: ExportJob) -> int:
    if job.status == ExportStatus.DONE.value:
        return 100
    return int(100 * job.done / job.total) if job.total else 0


@blueprint.get("/exports/<uuid:job_id>/file")
@require(Permission.EXPORT_RUN)
def export_download(job_id: uuid.UUID) -> ResponseReturnValue:
    """Send the export's file to the staff member who made it, once; it is removed from the server."""
    user = signed_in_user()
    db = request_session()
    try:
        job = exports.job_of(db, job_id, user)
        handle = exports.take_download(db, job_id, user=user, folder=_runner().folder, actor=actor_of(user))
    except NotFoundError:
        flash(_("This export's file is not kept any more. Make the export again."), "error")
        return redirect(url_for("admin.exports_page"))
    name = f"careloop-{job.kind}-{job.created_at:%Y%m%d-%H%M}.xlsx"
    return send_file(handle, mimetype=XLSX, as_attachment=True, download_name=name, max_age=0)
