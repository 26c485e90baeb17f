"""The aiohttp app over a filled view: pages, 401/403, hidden contacts, audit lines."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from hub.address.municipalities import default_municipalities
from hub.logs import extra_fields
from hub.web.access import AccessPolicy, token_hash
from hub.web.app import build_app
from tests.unit.test_web_fixtures import HH_KEY, LEAD_NAME, LEAD_PHONE, MG_KEY, oracle_state

POLICY = AccessPolicy.from_mapping(
    {
        "accounts": [
            {"name": "mg", "groups": ["MIDDEN_GRONINGEN"], "contacts": True,
             "token_sha256": token_hash("mg-token")},
            {"name": "mg-lezer", "groups": ["MIDDEN_GRONINGEN"],
             "token_sha256": token_hash("mg-read")},
            {"name": "hh", "groups": ["HET_HOGELAND"], "token_sha256": token_hash("hh-token")},
        ]
    }
)  # fmt: skip


def _run(check: Callable[[TestClient[Any, Any]], Awaitable[None]]) -> None:
    async def main() -> None:
        app = build_app(oracle_state(), POLICY, default_municipalities())
        async with TestClient(TestServer(app)) as client:
            await check(client)

    asyncio.run(main())


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_pages_need_an_account_and_login_sets_a_cookie() -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        anonymous = await client.get("/")
        assert anonymous.status == 401 and "Toegangscode" in await anonymous.text()
        bad = await client.get("/login", params={"token": "wrong"}, allow_redirects=False)
        assert bad.status == 401
        good = await client.get(
            "/login", params={"token": "mg-token", "next": "/stuurgroep/MIDDEN_GRONINGEN"},
            allow_redirects=False,
        )  # fmt: skip
        assert good.status == 303 and good.headers["Location"] == "/stuurgroep/MIDDEN_GRONINGEN"
        page = await client.get("/")  # the cookie jar now carries the session
        assert page.status == 200 and "Overzicht per stuurgroep" in await page.text()
        off_site = await client.get(
            "/login", params={"token": "mg-token", "next": "//evil.example"}, allow_redirects=False
        )
        assert off_site.headers["Location"] == "/"

    _run(check)


def test_overview_group_and_address_pages_link_through() -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        overview = await (await client.get("/", headers=_auth("mg-token"))).text()
        assert 'href="/stuurgroep/MIDDEN_GRONINGEN"' in overview
        assert "HET_HOGELAND" not in overview and "Samenloop" in overview
        group = await (
            await client.get("/stuurgroep/MIDDEN_GRONINGEN", headers=_auth("mg-token"))
        ).text()
        assert f'href="/adres/{MG_KEY}"' in group
        address = await client.get(f"/adres/{MG_KEY}", headers=_auth("mg-token"))
        body = await address.text()
        assert address.status == 200
        assert '<h2 id="h-lead">Aanspreekpunt</h2>' in body and LEAD_NAME in body
        assert LEAD_PHONE in body and 'class="case lead"' in body and "Samenloop" in body
        area = await (await client.get("/gebied/9601", headers=_auth("mg-token"))).text()
        assert f'href="/adres/{MG_KEY}"' in area

    _run(check)


def test_other_steering_group_gets_403_everywhere() -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        h = _auth("hh-token")
        assert (await client.get(f"/adres/{MG_KEY}", headers=h)).status == 403
        assert (await client.get("/stuurgroep/MIDDEN_GRONINGEN", headers=h)).status == 403
        assert (await client.get("/gebied/9601", headers=h)).status == 403
        assert (await client.get(f"/adres/{HH_KEY}", headers=h)).status == 200
        assert (await client.get("/adres/1234AB-1", headers=h)).status == 404
        assert (await client.get("/stuurgroep/NOPE", headers=h)).status == 404

    _run(check)


def test_contacts_hidden_for_a_reader_role() -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        body = await (await client.get(f"/adres/{MG_KEY}", headers=_auth("mg-read"))).text()
        assert LEAD_NAME not in body and LEAD_PHONE not in body and "example.nl" not in body
        assert "Bewonersbegeleider" in body and "niet zichtbaar voor uw rol" in body

    _run(check)


def test_every_address_view_is_audited_without_the_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        await client.get(f"/adres/{MG_KEY}", headers=_auth("mg-token"))
        await client.get(f"/adres/{MG_KEY}", headers=_auth("hh-token"))
        await client.get("/", headers=_auth("mg-token"))

    with caplog.at_level(logging.INFO, logger="hub.web.audit"):
        _run(check)
    lines = [r for r in caplog.records if r.name == "hub.web.audit"]
    assert [(r.account, r.outcome) for r in lines] == [("mg", 200), ("hh", 403)]  # type: ignore[attr-defined]
    digest = hashlib.sha256(MG_KEY.encode()).hexdigest()[:16]
    assert all(r.dossier_hash == digest for r in lines)  # type: ignore[attr-defined]
    for r in lines:
        extras = {k: v for k, v in extra_fields(r).items() if not k.startswith("_")}
        assert set(extras) == {"account", "dossier_hash", "outcome"}
        text = r.getMessage() + " " + " ".join(str(v) for v in extras.values())
        assert MG_KEY not in text and "9601" not in text


def test_readyz_follows_the_view() -> None:
    async def main() -> None:
        state = oracle_state()
        state.caught_up = False
        async with TestClient(TestServer(build_app(state, POLICY, default_municipalities()))) as c:
            assert (await c.get("/readyz")).status == 503
            state.caught_up = True
            assert (await c.get("/readyz")).status == 200

    asyncio.run(main())
