"""The sandbox HTTPS server: many simulated clusters under ``/c/<name>`` on one port.

A small HTTP/1.1 server (asyncio + h11) rather than an ASGI app, because faults
need control below HTTP: dropping a connection without an answer, or holding it
open forever, as an unreachable cluster does. It serves TLS with a CA of its own
(``tls.py``), which its kubeconfigs carry as ``certificate-authority-data``, so clients
verify it exactly as they verify a real cluster; ``tls=False`` serves plain HTTP.

Besides the Kubernetes API, each cluster has control endpoints for tests and the
``sandbox`` upgrade driver (bearer token of the cluster's admin required):

- ``GET|PUT|DELETE /c/<name>/sandbox/faults`` — read faults, set the named ones keeping the others (JSON, see
  ``Faults``), or clear them all;
- ``POST /c/<name>/sandbox/nodes/<node>/upgrade`` — ``{"version": "1.31.2", "delay": 2}`` (the same as setting the
  node's ``sandbox.pksweb.io/upgrade-to`` annotation through the Kubernetes API, see ``sandbox/__init__.py``);
- ``GET|DELETE /c/<name>/sandbox/stats`` — requests received by kind (benchmarks check what a sweep costs).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import ssl
import struct
import threading
from pathlib import Path
from typing import Any

import h11
import yaml

from sandbox import api, errors
from sandbox.cluster import SandboxCluster
from sandbox.tls import WILDCARD_HOSTS, Authority
from sandbox.validation import upgrade_version

MAX_BODY = 8 * 1024 * 1024
BLACKHOLE_SECONDS = 300
# libyaml's dumper when PyYAML has it: the pure-Python one takes seconds over a thousand kubeconfigs with a CA each.
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
logger = logging.getLogger(__name__)


class Sandbox:
    """A sandbox server. ``start()`` runs it in a background thread; ``serve_forever()`` in this one.

    ``tls`` (the default) serves HTTPS with a CA made for this instance; ``tls=False`` plain HTTP.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, seed: int = 0, heartbeat_seconds: float = 40.0,
                 tls: bool = True) -> None:
        self.host = host
        self.port = port
        self.seed = seed
        self.heartbeat_seconds = heartbeat_seconds
        self.authority: Authority | None = Authority.create(host) if tls else None
        self._start_error: BaseException | None = None
        self.clusters: dict[str, SandboxCluster] = {}
        self.loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._connections: set[asyncio.Task[None]] = set()

    # ---- clusters -------------------------------------------------------------

    def add_cluster(self, name: str, *, version: str = "1.30.4", nodes: int = 3, control_planes: int = 1,
                    pods_per_node: int = 3, populate: bool = True, **options: Any) -> SandboxCluster:
        """A new cluster with a realistic starting state (all pods running)."""
        if name in self.clusters:
            raise ValueError(f"a sandbox cluster called {name!r} exists already")
        cluster = SandboxCluster(name=name, version=version.lstrip("v"), seed=self.seed, **options)
        cluster.store.later = self._later
        if populate:
            cluster.populate(nodes=nodes, control_planes=control_planes, pods_per_node=pods_per_node)
            cluster.make_ready_now()
        self.clusters[name] = cluster
        return cluster

    def remove_cluster(self, name: str) -> None:
        self.clusters.pop(name, None)

    def _later(self, delay: float, fn: Any) -> None:
        self.loop.call_soon_threadsafe(self.loop.call_later, delay, fn)

    @property
    def tls(self) -> bool:
        return self.authority is not None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in WILDCARD_HOSTS else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def ca_pem(self) -> str:
        """The CA certificate (PEM) clients trust this server by; empty over plain HTTP."""
        return self.authority.ca_pem if self.authority is not None else ""

    def client_ssl_context(self) -> ssl.SSLContext | bool:
        """What an HTTP client verifies this server with (``httpx.Client(verify=...)``)."""
        return self.authority.client_context if self.authority is not None else True

    def server_url(self, name: str) -> str:
        return f"{self.url}/c/{name}"

    def _token(self, name: str, readonly: bool, denied: bool) -> str:
        cluster = self.clusters[name]
        return cluster.readonly_token if readonly else cluster.denied_token if denied else cluster.token

    def credential(self, name: str, *, readonly: bool = False, denied: bool = False) -> dict[str, str]:
        """Server, bearer token and CA (PEM) for one cluster: what pksweb's ``Credential.from_dict`` takes."""
        return {"server": self.server_url(name), "token": self._token(name, readonly, denied), "ca_data": self.ca_pem}

    def kubeconfig(self, name: str, *, readonly: bool = False, denied: bool = False) -> dict[str, Any]:
        """An ordinary kubeconfig for one cluster (bearer-token auth, the CA inline).

        ``readonly``: a token that may only read; ``denied``: one that RBAC allows nothing.
        """
        user = f"{name}-{'viewer' if readonly else 'denied' if denied else 'admin'}"
        token = self._token(name, readonly, denied)
        server: dict[str, Any] = {"server": self.server_url(name)}
        if self.ca_pem:
            server["certificate-authority-data"] = base64.b64encode(self.ca_pem.encode()).decode()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": server}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": user, "namespace": "default"}}],
            "current-context": name,
            "preferences": {},
        }

    def write_kubeconfigs(self, directory: Path, names: list[str] | None = None) -> list[Path]:
        """``<name>.kubeconfig`` (0600) in ``directory`` for each cluster (or those in ``names``)."""
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for name in names if names is not None else list(self.clusters):
            path = directory / f"{name}.kubeconfig"
            path.write_text(yaml.dump(self.kubeconfig(name), Dumper=DUMPER, sort_keys=False))
            path.chmod(0o600)
            written.append(path)
        return written

    # ---- running ----------------------------------------------------------------

    def start(self) -> Sandbox:
        """Serve in a daemon thread; returns once the port is bound.

        Raises the ``OSError`` of a port that cannot be bound (taken, say) at once; the
        sandbox may then be started again, e.g. on another ``port`` (0: any free one).
        """
        self._started.clear()
        self._start_error = None
        self._thread = threading.Thread(target=self._run, name="sandbox", daemon=True)
        self._thread.start()
        if not self._started.wait(30):
            raise RuntimeError("the sandbox server did not start")
        if self._start_error is not None:
            self._thread.join(5)
            raise self._start_error
        return self

    def serve_forever(self) -> None:
        self._run()

    def wait(self) -> None:
        """Block until the server thread ends (Ctrl-C interrupts)."""
        if self._thread is not None:
            while self._thread.is_alive():
                self._thread.join(1)

    def stop(self) -> None:
        if self._stopping is not None:
            self.loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.set_exception_handler(self._loop_exception)
        closing = True
        try:
            self.loop.run_until_complete(self._main())
        except OSError as error:
            if self._started.is_set():
                raise
            # Could not listen: the loop (and the timers the clusters queued on it) stays for another start().
            self._start_error, closing = error, False
            self._started.set()
        finally:
            if closing:
                self.loop.close()

    @staticmethod
    def _loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # A client that does not trust the CA (or hangs up mid-handshake) is the client's
        # business, as with a real API server: not worth a traceback on the console.
        if isinstance(context.get("exception"), (ssl.SSLError, ConnectionError, asyncio.CancelledError)):
            return  # ... nor a connection cut when the server stops
        loop.default_exception_handler(context)

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        context = self.authority.server_context() if self.authority is not None else None
        self._server = await asyncio.start_server(self._connection, self.host, self.port, backlog=1024, limit=MAX_BODY,
                                                  ssl=context)
        self.port = self._server.sockets[0].getsockname()[1]
        self._started.set()
        beats = asyncio.create_task(self._heartbeats())
        try:
            await self._stopping.wait()
        finally:
            beats.cancel()
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)

    async def _heartbeats(self) -> None:
        if self.heartbeat_seconds <= 0:
            return
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            for cluster in list(self.clusters.values()):
                cluster.heartbeat()
                await asyncio.sleep(0)

    # ---- HTTP ---------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_BODY)
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            while True:
                request = await self._read_request(conn, reader)
                if request is None:
                    return
                method, target, headers, body = request
                try:
                    outcome = await self._respond(method, target, headers, body)
                except Exception as error:  # a bug in the simulation answers 500, as a real server's panic does
                    logger.exception("sandbox: %s %s failed", method, target)
                    outcome = api.error_response(errors.internal_error(api.describe_failure(error)))
                if outcome == "drop":
                    self._reset(writer)
                    return
                if outcome == "hold":
                    await asyncio.sleep(BLACKHOLE_SECONDS)
                    self._reset(writer)
                    return
                await self._write(conn, writer, outcome)
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (h11.RemoteProtocolError, h11.LocalProtocolError, ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            return
        finally:
            self._connections.discard(task)
            if not writer.is_closing():
                writer.close()

    @staticmethod
    def _reset(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    @staticmethod
    async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes] | None:
        method = target = ""
        headers: dict[str, str] = {}
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                if not data and conn.their_state is not h11.DONE:
                    return None
                continue
            if isinstance(event, h11.Request):
                method, target = event.method.decode(), event.target.decode()
                headers = {}
                for key, value in event.headers:  # a header sent twice (Impersonate-Group) reads as one list
                    name = key.decode().lower()
                    headers[name] = f"{headers[name]}, {value.decode()}" if name in headers else value.decode()
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return method, target, headers, bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def _respond(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Any:
        path = target.split("?", 1)[0]
        parts = path.split("/", 3)
        if len(parts) < 3 or parts[1] != "c" or parts[2] not in self.clusters:
            if path in ("/healthz", "/livez", "/readyz"):
                return api.Response(200, b"ok", "text/plain; charset=utf-8")
            return api.error_response(errors.ApiError(404, "NotFound", "the server could not find the requested resource"))
        cluster = self.clusters[parts[2]]
        rest = "/" + (parts[3] if len(parts) > 3 else "")
        inner_target = rest + ("?" + target.split("?", 1)[1] if "?" in target else "")
        request = api.Request.parse(method, inner_target, headers, body)
        if request.path.startswith("/sandbox/"):
            return self._control(cluster, request)
        cluster.count_request(request.method, request.path, request.query)
        faults = cluster.faults
        if faults.unreachable:
            return "drop"
        if faults.blackhole:
            return "hold"
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        scripted = faults.scripted(request.method, request.path) if faults.answers else None
        if scripted is not None:
            body = scripted["body"]
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            return api.Response(scripted["status"], data, scripted["content_type"])
        if faults.fail_next > 0:
            faults.fail_next -= 1
            return api.error_response(self._fault_error(faults.fail_status, faults.retry_after, faults.fail_message))
        roll = cluster.store.random.random()
        if roll < faults.error_rate:
            return api.error_response(self._fault_error(500 if cluster.store.random.random() < 0.5 else 503, 0, faults.fail_message))
        if roll < faults.error_rate + faults.throttle_rate:
            return api.error_response(self._fault_error(429, faults.retry_after, faults.fail_message))
        return api.handle(cluster, request)

    @staticmethod
    def _fault_error(status: int, retry_after: int, message: str = "") -> errors.ApiError:
        if status == 429:
            return errors.too_many_requests(message or "Too many requests, please try again later.", retry_after=retry_after)
        if status == 503:
            return errors.service_unavailable(message or "the server is currently unable to handle the request")
        if status == 500:
            return errors.internal_error(message or "injected fault")
        return errors.for_status(status, message or f"injected fault ({status})")

    def _control(self, cluster: SandboxCluster, request: api.Request) -> api.Response:
        """The sandbox's own endpoints (faults, node upgrades); admin token only."""
        try:
            user = cluster.user_for(api._token(request))
            if user is None:
                raise errors.unauthorized()
            if not cluster.may(user, "update"):
                raise errors.forbidden(user, "update", "sandbox", "", "")
            parts = request.path.strip("/").split("/")
            if parts == ["sandbox", "stats"]:
                if request.method == "DELETE":
                    cluster.stats.clear()
                return api.json_response(200, dict(cluster.stats))
            if parts == ["sandbox", "faults"]:
                if request.method == "PUT":
                    values = request.json() or {}
                    if not isinstance(values, dict):
                        raise errors.bad_request("faults must be a JSON object")
                    try:
                        cluster.faults.update(values)
                    except ValueError as exc:
                        raise errors.bad_request(str(exc)) from None
                    cluster.refresh_budgets()
                elif request.method == "DELETE":
                    cluster.faults.clear()
                    cluster.refresh_budgets()
                elif request.method != "GET":
                    raise errors.method_not_allowed()
                return api.json_response(200, cluster.faults.as_dict())
            if len(parts) == 4 and parts[:2] == ["sandbox", "nodes"] and parts[3] == "upgrade" and request.method == "POST":
                body = request.json() or {}
                version = upgrade_version(body.get("version", ""))
                if version is None:
                    raise errors.bad_request(f"version must look like 1.31.2, not {body.get('version')!r}")
                delay = body.get("delay")
                cluster.upgrade_node(parts[2], version, float(delay) if isinstance(delay, (int, float)) else None)
                return api.json_response(202, {"node": parts[2], "version": f"v{version}", "status": "upgrading"})
            raise errors.ApiError(404, "NotFound", "no such sandbox endpoint")
        except errors.ApiError as error:
            return api.error_response(error)

    @staticmethod
    async def _write(conn: h11.Connection, writer: asyncio.StreamWriter, response: api.Response | api.WatchStream) -> None:
        base = [("content-type", response.content_type), ("cache-control", "no-cache, private"),
                ("audit-id", "00000000-0000-0000-0000-000000000000")]
        extra = [(k.lower(), v) for k, v in response.headers.items()]
        if isinstance(response, api.Response):
            headers = base + extra + [("content-length", str(len(response.body)))]
            # One write: over TLS each write is encrypted (and sent) on its own.
            writer.write(b"".join((conn.send(h11.Response(status_code=response.status, headers=headers)) or b"",
                                   conn.send(h11.Data(data=response.body)) or b"" if response.body else b"",
                                   conn.send(h11.EndOfMessage()) or b"")))
            await writer.drain()
            return
        headers = base + extra + [("transfer-encoding", "chunked")]
        writer.write(conn.send(h11.Response(status_code=response.status, headers=headers)))
        await writer.drain()
        try:
            try:
                async for chunk in response.events:
                    writer.write(conn.send(h11.Data(data=chunk)))
                    await writer.drain()
            except (ConnectionError, ssl.SSLError, h11.LocalProtocolError):
                raise
            except Exception as error:  # the stream ends with an ERROR event, as a real watch does
                logger.exception("sandbox: a watch failed")
                failure = errors.internal_error(api.describe_failure(error)).status()
                writer.write(conn.send(h11.Data(data=json.dumps({"type": "ERROR", "object": failure}).encode() + b"\n")))
        finally:
            await response.events.aclose()  # type: ignore[attr-defined]
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()

