"""``hub serve-web``: the read-only pages for the steering groups (aiohttp + Jinja2, no JS build).

Routes (permalinks; Dutch paths for Dutch users): ``/`` overview, ``/stuurgroep/{group}`` a
group's findings, ``/adres/{key}`` an address with its timeline, ``/gebied/{pc4}`` an area,
``/login?token=...`` (sets the session cookie), ``/healthz``, ``/readyz``.

Access: every page needs a recognised account (:mod:`hub.web.access`), else 401 with a login form;
a group, address or area outside the account's groups is 403. Each address page request writes one
audit line (logger ``hub.web.audit``): account, outcome and a hash of the address key, never the
address. aiohttp's own access log is off: it would log query strings (the login token) and paths
(address keys).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from hub.address.municipalities import Municipalities
from hub.web import views
from hub.web.access import AccessPolicy, Account
from hub.web.state import ViewState

audit = logging.getLogger("hub.web.audit")
COOKIE = "hub_token"
TEMPLATES = Path(__file__).parent / "templates"

STATE: web.AppKey[ViewState] = web.AppKey("state", ViewState)
POLICY: web.AppKey[AccessPolicy] = web.AppKey("policy", AccessPolicy)
MUNICIPALITIES: web.AppKey[Municipalities] = web.AppKey("municipalities", Municipalities)
ENV: web.AppKey[jinja2.Environment] = web.AppKey("env", jinja2.Environment)
TODAY: web.AppKey[Callable[[], date | None]] = web.AppKey("today")

ACCOUNT: web.RequestKey[Account] = web.RequestKey("account", Account)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def dossier_hash(key: str) -> str:
    """What the audit log names instead of the address: a short SHA-256 of the address key."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _render(request: web.Request, template: str, status: int = 200, **ctx: Any) -> web.Response:
    env = request.app[ENV]
    html = env.get_template(template).render(
        account=request.get(ACCOUNT), ready=request.app[STATE].caught_up, **ctx
    )
    return web.Response(
        text=html,
        status=status,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
    )


def _account(request: web.Request) -> Account:
    return request[ACCOUNT]


@web.middleware
async def identify(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Recognise the account (or answer 401) before any page handler runs."""
    if request.path in ("/healthz", "/readyz", "/login"):
        return await handler(request)
    account = request.app[POLICY].identify(request.headers, request.cookies.get(COOKIE))
    if account is None:
        return _render(request, "login.html", status=401, next=request.path_qs)
    request[ACCOUNT] = account
    return await handler(request)


def _forbidden(request: web.Request, what: str) -> web.Response:
    return _render(request, "error.html", status=403, title="Geen toegang", message=what)


def _not_found(request: web.Request, what: str) -> web.Response:
    return _render(request, "error.html", status=404, title="Niet gevonden", message=what)


async def login(request: web.Request) -> web.StreamResponse:
    token = request.query.get("token", "")
    account = request.app[POLICY].by_token(token)
    if account is None:
        return _render(request, "login.html", status=401, next="/", failed=bool(token))
    target = request.query.get("next", "/")
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    response = web.HTTPSeeOther(target)
    response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther("/")
    response.del_cookie(COOKIE, path="/")
    raise response


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if state.caught_up:
        return web.Response(text="ready\n")
    return web.Response(text="catching up with the output topics\n", status=503)


def _group_names(request: web.Request) -> dict[str, str]:
    return dict(request.app[MUNICIPALITIES].config.steering_groups)


async def overview(request: web.Request) -> web.StreamResponse:
    account = _account(request)
    with request.app[STATE].reading() as state:
        model = views.overview(
            list(state.alerts.values()), account, _group_names(request), request.app[TODAY]()
        )
    return _render(request, "overview.html", model=model)


async def group_page(request: web.Request) -> web.StreamResponse:
    account = _account(request)
    group = request.match_info["group"]
    names = _group_names(request)
    if group not in names:
        return _not_found(request, f"Onbekende stuurgroep {group}.")
    if not account.sees(group):
        return _forbidden(request, "Deze stuurgroep is niet zichtbaar voor uw account.")
    q = request.query
    with request.app[STATE].reading() as state:
        model = views.group_list(
            state.firing(),
            group,
            request.app[MUNICIPALITIES].name,
            kind=q.get("soort") or None,
            municipality=q.get("gemeente") or None,
            area=q.get("gebied") or None,
            sort=q.get("sorteer") or "oudste",
            today=request.app[TODAY](),
        )
    return _render(request, "group.html", model=model, group_name=names[group])


async def address(request: web.Request) -> web.StreamResponse:
    account = _account(request)
    key = request.match_info["key"]
    with request.app[STATE].reading() as state:
        dossier = state.dossiers.get(key)
        alerts = state.address_alerts(key)
    outcome = 200 if dossier is not None and account.sees(dossier["steering_group"]) else 0
    if dossier is None:
        outcome = 404
    elif not account.sees(dossier["steering_group"]):
        outcome = 403
    audit.info(
        "address page view",
        extra={"account": account.name, "dossier_hash": dossier_hash(key), "outcome": outcome},
    )
    if dossier is None:
        return _not_found(request, "Geen dossier voor dit adres.")
    if outcome == 403:
        return _forbidden(request, "Dit adres valt onder een stuurgroep die u niet mag zien.")
    model = views.address_page(
        key, dossier, alerts, account, request.app[MUNICIPALITIES].name, request.app[TODAY]()
    )
    group_name = _group_names(request).get(model["steering_group"], model["steering_group"])
    return _render(request, "address.html", model=model, group_name=group_name)


async def area(request: web.Request) -> web.StreamResponse:
    account = _account(request)
    pc4 = request.match_info["area"]
    with request.app[STATE].reading() as state:
        in_area = [
            a
            for a in state.alerts.values()
            if a.get("area") == pc4 or (a.get("address_key") or "").startswith(pc4)
        ]
    if in_area and not any(account.sees(a["steering_group"]) for a in in_area):
        return _forbidden(request, "Dit gebied valt onder een stuurgroep die u niet mag zien.")
    return _render(request, "area.html", model=views.area_page(pc4, in_area, account))


def build_app(
    state: ViewState,
    policy: AccessPolicy,
    municipalities: Municipalities,
    today: Callable[[], date | None] = lambda: None,
) -> web.Application:
    """The aiohttp application over a view ``state`` (filled by a follower or by a test)."""
    app = web.Application(middlewares=[identify])
    app[STATE] = state
    app[POLICY] = policy
    app[MUNICIPALITIES] = municipalities
    app[TODAY] = today
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    env.globals["kind_label"] = views.kind_label
    app[ENV] = env
    app.add_routes(
        [
            web.get("/", overview),
            web.get("/stuurgroep/{group}", group_page),
            web.get("/adres/{key}", address),
            web.get("/gebied/{area}", area),
            web.get("/login", login),
            web.get("/logout", logout),
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
        ]
    )
    return app
