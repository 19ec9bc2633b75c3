"""One ``ApiClient`` per credential, built from the credential alone.

Never ``load_kube_config()`` (process-global). Client certificates must be files
for Python's TLS stack: they are written to a private temporary directory (0700)
for as long as the client is cached, and removed when the process exits.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable

from kubernetes.client import ApiClient, Configuration

from clusters.kube.credentials import Credential

MAX_CACHED = 4096
_lock = threading.Lock()
_clients: OrderedDict[tuple[str, str], ApiClient] = OrderedDict()
_tmpdir: str | None = None


def _private_dir() -> str:
    global _tmpdir
    if _tmpdir is None:
        _tmpdir = tempfile.mkdtemp(prefix="pksweb-tls-")
        os.chmod(_tmpdir, 0o700)
        atexit.register(shutil.rmtree, _tmpdir, True)
    return _tmpdir


def _write_private(name: str, content: str) -> str:
    path = os.path.join(_private_dir(), name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    return path


def build(credential: Credential, pool_size: int = 4) -> ApiClient:
    config = Configuration(host=credential.server)
    if credential.token:
        config.api_key = {"BearerToken": credential.token}
        config.api_key_prefix = {"BearerToken": "Bearer"}
    if credential.ca_data:
        config.ca_cert_data = credential.ca_data
    config.verify_ssl = not credential.insecure_skip_tls_verify
    if credential.tls_server_name:
        config.tls_server_name = credential.tls_server_name
    if credential.client_cert_data and credential.client_key_data:
        stem = credential.fingerprint()[:16]
        config.cert_file = _write_private(f"{stem}.crt", credential.client_cert_data)
        config.key_file = _write_private(f"{stem}.key", credential.client_key_data)
    # pksweb decides itself when a retry is safe; urllib3's silent retries would
    # triple the time an unreachable cluster holds a sweep.
    config.retries = 0
    config.connection_pool_maxsize = pool_size
    return ApiClient(configuration=config)


def api_client(key: str, credential: Credential) -> ApiClient:
    """The cached client for (``key``, credential); a changed credential builds a new one."""
    cache_key = (key, credential.fingerprint())
    with _lock:
        client = _clients.get(cache_key)
        if client is not None:
            _clients.move_to_end(cache_key)
            return client
    client = build(credential)
    with _lock:
        _clients[cache_key] = client
        while len(_clients) > MAX_CACHED:
            _, old = _clients.popitem(last=False)
            _close(old)
    return client


def _close(client: ApiClient) -> None:
    close: Callable[[], None] = client.close  # the client leaves close() unannotated
    close()


def forget(key: str) -> None:
    """Drop cached clients of ``key`` (a cluster was deleted or its credential replaced)."""
    with _lock:
        for cache_key in [k for k in _clients if k[0] == key]:
            _close(_clients.pop(cache_key))
