"""What a real Synapse of the lab and the rogue homeserver have in common: a federation peer.

Both satisfy :class:`FederationPeer`: a server name, the HTTPS base URL of its federation
listener, and the signing key it signs requests and events with (a ``servership.SigningKey``).
:func:`signed_request` sends one server-server request as any peer, signed with X-Matrix by
servership's own signing code, over TLS that trusts the lab's private CA only.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Protocol

import servership

HTTP_TIMEOUT = 15.0


class FederationPeer(Protocol):
    """A homeserver other servers can reach and that can sign as itself."""

    @property
    def server_name(self) -> str: ...

    @property
    def federation_url(self) -> str: ...

    def federation_signing_key(self) -> servership.SigningKey: ...


def lab_ssl_context(ca_path: Path) -> ssl.SSLContext:
    """A client TLS context that trusts the lab's CA and nothing else."""
    return ssl.create_default_context(cafile=str(ca_path))


def http_request(method: str, url: str, *, raw: bytes | None = None,
                 headers: dict[str, str] | None = None,
                 ssl_context: ssl.SSLContext | None = None,
                 timeout: float = HTTP_TIMEOUT) -> tuple[int, Any]:
    """One HTTP request without proxies; returns (status, parsed JSON or text). HTTP errors
    are answers, not exceptions."""
    req = urllib.request.Request(url, data=raw, method=method)
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    handlers: list[Any] = [urllib.request.ProxyHandler({})]
    if ssl_context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=ssl_context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(req, timeout=timeout) as r:
            status, payload = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, payload = e.code, e.read()
    try:
        return status, json.loads(payload)
    except ValueError:
        return status, payload.decode(errors="replace")


def signed_request(origin: FederationPeer, destination: FederationPeer, method: str, path: str,
                   body: Any = None, *, ca_path: Path, raw: bytes | None = None,
                   origin_name: str | None = None,
                   timeout: float = HTTP_TIMEOUT) -> tuple[int, Any]:
    """``method path`` to ``destination``, signed as ``origin``. ``origin_name`` signs under
    another spelling of the origin's name (``LOCALHOST:port``, a trailing dot, ...); ``raw``
    sends exact bytes (signed as the JSON they parse to)."""
    name = origin_name or origin.server_name
    data = raw if raw is not None else (None if body is None else servership.canonical_json(body))
    content = None if data is None else json.loads(data)
    key = origin.federation_signing_key()
    if origin_name is None:
        header = servership.sign_request(method, path, name, destination.server_name, content,
                                         key)
    else:
        # A spelling servership itself would refuse to sign as (a trailing dot, say): sign the
        # request object by hand, as the spec defines it, so the peer decides.
        request: dict[str, Any] = {"method": method, "uri": path, "origin": name,
                                   "destination": destination.server_name}
        if content is not None:
            request["content"] = content
        sig = key.sign(servership.canonical_json(request))
        header = (f'X-Matrix origin="{name}",destination="{destination.server_name}",'
                  f'key="{key.key_id}",sig="{sig}"')
    return http_request(method, destination.federation_url + path, raw=data,
                        headers={"Authorization": header},
                        ssl_context=lab_ssl_context(ca_path), timeout=timeout)
