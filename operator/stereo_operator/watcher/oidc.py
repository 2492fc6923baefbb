"""The OIDC token a Pub/Sub push subscription sends: ``Authorization: Bearer <JWT>``.

Pub/Sub signs it as the push subscription's service account, with Google's keys. It is
verified with google-auth (``google.oauth2.id_token.verify_token``): signature against the
keys published at ``certs_url``, expiry, the audience configured on the subscription (by
default the push endpoint's URL); then the issuer and, when configured, the service
account's email (``email`` claim, ``email_verified`` true).

google-auth fetches the certificates through the ``request`` it is given on every call;
here that is a caching request that keeps a successful answer for its Cache-Control
max-age (Google rotates keys daily and publishes them well ahead), so verifying costs no
round trip. A token signed with a key id the cache does not know yet fetches them again (at
most once every ``MIN_REFETCH_SECONDS``, so made-up key ids cost nothing). Blocking: call it
from a worker thread.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.auth import exceptions as auth_exceptions
from google.auth import transport
from google.oauth2 import id_token

from stereo_operator.watcher.config import GOOGLE_CERTS_URL, GOOGLE_ISSUERS, PubSubOidcConfig

DEFAULT_MAX_AGE_SECONDS = 300.0
MAX_AGE_CAP_SECONDS = 24 * 3600.0
MIN_REFETCH_SECONDS = 30.0
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age=(\d+)", re.IGNORECASE)


class InvalidToken(Exception):
    """The token is not acceptable (the message says why): answer 401."""


class CertsUnavailable(Exception):
    """The signing keys could not be fetched: answer 503 so Pub/Sub retries."""


@dataclass(slots=True)
class _Cached:
    response: transport.Response
    expires: float


class CachingRequest(transport.Request):
    """A google.auth transport Request that keeps successful GET answers for their
    Cache-Control max-age. Thread-safe."""

    def __init__(
        self,
        inner: transport.Request | None = None,
        *,
        timeout: float = 10.0,
        clock: Any = time.monotonic,
    ) -> None:
        if inner is None:
            from google.auth.transport.requests import Request

            inner = Request()
        self._inner = inner
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, _Cached] = {}
        self._refreshed: dict[str, float] = {}
        self.fetches = 0

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> transport.Response:
        if method != "GET":
            return self._inner(url, method=method, body=body, headers=headers, timeout=timeout)
        with self._lock:
            now = self._clock()
            cached = self._cache.get(url)
            if cached is not None and now < cached.expires:
                return cached.response
            self.fetches += 1
            response = self._inner(
                url, method="GET", headers=headers, timeout=timeout or self._timeout
            )
            if response.status == 200:
                self._cache[url] = _Cached(response, now + _max_age(response.headers))
            return response

    def refresh_allowed(self, url: str) -> bool:
        """Forget url's answer so that the next call fetches it again, unless that was
        done less than MIN_REFETCH_SECONDS ago; whether it was forgotten."""
        with self._lock:
            now = self._clock()
            last = self._refreshed.get(url)
            if last is not None and now - last < MIN_REFETCH_SECONDS:
                return False
            self._refreshed[url] = now
            self._cache.pop(url, None)
            return True


def _max_age(headers: Mapping[str, str]) -> float:
    value = next((v for k, v in headers.items() if k.lower() == "cache-control"), "")
    match = _MAX_AGE.search(value)
    seconds = float(match.group(1)) if match else DEFAULT_MAX_AGE_SECONDS
    return min(seconds, MAX_AGE_CAP_SECONDS)


class OidcVerifier:
    def __init__(
        self,
        audience: str,
        *,
        service_account_email: str | None = None,
        certs_url: str = GOOGLE_CERTS_URL,
        issuers: Sequence[str] = GOOGLE_ISSUERS,
        clock_skew_seconds: int = 10,
        request: transport.Request | None = None,
    ) -> None:
        self.audience = audience
        self.service_account_email = service_account_email
        self.certs_url = certs_url
        self.issuers = frozenset(issuers)
        self._skew = clock_skew_seconds
        self.request = request if isinstance(request, CachingRequest) else CachingRequest(request)

    @classmethod
    def from_config(cls, config: PubSubOidcConfig) -> OidcVerifier:
        return cls(
            config.audience,
            service_account_email=config.service_account_email,
            certs_url=config.certs_url,
            issuers=config.issuers,
            clock_skew_seconds=config.clock_skew_seconds,
        )

    def verify(self, token: str) -> Mapping[str, Any]:
        """The token's claims; InvalidToken or CertsUnavailable otherwise."""
        try:
            claims = self._decode(token)
        except InvalidToken as exc:
            # A key Google started signing with after the cached answer: fetch once more.
            if "key id" not in str(exc) or not self.request.refresh_allowed(self.certs_url):
                raise
            claims = self._decode(token)
        issuer = claims.get("iss")
        if issuer not in self.issuers:
            raise InvalidToken(f"issuer {issuer!r} is not one of {sorted(self.issuers)}")
        if self.service_account_email is not None:
            email = claims.get("email")
            if email != self.service_account_email:
                raise InvalidToken(
                    f"token of {email!r}, not of the push service account "
                    f"{self.service_account_email!r}"
                )
            if claims.get("email_verified") is not True:
                raise InvalidToken(f"the email {email!r} of the token is not verified")
        return claims

    def _decode(self, token: str) -> Mapping[str, Any]:
        try:
            return dict(
                id_token.verify_token(
                    token,
                    self.request,
                    audience=self.audience,
                    certs_url=self.certs_url,
                    clock_skew_in_seconds=self._skew,
                )
            )
        except auth_exceptions.TransportError as exc:
            raise CertsUnavailable(
                f"cannot fetch the signing keys ({self.certs_url}): {exc}"
            ) from None
        except (ValueError, auth_exceptions.GoogleAuthError) as exc:
            raise InvalidToken(str(exc)) from None
        except Exception as exc:  # e.g. requests' ConnectionError from the transport
            if _is_transport_failure(exc):
                raise CertsUnavailable(
                    f"cannot fetch the signing keys ({self.certs_url}): {exc}"
                ) from None
            raise InvalidToken(f"{type(exc).__name__}: {exc}") from None


def _is_transport_failure(exc: Exception) -> bool:
    return isinstance(exc, OSError | TimeoutError) or type(exc).__module__.startswith(
        ("requests", "urllib3")
    )


def looks_like_jwt(token: str) -> bool:
    """Three base64url parts: worth handing to the verifier."""
    parts = token.split(".")
    return len(parts) == 3 and all(re.fullmatch(r"[A-Za-z0-9_-]+", p) for p in parts[:2])
