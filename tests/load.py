"""Many HTTP requests at once against a live server: up to ``CONNECTIONS`` open
connections, each request bounded in time. Transport failures come back as the
exception instead of a response, so crash tests can tell what was answered."""
import asyncio

import httpx

CONNECTIONS = 64
REQUEST_SECONDS = 30


def client(base_url: str, headers: dict, connections: int = CONNECTIONS) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits,
                             timeout=REQUEST_SECONDS)


async def send(http: httpx.AsyncClient, method: str, path: str, body=None):
    try:
        return await http.request(method, path, json=body)
    except httpx.TransportError as exc:
        return exc


def storm(base_url: str, headers: dict, requests: list[tuple]) -> list:
    """Send every (method, path[, body]) at once; responses (or errors) in order."""
    async def main():
        async with client(base_url, headers) as http:
            return await asyncio.gather(*(send(http, *request) for request in requests))

    return asyncio.run(main())
