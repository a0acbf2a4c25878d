"""The ping fast path of `cronkeeper serve` (api/ping_protocol.py) over raw sockets: the
answers a client sees are those of the ASGI ping app, and the connection behaves as HTTP
says — keep-alive, pipelining, `Connection: close`, HTTP/1.0 — whichever path a request
takes."""

from __future__ import annotations

import socket
import sqlite3
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from .conftest import JOBS, RealServer, bearer

pytestmark = pytest.mark.slow


@pytest.fixture
def ping_path(real_server: RealServer) -> str:
    """The path of a fresh heartbeat job's ping URL."""
    with httpx.Client(base_url=real_server.url, headers=bearer(real_server.admin_key)) as api:
        created = api.post(JOBS, json={"slug": "nightly", "kind": "heartbeat"})
    assert created.status_code == 201, created.text
    return urlsplit(created.json()["data"]["ping_url"]).path


class Connection:
    """One raw HTTP/1.x connection to the server: send bytes, read answers one by one."""

    def __init__(self, server: RealServer) -> None:
        address = urlsplit(server.url)
        self.sock = socket.create_connection((address.hostname, address.port), timeout=10)
        self.buffer = b""

    def send(self, *requests: bytes) -> None:
        self.sock.sendall(b"".join(requests))

    def answer(self, to_head: bool = False) -> tuple[int, dict[str, str], bytes]:
        """The next answer: status, headers (lower-case names), body (none for HEAD)."""
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
        length = 0 if to_head else int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._read()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), headers, body

    def closed_by_server(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def _read(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def conn(real_server: RealServer) -> Iterator[Connection]:
    connection = Connection(real_server)
    yield connection
    connection.close()


def get(path: str, method: str = "GET", version: str = "1.1", extra: str = "") -> bytes:
    return f"{method} {path} HTTP/{version}\r\nHost: x\r\nUser-Agent: t/1\r\n{extra}\r\n".encode()


def post(path: str, body: bytes) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def starts_and_successes(server: RealServer) -> tuple[int, int]:
    with sqlite3.connect(server.db_url.removeprefix("sqlite:///")) as db:
        counts = dict(
            db.execute(
                "SELECT type, count(*) FROM events WHERE type IN "
                "('attempt_started', 'attempt_succeeded') GROUP BY type"
            ).fetchall()
        )
    return counts.get("attempt_started", 0), counts.get("attempt_succeeded", 0)


def test_fast_and_asgi_answers_are_the_same(conn: Connection, ping_path: str) -> None:
    conn.send(get(ping_path))  # fast path
    fast = conn.answer()
    conn.send(post(ping_path, b"done"))  # a body: the ASGI app
    slow = conn.answer()
    assert fast[0] == slow[0] == 200 and fast[2] == slow[2] == b"OK"
    for name in (
        "content-type",
        "content-length",
        "ping-body-limit",
        "access-control-allow-origin",
    ):
        assert fast[1][name] == slow[1][name], name
    assert "date" in fast[1] and "server" in fast[1]

    conn.send(get(f"/ping/{uuid.uuid4()}"))
    assert conn.answer()[0::2] == (404, b"not found")
    conn.send(get(f"{ping_path}/256"))
    assert conn.answer()[0::2] == (400, b"invalid url format")
    conn.send(get(f"{ping_path}?rid=nope"))
    assert conn.answer()[0::2] == (400, b"invalid uuid format")
    conn.send(get("/ping/x/y/z/w"))
    assert conn.answer()[0::2] == (404, b"not found")


def test_head_has_the_length_but_no_body(conn: Connection, ping_path: str) -> None:
    conn.send(get(ping_path, "HEAD"), get(f"{ping_path}/start"))
    status, headers, body = conn.answer(to_head=True)
    assert status == 200 and headers["content-length"] == "2" and body == b""
    assert conn.answer()[0::2] == (200, b"OK")  # the next answer starts right after


def test_pipelined_requests_are_answered_in_order(
    real_server: RealServer, conn: Connection, ping_path: str
) -> None:
    rids = [str(uuid.uuid4()) for _ in range(10)]
    requests = [get(f"{ping_path}/start?rid={rid}") for rid in rids]
    requests.insert(3, post(f"{ping_path}?rid={rids[0]}", b"first done"))  # ASGI, mid-stream
    requests.append(get(f"/ping/{uuid.uuid4()}"))  # unknown: 404 last
    conn.send(*requests)
    answers = [conn.answer() for _ in requests]
    assert [status for status, _, _ in answers] == [200] * 11 + [404]
    assert starts_and_successes(real_server) == (10, 1)


def test_connection_close_and_http_1_0_end_the_connection(
    real_server: RealServer, ping_path: str
) -> None:
    for request in (get(ping_path, extra="Connection: close\r\n"), get(ping_path, version="1.0")):
        conn = Connection(real_server)
        try:
            conn.send(request)
            status, headers, body = conn.answer()
            assert (status, body) == (200, b"OK")
            assert headers.get("connection") == "close"
            assert conn.closed_by_server()
        finally:
            conn.close()


def test_keep_alive_serves_many_pings_on_one_connection(
    real_server: RealServer, conn: Connection, ping_path: str
) -> None:
    for _ in range(50):
        rid = uuid.uuid4()
        conn.send(get(f"{ping_path}/start?rid={rid}"))
        assert conn.answer()[0] == 200
        conn.send(get(f"{ping_path}?rid={rid}"))
        assert conn.answer()[0] == 200
    assert starts_and_successes(real_server) == (50, 50)


def test_a_client_gone_before_the_commit_leaves_the_server_serving(
    real_server: RealServer, ping_path: str
) -> None:
    for _ in range(20):
        gone = Connection(real_server)
        gone.send(get(f"{ping_path}/start"))
        gone.close()
    conn = Connection(real_server)
    try:
        conn.send(get(ping_path))
        assert conn.answer()[0::2] == (200, b"OK")
    finally:
        conn.close()
    assert "Traceback" not in real_server.output()
