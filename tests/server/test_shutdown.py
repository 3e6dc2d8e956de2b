"""SIGTERM: a request in flight still gets its answer, an open WebSocket a proper close code."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from tests.conftest import ScratchDatabase
from tests.support.live import running_server

pytestmark = pytest.mark.slow  # a real server, stopped with SIGTERM

SLOW = "{ stats { totalBooks } books(first: 100) { edges { node { title } } } }"


def test_sigterm_finishes_requests_and_closes_subscriptions(
    seeded_db: ScratchDatabase, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "BOOKQL_DATABASE_URL": seeded_db.url,
        "BOOKQL_DATA_DIR": str(seeded_db.data_dir),
        "BOOKQL_SHUTDOWN_GRACE_SECONDS": "10",
    }
    with running_server(env, tmp_path / "server.log") as server:
        url = server.url
        websocket_url = url.replace("http://", "ws://") + "/graphql"
        with connect(websocket_url, subprotocols=[Subprotocol("graphql-transport-ws")]) as socket:
            socket.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(socket.recv(timeout=10))["type"] == "connection_ack"

            answers: list[int] = []

            def in_flight() -> None:  # many requests on one connection, across the signal
                with httpx.Client(base_url=url, timeout=30) as client:
                    for _ in range(50):
                        try:
                            response = client.post("/graphql", json={"query": SLOW})
                        except httpx.TransportError:
                            return  # refused after the shutdown: never a half answer
                        answers.append(response.status_code)

            worker = threading.Thread(target=in_flight)
            worker.start()
            time.sleep(0.3)
            server.process.send_signal(signal.SIGTERM)
            worker.join(timeout=30)
            assert answers and set(answers) == {200}
            with pytest.raises(ConnectionClosed) as closed:
                socket.recv(timeout=15)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        # uvicorn re-raises the signal once it has shut down cleanly
        assert server.process.wait(timeout=20) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in (tmp_path / "server.log").read_text()
