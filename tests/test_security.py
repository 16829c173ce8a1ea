"""Every client is hostile: each defence of README "Security", written as the attack it stops."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from typing import Any

import aiohttp
import pytest
import socketio
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from pytest_django.fixtures import Settings

from sioless import messages, sids
from sioless.consumers import EngineConsumer
from sioless.polling import cors_headers
from sioless.transport import PROTOCOL_ERROR
from tests.support.clients import Poller, Recorder, raw_engine, sio_client
from tests.support.database import sql
from tests.support.processes import ROOT
from tests.support.topologies import Topology

EVIL = "https://evil.example"
ALLOWED = "http://allowed.example"  # tests/settings.py


async def login_cookie(url: str, username: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/login/{username}/") as response:
        assert response.status == 200
        return "; ".join(f"{c.key}={c.value}" for c in response.cookies.values())


async def whoami_over_websocket(url: str, headers: dict[str, str]) -> Any:
    """The user a WebSocket sent with ``headers`` is served as; raises if the handshake is refused."""
    async with aiohttp.ClientSession() as http:
        ws_url = f"{url.replace('http', 'ws', 1)}/socket.io/?EIO=4&transport=websocket"
        async with http.ws_connect(ws_url, headers=headers) as ws:
            assert (await ws.receive(timeout=5)).data.startswith("0")
            await ws.send_str("40")
            assert (await ws.receive(timeout=5)).data.startswith("40")
            await ws.send_str('421["whoami"]')
            return json.loads((await ws.receive(timeout=5)).data[3:])[0]["user"]


async def test_a_page_of_another_origin_cannot_connect_with_the_users_cookie(production: Topology) -> None:
    url = production.urls[0]
    cookie = await login_cookie(url, "victim")
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await whoami_over_websocket(url, {"Origin": EVIL, "Cookie": cookie})
    own_origin = url  # http://127.0.0.1:PORT: the page the site itself served
    assert await whoami_over_websocket(url, {"Origin": own_origin, "Cookie": cookie}) == "victim"
    assert await whoami_over_websocket(url, {"Origin": ALLOWED, "Cookie": cookie}) == "victim"
    assert await whoami_over_websocket(url, {"Cookie": cookie}) == "victim"  # no Origin: not a browser page


async def test_a_page_of_another_origin_can_neither_poll_nor_upgrade(production: Topology) -> None:
    async with aiohttp.ClientSession() as http:
        handshake = f"{production.urls[0]}/socket.io/?EIO=4&transport=polling"
        async with http.get(handshake, headers={"Origin": EVIL}) as response:
            assert response.status == 400
            assert await response.json() == {"code": 4, "message": "Forbidden"}
            assert "Access-Control-Allow-Origin" not in response.headers
        poller = Poller(http, production.urls)
        await poller.open()
        upgrade = f"{production.urls[1].replace('http', 'ws', 1)}/socket.io/?EIO=4&transport=websocket&sid={poller.sid}"
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(upgrade, headers={"Origin": EVIL})
        async with http.get(poller.url(), headers={"Origin": EVIL}) as response:
            assert response.status == 400


class User:
    """What AuthMiddlewareStack puts in the scope for a logged-in user."""

    pk = 7
    is_authenticated = True


async def test_star_admits_every_origin_but_never_with_the_users_session(settings: Settings) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "sioless.layers.InMemoryChannelLayer"}}
    settings.SIOLESS = {"SHARDS": 1, "EMBEDDED_WORKER": False, "CORS_ALLOWED_ORIGINS": ["*"]}
    consumer = EngineConsumer.as_asgi()

    async def with_user(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await consumer({**scope, "user": User()}, receive, send)

    for origin, user_id in ((EVIL, None), (None, "7")):
        headers = [(b"origin", origin.encode())] if origin else []
        communicator = WebsocketCommunicator(with_user, "/socket.io/?EIO=4&transport=websocket", headers)
        assert (await communicator.connect())[0]
        try:
            while (opened := await get_channel_layer().receive("sioless.worker.0"))["type"] != messages.OPEN:
                pass  # the close of the connection before
            assert opened["handshake"]["user_id"] == user_id
        finally:
            await communicator.disconnect()
    answer = dict(cors_headers({"headers": [(b"origin", EVIL.encode()), (b"host", b"site.example")]}, preflight=False))
    assert answer[b"access-control-allow-origin"] == EVIL.encode()
    assert b"access-control-allow-credentials" not in answer


async def test_a_page_of_a_host_not_in_allowed_hosts_is_refused_though_it_names_the_host(settings: Settings) -> None:
    """DNS rebinding: the attacker's host name, made to resolve to this server, is the page's origin
    and the request's Host alike; it is not one of ALLOWED_HOSTS, so the page is refused."""
    settings.ALLOWED_HOSTS = ["site.example"]
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "sioless.layers.InMemoryChannelLayer"}}
    settings.SIOLESS = {"SHARDS": 1, "EMBEDDED_WORKER": False}
    for host, served in (("rebound.example", False), ("site.example", True), ("site.example:8000", True)):
        headers = [(b"origin", f"http://{host}".encode()), (b"host", host.encode())]
        communicator = WebsocketCommunicator(EngineConsumer.as_asgi(), "/socket.io/?EIO=4&transport=websocket", headers)
        assert (await communicator.connect())[0] is served, host
        await communicator.disconnect()


