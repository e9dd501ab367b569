"""Where one certapi request's time goes, layer by layer, measured in process.

    python -m bench.stages [--requests 2000]

Seeds a small database, builds certapi and the reference in this process and sends
each scenario's request to each, one at a time (so wall time is CPU time), through the
ASGI interface: no server, no network. Connexion's middleware layers are timed by
wrapping their ``__call__`` (a measurement harness only: the timers are installed here,
never in the service); a layer's own time is its time minus the next layer's. Prints
microseconds per request.
"""
import argparse
import asyncio
import collections
import functools
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.ids import CERTIFICATION, ENROLLMENT, USER, Layout, uid
from bench.run import ROOT

LAYOUT = Layout(users=1_200, enrollments=2_000)
# (label, the layer's module and class, its method); outermost first.
LAYERS = [
    ("certapi request log (outermost)", "certapi.middleware", "RequestLog", "__call__"),
    ("Connexion exception handling", "connexion.middleware.exceptions", "ExceptionMiddleware", "__call__"),
    ("Swagger UI router + certapi 405/size/media-type checks", "connexion.middleware.swagger_ui",
     "SwaggerUIMiddleware", "__call__"),
    ("Connexion routing", "connexion.middleware.routing", "RoutingMiddleware", "__call__"),
    ("Connexion security (incl. certapi.auth)", "connexion.middleware.security", "SecurityOperation", "__call__"),
    ("Connexion request validation (incl. certapi validators)",
     "connexion.middleware.request_validation", "RequestValidationOperation", "__call__"),
    ("Connexion context, lifespan", "connexion.middleware.context", "ContextMiddleware", "__call__"),
    ("a2wsgi bridge, Flask, Connexion's parameter and response decorators",
     "connexion.apps.flask", "FlaskASGIApp", "__call__"),
]
HANDLER = "handler on its thread: queries, lifecycle, rendering"


def requests() -> dict:
    c_small, e_small = uid(CERTIFICATION, 4), uid(ENROLLMENT, LAYOUT.big + 3)
    enrollment = f"/v1/certifications/{c_small}/enrollments/{e_small}"
    return {
        "get": ("GET", enrollment, b"", b""),
        "progress": ("PATCH", enrollment, b"", b'{"progress_percentage":50}'),
        "attempt": ("POST", enrollment + "/assessment-attempts", b"", b'{"score":40}'),
        "list_first": ("GET", f"/v1/certifications/{uid(CERTIFICATION, 0)}/enrollments",
                       b"page=1&per_page=25", b""),
        # Already enrolled: the full enroll path, answered 409 without a write.
        "enroll (409)": ("POST", f"/v1/certifications/{uid(CERTIFICATION, 4)}/enrollments", b"",
                         json.dumps({"user_uuid": uid(USER, 3)}).encode()),
    }


async def call(app, key: str, method: str, path: str, query: bytes, body: bytes) -> int:
    headers = [(b"host", b"bench"), (b"authorization", f"Bearer {key}".encode())]
    if body:
        headers += [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": query, "headers": headers,
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {}}
    sent, status = False, []

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0]


def install_timers(spent: collections.Counter) -> None:
    import importlib

    import certapi.app

    for label, module, cls, method in LAYERS:
        owner = getattr(importlib.import_module(module), cls)
        original = getattr(owner, method)

        async def timed(*args, _original=original, _label=label, **kwargs):
            started = time.perf_counter()
            try:
                return await _original(*args, **kwargs)
            finally:
                spent[_label] += time.perf_counter() - started
        setattr(owner, method, timed)

    resolve = certapi.app.resolve_handler

    def timed_resolve(name):
        function = resolve(name)

        @functools.wraps(function)
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[HANDLER] += time.perf_counter() - started
        timed.__signature__ = function.__signature__
        return timed
    certapi.app.resolve_handler = timed_resolve


async def measure(n: int, key: str) -> None:
    from bench.reference.app import create_app as reference_app
    from certapi.app import create_app

    spent: collections.Counter = collections.Counter()
    install_timers(spent)
    apps = {"certapi": create_app(), "reference": reference_app()}
    logging.getLogger("certapi").handlers[:] = [logging.NullHandler()]  # no terminal I/O
    labels = [label for label, *_ in LAYERS] + [HANDLER]
    for scenario, request in requests().items():
        totals = {}
        for name, app in apps.items():
            for _ in range(50):
                status = await call(app, key, *request)
            assert status < 300 or scenario.endswith("(409)"), (name, scenario, status)
            spent.clear()
            started = time.perf_counter()
            for _ in range(n):
                await call(app, key, *request)
            totals[name] = (time.perf_counter() - started) / n * 1e6
            if name == "certapi":
                layers = {label: spent[label] / n * 1e6 for label in labels}
        print(f"\n{scenario}: certapi {totals['certapi']:.0f} us, reference "
              f"{totals['reference']:.0f} us per request "
              f"(certapi/reference {totals['certapi'] / totals['reference']:.2f})")
        for label, inner in zip(labels, labels[1:] + [None], strict=True):
            own = layers[label] - (layers[inner] if inner else 0)
            print(f"  {own:6.0f} us  {label}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="certapi-stages-") as workdir:
        url = f"sqlite:///{Path(workdir) / 'bench.db'}"
        out = subprocess.run(
            [sys.executable, "-m", "bench.seed", url, "--users", str(LAYOUT.users),
             "--enrollments", str(LAYOUT.enrollments)],
            cwd=ROOT, capture_output=True, text=True, check=True)
        os.environ["DATABASE_URL"] = url
        # The reference starts a webhook sender as `certapi serve` does; certapi's bare
        # create_app does not: neither polls here, so both are timed alike.
        os.environ["CERTAPI_WEBHOOK_BACKGROUND"] = "0"
        import uvloop

        uvloop.run(measure(args.requests, json.loads(out.stdout.splitlines()[-1])["key"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
