"""What the database keeps of a client's handshake: no credentials, and a bounded size (a session's
row and each suspended socket's hold a copy)."""

from __future__ import annotations

from sioless.records import MAX_RECORDED, Handshake


def test_the_database_keeps_a_bounded_handshake_without_credentials() -> None:
    headers = {f"x-header-{n}": "v" * 1000 for n in range(100)}  # about 100 KB, as a server may allow
    query = {"room": "r" * 10_000, "q": "1", "token": "secret"}
    handshake = Handshake(
        query=query,
        headers={"authorization": "Bearer secret", **headers},
        address="127.0.0.1",
        url="/socket.io/?room=r&q=1&token=secret",
        issued=0.0,
    )
    record = handshake.to_record()
    assert "authorization" not in record["headers"] and "token" not in record["query"]
    kept = record["headers"]
    assert 0 < sum(len(name) + len(value) for name, value in kept.items()) <= MAX_RECORDED
    assert list(kept) == list(headers)[: len(kept)]  # the first ones, in the order the client sent them
    assert record["query"] == {"q": "1"}  # the parameter past the bound alone is left out
    assert handshake.headers == {"authorization": "Bearer secret", **headers}  # handlers see all of it
