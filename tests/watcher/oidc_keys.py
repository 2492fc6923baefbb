"""Signing keys for Pub/Sub push tokens, published the way Google publishes its own.

RSA keys generated here, each with a self-signed certificate, served by a local HTTP server
as ``{key id: PEM certificate}`` (the format of https://www.googleapis.com/oauth2/v1/certs)
with a Cache-Control max-age; tokens are signed with google-auth's RSASigner and carry the
claims Pub/Sub puts in a push subscription's OIDC token.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt
from google.auth import jwt as google_jwt

PUSH_ACCOUNT = "stereo-push@films-project.iam.gserviceaccount.com"


def _key_and_certificate(kid: str) -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, kid)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return private, certificate.public_bytes(serialization.Encoding.PEM).decode()


class SigningKeys:
    def __init__(self, max_age: int = 3600) -> None:
        self.published: dict[str, str] = {}
        self._private: dict[str, bytes] = {}
        self.fetches = 0
        self.failing = False
        keys = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                keys.fetches += 1
                if keys.failing:
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps(keys.published).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Cache-Control", f"public, max-age={max_age}, must-revalidate")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    @property
    def certs_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/oauth2/v1/certs"

    def add(self, kid: str, publish: bool = True) -> None:
        private, certificate = _key_and_certificate(kid)
        self._private[kid] = private
        if publish:
            self.published[kid] = certificate

    def token(self, kid: str, audience: str, signed_by: str | None = None, **claims: Any) -> str:
        """A push token: signed with signed_by's key (default: kid's), headed with kid."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "aud": audience,
            "azp": "113774264463038321964",
            "email": PUSH_ACCOUNT,
            "email_verified": True,
            "exp": now + 3600,
            "iat": now,
            "iss": "https://accounts.google.com",
            "sub": "113774264463038321964",
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        signer = crypt.RSASigner.from_string(self._private[signed_by or kid], key_id=kid)
        return google_jwt.encode(signer, payload).decode()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