@pytest.mark.parametrize(
    ("scheme", "proxy_header", "origin", "served"),
    [
        ("ws", None, "http://site.example", True),
        ("wss", None, "http://site.example", False),  # a plain page, trusted with a secure session
        ("wss", None, "https://site.example", True),
        ("ws", None, "https://site.example", False),
        ("ws", b"https", "https://site.example", True),  # TLS ended at the proxy, which says so
        ("ws", b"http", "https://site.example", False),
    ],
)
async def test_a_page_of_this_host_over_another_scheme_is_refused(
    settings: Settings, scheme: str, proxy_header: bytes | None, origin: str, served: bool
) -> None:
    settings.ALLOWED_HOSTS = ["site.example"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "sioless.layers.InMemoryChannelLayer"}}
    settings.SIOLESS = {"SHARDS": 1, "EMBEDDED_WORKER": False}
    consumer = EngineConsumer.as_asgi()

    async def over(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await consumer({**scope, "scheme": scheme}, receive, send)

    headers = [(b"origin", origin.encode()), (b"host", b"site.example")]
    if proxy_header is not None:
        headers.append((b"x-forwarded-proto", proxy_header))
    communicator = WebsocketCommunicator(over, "/socket.io/?EIO=4&transport=websocket", headers)
    assert (await communicator.connect())[0] is served
    await communicator.disconnect()


async def test_infinity_from_one_client_breaks_no_other(production: Topology) -> None:
    async with sio_client(production.urls[1]) as bystander:
        disconnects: list[Any] = []
        bystander.on("disconnect", lambda *reason: disconnects.append(reason))
        news = Recorder(bystander, "news")
        await bystander.call("join", "pointers", timeout=5)
        async with raw_engine(production.urls[0]) as attacker:
            await attacker.send("40")
            await attacker.receive()
            await attacker.send('421["join","pointers"]')
            await attacker.receive()
            await attacker.send('42["broadcast","pointers",1e999,0.5]')
            assert await attacker.closed_with() == PROTOCOL_ERROR
        assert await bystander.call("broadcast", ("pointers", 0.5), timeout=5) == "sent"
        assert await news.next("news") == 0.5
        assert news.empty("news") and disconnects == []


SECRETS = {"authorization": "Bearer SECRET-A", "x-api-key": "SECRET-B", "token": "SECRET-C", "auth": "SECRET-D"}


async def test_credentials_are_neither_kept_at_rest_nor_shown_in_the_admin(production: Topology) -> None:
    client = socketio.AsyncClient(reconnection=False)
    headers = {"Authorization": SECRETS["authorization"], "X-Api-Key": SECRETS["x-api-key"]}
    await client.connect(
        f"{production.urls[0]}?token={SECRETS['token']}&room=kept",
        headers=headers,
        auth={"token": SECRETS["auth"]},
        transports=["websocket"],
        wait_timeout=5,
    )
    try:
        seen = await client.call("handshake", timeout=5)  # the live socket sees them all
        assert seen["headers"]["authorization"] == SECRETS["authorization"]
        assert seen["query"]["token"] == SECRETS["token"]
        assert seen["auth"] == {"token": SECRETS["auth"]}
        sid = client.get_sid()
        tables = ("sioless_enginesession", "sioless_namespacesocket", "sioless_roommembership")
        dump = "\n".join(str(row) for table in tables for row in sql(production.database, f"SELECT * FROM {table}"))
        assert sid in dump and "room=kept" in dump
        assert not [name for name, secret in SECRETS.items() if secret in dump]
        pages = await sync_to_async(admin_pages)(sid)
        assert all(page.startswith("200") for page in pages), [page[:200] for page in pages]
        assert not [name for name, secret in SECRETS.items() for page in pages if secret in page]
    finally:
        await client.disconnect()


def admin_pages(socket_sid: str) -> list[str]:
    """The admin's pages of the socket and of its engine session, as a superuser sees them."""
    from django.contrib.admin.utils import quote
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from sioless.models import NamespaceSocket

    admin, _ = get_user_model().objects.get_or_create(username="security-admin", is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(admin)
    socket = NamespaceSocket.objects.get(sid=socket_sid)
    urls = [
        reverse("admin:sioless_namespacesocket_change", args=[quote(socket.sid)]),
        reverse("admin:sioless_enginesession_change", args=[quote(socket.session_id)]),
        reverse("admin:sioless_namespacesocket_changelist"),
        reverse("admin:sioless_enginesession_changelist"),
    ]
    try:
        return [f"{(response := browser.get(url)).status_code} {response.content.decode()}" for url in urls]
    finally:
        connection.close()  # this thread's: the test database is dropped at the end


async def test_revived_sockets_keep_their_auth_but_the_key_is_needed(settings: Settings) -> None:
    from sioless.sealing import NOT_KEPT, seal, unseal

    sealed = seal({"token": "SECRET-D"})
    assert sealed is not None and "SECRET" not in sealed
    assert unseal(sealed) == {"token": "SECRET-D"}
    settings.SECRET_KEY = "another key"
    assert unseal(sealed) is NOT_KEPT
    settings.SIOLESS = {"KEEP_AUTH": False}
    assert seal({"token": "SECRET-D"}) is None


@pytest.mark.parametrize("body", ["bé", "b\ud800", "4\x1eb!!!!"], ids=["non-ascii", "surrogate", "not base64"])
async def test_bad_base64_in_a_polling_payload_is_a_clean_400_that_closes(production: Topology, body: str) -> None:
    async with aiohttp.ClientSession() as http:
        poller = Poller(http, production.urls)
        await poller.open()
        async with http.post(poller.url(), data=body.encode("utf-8", "surrogatepass")) as response:
            assert response.status == 400
            assert await response.json() == {"code": 3, "message": "Bad request"}
        status, frames = await poller.get()
        assert (status, frames) in ((200, ["1"]), (400, {"code": 1, "message": "Session ID unknown"}))


@pytest.mark.parametrize("sid", ["a.b.c.%C3%A9", "%F0%9F%99%82.x.y.z", "a.b.c", "...."])
async def test_forged_sids_get_session_id_unknown_never_a_500(production: Topology, sid: str) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{production.urls[0]}/socket.io/?EIO=4&transport=polling&sid={sid}"
        async with http.get(url) as response:
            assert response.status == 400
            assert (await response.json())["code"] == 1
        ws = f"{production.urls[0].replace('http', 'ws', 1)}/socket.io/?EIO=4&transport=websocket&sid={sid}"
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(ws)


def test_a_sid_is_good_for_sid_max_age_only(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.SIOLESS = {"SID_MAX_AGE": 60}
    sid = sids.polling_sid("specific.abc!def")
    assert sids.session_channel(sid) == "specific.abc!def"
    later = time.time() + 61
    monkeypatch.setattr(sids.time, "time", lambda: later)
    assert sids.session_channel(sid) is None
    token, route, _, signature = sid.split(".")
    assert sids.session_channel(f"{token}.{route}.{format(int(later), 'x')}.{signature}") is None  # re-dated


async def test_one_connection_cannot_open_namespaces_without_end(production: Topology) -> None:
    async with raw_engine(production.urls[0]) as raw:
        for n in range(100):
            await raw.send(f"40/dyn-{n},")
        answers = [str(await raw.receive()) for _ in range(100)]
        assert all(answer.startswith("40/dyn-") and '"sid"' in answer for answer in answers)
        await raw.send("40/dyn-100,")
        assert await raw.receive() == '44/dyn-100,{"message":"Too many namespaces"}'
        await raw.send('42/dyn-3,1["where"]')
        assert await raw.receive() == '43/dyn-3,1["/dyn-3"]'


async def test_a_room_name_over_max_name_length_is_refused_and_the_connection_goes_on(production: Topology) -> None:
    async with raw_engine(production.urls[0]) as raw:
        await raw.send("40")
        await raw.receive()
        await raw.send("421" + json.dumps(["join", "r" * 1001]))  # the handler raises: no ack
        await raw.send('422["echo","after"]')
        assert await raw.receive() == '432["after"]'


async def test_an_unfinished_binary_packet_is_not_held_forever(production: Topology) -> None:
    async with raw_engine(production.urls[0]) as raw:
        await raw.send("40")
        await raw.receive()
        started = time.monotonic()
        await raw.send('451-["echo",{"_placeholder":true,"num":0}]')
        assert await raw.closed_with(timeout=15) == PROTOCOL_ERROR  # answering pings meanwhile
        assert time.monotonic() - started < 3.0 + 3.0 + 2.0  # BINARY_TIMEOUT + one sweep + slack


@pytest.mark.e2e
def test_the_production_demo_refuses_to_start_without_a_secret_key() -> None:
    env = {key: value for key, value in os.environ.items() if key != "SIOLESS_DEMO_SECRET_KEY"}
    env["DJANGO_SETTINGS_MODULE"] = "demo_project.settings_production"
    done = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "SIOLESS_DEMO_SECRET_KEY" in done.stderr


@pytest.mark.django_db
def test_the_admin_shows_suspended_sockets_without_their_secrets(admin_client: Any) -> None:
    from django.contrib.admin.utils import quote
    from django.urls import reverse

    from sioless.models import LostSession, SuspendedSocket
    from sioless.recovery import digest
    from sioless.sealing import seal

    lost = LostSession.objects.create(sid="e", handshake={"headers": {"x-note": "HEADER-SECRET"}})
    SuspendedSocket.objects.create(
        sid="lost-sid",
        pid_digest=digest("PID-SECRET"),
        namespace="/",
        namespace_group="g",
        session=lost,
        auth=seal({"token": "AUTH-SECRET"}),
        reason="transport close",
    )
    for url in (
        reverse("admin:sioless_suspendedsocket_changelist"),
        reverse("admin:sioless_suspendedsocket_change", args=[quote("lost-sid")]),
    ):
        page = admin_client.get(url)
        assert page.status_code == 200
        assert "lost-sid" in page.content.decode()
        assert "SECRET" not in page.content.decode()
        assert digest("PID-SECRET") not in page.content.decode()


def test_runserver_s_request_log_shows_session_keys_not_sids(caplog: pytest.LogCaptureFixture) -> None:
    sid = sids.polling_sid("specific.p1!c1")
    request = {"method": "GET", "path": f"/socket.io/?EIO=4&transport=polling&sid={sid}&t=P1"}
    logging.getLogger("django.channels.server").warning("HTTP %(method)s %(path)s", request)
    assert sid not in caplog.text
    assert f"sid={sids.session_key(sid)}&t=P1" in caplog.text
