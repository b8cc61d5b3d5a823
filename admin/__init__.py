"""The staff panel, under ``/admin``: sign-in with password and TOTP, the work queue, patients, the simulator.

Every view is guarded by :func:`admin.auth.require` (signed in, holding a permission); every
state-changing request carries a CSRF token; every response carries strict security headers.
"""

from __future__ import annotations

from flask import Flask

from admin import account, audit, exports, flows, i18n, patients, queue, simulator, tag_rules, web

# The view modules register their routes on the blueprint when imported.
VIEW_MODULES = (account, audit, exports, flows, patients, queue, simulator, tag_rules)


def init_app(app: Flask) -> None:
    """Register the panel on ``app``: its blueprint, CSRF, languages and security headers."""
    i18n.init_app(app)
    app.register_blueprint(web.blueprint)
    web.init_app(app)
    exports.init_app(app)
