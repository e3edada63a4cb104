"""TLS for the console: the server context (client certificates required, CRL checked) and the peer certificate per request.

uvicorn does not put the client certificate into the ASGI scope, so the HTTP protocol is
subclassed: when a connection is made (after the TLS handshake, so the certificate is verified)
it reads the peer certificate from the transport's SSL object and hands it to every request of
that connection in `scope["extensions"]["watchstander.peer_cert"]`. Nothing from the request
(headers, form fields) can set it.

A CRL reload loads the file again into the live context: OpenSSL keeps every CRL it was given
and, of two from the same issuer, uses the one issued last, so a fresher CRL takes effect for
the next handshake without restarting the listener.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..config.console import ConsoleConfig
from ..errors import ConfigError

PEER_EXTENSION = "watchstander.peer_cert"

Scope = MutableMapping[str, Any]
AsgiApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def _problem(key: str, message: str) -> ConfigError:
    return ConfigError(f"[console] {key}: {message}", [(f"console.{key}", message)])


def load_crl(context: ssl.SSLContext, path: Path) -> None:
    """Load a CRL file (PEM or DER) into the context's trust store; raises ConfigError naming the file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _problem("crl", f"cannot read {path}: {exc.strerror}") from exc
    try:
        crl = x509.load_pem_x509_crl(raw) if b"-----BEGIN" in raw else x509.load_der_x509_crl(raw)
    except ValueError as exc:
        raise _problem("crl", f"{path} is not a CRL (PEM or DER)") from exc
    # The ssl module loads CRLs only from PEM files; a DER file is converted through a private temp file.
    with tempfile.NamedTemporaryFile(prefix="watchstander-crl-", suffix=".pem") as tmp:
        tmp.write(crl.public_bytes(serialization.Encoding.PEM))
        tmp.flush()
        try:
            context.load_verify_locations(cafile=tmp.name)
        except ssl.SSLError as exc:
            raise _problem("crl", f"{path} was not accepted: {exc.reason or exc}") from exc


def server_context(config: ConsoleConfig) -> ssl.SSLContext:
    """The console's TLS context: its certificate, and for mtls the client CA bundles and CRL."""
    if config.cert_file is None or config.key_file is None:
        raise _problem("cert_file", "the console needs cert_file and key_file (TLS is always on)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.cert_file, config.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise _problem("cert_file", f"cannot load {config.cert_file} with {config.key_file}: {exc}") from exc
    if config.auth == "proxy":
        context.verify_mode = ssl.CERT_NONE  # the proxy authenticated the user; see docs/console.md
        return context
    context.verify_mode = ssl.CERT_REQUIRED
    if not config.client_ca:
        raise _problem("client_ca", "mutual TLS needs at least one CA bundle")
    for bundle in config.client_ca:
        try:
            context.load_verify_locations(cafile=bundle)
        except (OSError, ssl.SSLError) as exc:
            raise _problem("client_ca", f"cannot load {bundle}: {exc}") from exc
    if config.crl is not None:
        load_crl(context, config.crl)
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return context


def with_peer_certificate(app: AsgiApp, der: bytes | None) -> AsgiApp:
    """`app` with the connection's verified peer certificate (DER, or None) in every request's scope."""
    async def wrapped(scope: Scope, receive: Callable[[], Awaitable[Any]],
                      send: Callable[[Any], Awaitable[None]]) -> None:
        extensions = scope.get("extensions")
        if not isinstance(extensions, dict):
            extensions = {}
            scope["extensions"] = extensions
        extensions[PEER_EXTENSION] = der
        await app(scope, receive, send)

    return wrapped


class PeerCertificateProtocol(H11Protocol):
    """uvicorn's h11 protocol, passing the TLS peer certificate of the connection to the app."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Read the verified peer certificate once, when the connection (and its handshake) is made."""
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        self.app = with_peer_certificate(self.app, der)


def peer_certificate(scope: Scope) -> bytes | None:
    """The DER peer certificate the protocol recorded for this request's connection (None without one)."""
    extensions = scope.get("extensions")
    value = extensions.get(PEER_EXTENSION) if isinstance(extensions, dict) else None
    return value if isinstance(value, bytes) else None
