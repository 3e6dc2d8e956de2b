"""``{ __typename }`` latency with the server idle, and while 16 logins run at once.

argon2id costs tens of milliseconds of CPU per login; run on the event loop it would stall
every other request. Target: the loaded p50 within 5x of the idle p50.

Beside it, what being signed in costs: a catalogue query anonymous and signed in, over HTTP
(the token check reads the user and session in one statement) and per operation on an open
WebSocket (answered from the state change notices keep, without a database read).

    python -m bench.auth_latency [--rounds 3] [--samples 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from bench.harness import (
    LOGIN,
    PASSWORD,
    Latency,
    bookql_server,
    median,
    pin_self,
    set_up,
    table,
    times,
    write_results,
)

TYPENAME = {"query": "{ __typename }"}
LOGINS_AT_ONCE = 16
# Reads the catalogue: every request checks its caller (the database is empty: the check
# and the query's own statement are all there is to time).
CATALOG = "{ books(first: 1) { edges { node { title } } } }"


async def _http_signed_in(
    client: httpx.AsyncClient, url: str, token: str | None, samples: int
) -> list[float]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        response = await client.post(f"{url}/graphql", json={"query": CATALOG}, headers=headers)
        timings.append(time.perf_counter() - started)
        assert "errors" not in response.json(), response.text
    return timings


async def _ws_operations(url: str, token: str | None, samples: int) -> list[float]:
    """Sequential operations on one open socket: subscribe, next, complete."""
    payload = {"Authorization": f"Bearer {token}"} if token else {}
    protocols = [Subprotocol("graphql-transport-ws")]
    async with connect(url.replace("http", "ws") + "/graphql", subprotocols=protocols) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        timings = []
        for n in range(samples):
            started = time.perf_counter()
            await _operation(ws, str(n))
            timings.append(time.perf_counter() - started)
    return timings


async def _operation(ws: ClientConnection, op: str) -> None:
    await ws.send(json.dumps({"id": op, "type": "subscribe", "payload": {"query": CATALOG}}))
    answer = json.loads(await ws.recv())
    assert answer["type"] == "next" and "errors" not in answer["payload"], answer
    assert json.loads(await ws.recv())["type"] == "complete"


async def _signed_in_round(url: str, samples: int) -> dict[str, Latency]:
    async with httpx.AsyncClient(timeout=60) as client:
        login = {"query": LOGIN, "variables": {"u": "bench0", "p": PASSWORD}}
        body = (await client.post(f"{url}/graphql", json=login)).json()
        token = body["data"]["login"]["accessToken"]
        figures = {}
        for who, credentials in (("anonymous", None), ("signed_in", token)):
            await _http_signed_in(client, url, credentials, 50)  # warm up
            figures[f"http_{who}"] = Latency.of(
                await _http_signed_in(client, url, credentials, samples)
            )
            await _ws_operations(url, credentials, 50)
            figures[f"ws_{who}"] = Latency.of(await _ws_operations(url, credentials, samples))
    return figures


async def _sample(client: httpx.AsyncClient, url: str, samples: int) -> list[float]:
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        response = await client.post(f"{url}/graphql", json=TYPENAME)
        timings.append(time.perf_counter() - started)
        assert response.json() == {"data": {"__typename": "Query"}}
    return timings


async def _login_forever(
    client: httpx.AsyncClient, url: str, user: str, stop: asyncio.Event
) -> int:
    done = 0
    while not stop.is_set():
        response = await client.post(
            f"{url}/graphql", json={"query": LOGIN, "variables": {"u": user, "p": PASSWORD}}
        )
        assert "errors" not in response.json(), response.text
        done += 1
    return done


async def _round(url: str, samples: int) -> tuple[Latency, Latency, float]:
    limits = httpx.Limits(max_connections=LOGINS_AT_ONCE + 4)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        await _sample(client, url, 50)  # warm up
        idle = await _sample(client, url, samples)
        stop = asyncio.Event()
        logins = [
            asyncio.create_task(_login_forever(client, url, f"bench{i}", stop))
            for i in range(LOGINS_AT_ONCE)
        ]
        await asyncio.sleep(0.5)  # let the logins saturate the hashing threads
        started = time.perf_counter()
        loaded = await _sample(client, url, samples)
        elapsed = time.perf_counter() - started
        stop.set()
        completed = sum(await asyncio.gather(*logins))
    return Latency.of(idle), Latency.of(loaded), completed / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {"BOOKQL_DATA_DIR": tmp, "BOOKQL_AUTO_SEED": "false"}
        set_up(env, seed=False, users=[f"bench{i}" for i in range(LOGINS_AT_ONCE)])
        pin_self(1)
        rounds = []
        signed_in = []
        with bookql_server(env, core=0) as server:
            for _ in range(args.rounds):
                rounds.append(asyncio.run(_round(server.url, args.samples)))
                signed_in.append(asyncio.run(_signed_in_round(server.url, args.samples)))
    caller = {
        f"{name}_{p}_ms": median([getattr(r[name], f"{p}_ms") for r in signed_in])
        for name in signed_in[0]
        for p in ("p50", "p99")
    }
    idle_p50 = median([r[0].p50_ms for r in rounds])
    idle_p99 = median([r[0].p99_ms for r in rounds])
    loaded_p50 = median([r[1].p50_ms for r in rounds])
    loaded_p99 = median([r[1].p99_ms for r in rounds])
    logins_per_s = median([r[2] for r in rounds])
    ratio = loaded_p50 / idle_p50
    print(
        table(
            [
                ["{ __typename }", "p50 ms", "p99 ms"],
                ["idle", f"{idle_p50:.2f}", f"{idle_p99:.2f}"],
                [f"{LOGINS_AT_ONCE} logins at once", f"{loaded_p50:.2f}", f"{loaded_p99:.2f}"],
                ["ratio (target <= 5x)", times(loaded_p50, idle_p50), times(loaded_p99, idle_p99)],
            ]
        )
    )
    print(f"logins completed meanwhile: {logins_per_s:.1f}/s (medians of {args.rounds} rounds)")
    print(
        table(
            [
                [CATALOG, "p50 ms", "p99 ms"],
                *(
                    [f"{transport} {who.replace('_', ' ')}", f"{p50:.2f}", f"{p99:.2f}"]
                    for transport, key in (("HTTP", "http"), ("WebSocket operation", "ws"))
                    for who in ("anonymous", "signed_in")
                    for p50, p99 in [(caller[f"{key}_{who}_p50_ms"], caller[f"{key}_{who}_p99_ms"])]
                ),
            ]
        )
    )
    write_results(
        "auth_latency",
        {
            "idle_p50_ms": idle_p50,
            "idle_p99_ms": idle_p99,
            "loaded_p50_ms": loaded_p50,
            "loaded_p99_ms": loaded_p99,
            "p50_ratio": ratio,
            "logins_per_s": logins_per_s,
            **caller,
            "rounds": args.rounds,
            "samples": args.samples,
        },
    )


if __name__ == "__main__":
    main()
