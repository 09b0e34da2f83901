"""A real SMTP server on loopback for the e-mail notification tests (aiosmtpd), and a test certificate.

`MailServer` keeps every message it accepted; it can be stopped and started again on the same
port (a mail server that is down, then back). With `tls` it offers STARTTLS with a certificate
made for 127.0.0.1 (`certificate`), with `login` it asks for that user name and password, and
with `delay` it takes that long to accept each message (a slow mail server).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Received:
    """One message as the mail server received it."""

    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def body(self) -> str:
        """The message's text."""
        return self.message.get_content()


@dataclass
class _Handler:
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    delay: float = 0.0  # seconds before answering each message (a slow mail server)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


def certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate (and key) for 127.0.0.1, written to `folder`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


class MailServer:
    """aiosmtpd on 127.0.0.1:`port`; `received` holds what it accepted (kept across restarts)."""

    def __init__(
        self,
        port: int,
        tls: tuple[Path, Path] | None = None,
        login: tuple[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.port = port
        self.handler = _Handler(delay=delay)
        self.tls = tls
        self.login = login
        self.controller: Controller | None = None

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and self.login == (data.login.decode(), data.password.decode())
        return AuthResult(success=ok, handled=False)  # refused: the server answers 535

    def start(self) -> MailServer:
        """Listen (again)."""
        options: dict[str, Any] = {}
        if self.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*map(str, self.tls))
            options.update(tls_context=context, require_starttls=True)
        if self.login:
            options.update(authenticator=self._authenticate, auth_required=True)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **options)
        self.controller.start()
        return self

    def stop(self) -> None:
        """Stop listening (the mail server is down)."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def received(self) -> list[Received]:
        """Every message accepted so far."""
        with self.handler.lock:
            return list(self.handler.received)

    def to(self, address: str) -> list[Received]:
        """The messages addressed to `address`."""
        return [r for r in self.received if address in r.recipients]

    def wait_for(self, count: int, timeout: float = 60.0) -> list[Received]:
        """Wait until at least `count` messages arrived (or `timeout` passed); what arrived."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.received

    def __enter__(self) -> MailServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
