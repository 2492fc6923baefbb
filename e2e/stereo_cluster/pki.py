"""Certificates and keys for the local control plane.

The API server authenticates every component by client certificate (the way kubeadm
clusters do), so RBAC and the Node authorizer see real user names and groups.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=365)

# The in-cluster names that pods use to reach the API server (plus, per cluster, the
# `kubernetes` Service's IP: see CertificateAuthority.serving).
API_SERVER_SANS = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


class CertificateAuthority:
    """A throwaway CA that signs the serving certificate and the client certificates."""

    def __init__(self, directory: Path, key: ec.EllipticCurvePrivateKey) -> None:
        self.directory = directory
        self._key = key
        self._name = _name("stereo-local-ca")
        self.cert = directory / "ca.crt"

    @classmethod
    def create(cls, directory: Path) -> CertificateAuthority:
        directory.mkdir(parents=True, exist_ok=True)
        ca = cls(directory, _new_key())
        cert = (
            _builder(ca._name, ca._name, ca._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca._key, hashes.SHA256())
        )
        ca.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(ca._key, directory / "ca.key")
        return ca

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        """The CA of a running cluster, to issue more client certificates (new nodes)."""
        key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError(f"{directory / 'ca.key'} is not an EC key")
        return cls(directory, key)

    def _issue(
        self, stem: str, builder: x509.CertificateBuilder, key: ec.EllipticCurvePrivateKey
    ) -> KeyPair:
        cert = builder.sign(self._key, hashes.SHA256())
        pair = KeyPair(cert=self.directory / f"{stem}.crt", key=self.directory / f"{stem}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, pair.key)
        return pair

    def serving(self, stem: str, service_ip: str) -> KeyPair:
        """The API server's certificate, valid for 127.0.0.1 and `service_ip`, the first IP
        of the cluster's Service range, where in-cluster clients reach it."""
        return self._serving(stem, "kube-apiserver", API_SERVER_SANS, ("127.0.0.1", service_ip))

    def node_serving(self, stem: str, node_name: str) -> KeyPair:
        """A node agent's kubelet-API certificate: the API server reaches every node at
        127.0.0.1 (its InternalIP) and verifies this against the cluster CA."""
        return self._serving(stem, f"system:node:{node_name}", (node_name,), ("127.0.0.1",))

    def _serving(
        self, stem: str, common_name: str, names: tuple[str, ...], ips: tuple[str, ...]
    ) -> KeyPair:
        key = _new_key()
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        builder = (
            _builder(_name(common_name), self._name, key.public_key())
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        )
        return self._issue(stem, builder, key)

    def client(self, stem: str, user: str, group: str | None = None) -> KeyPair:
        key = _new_key()
        builder = _builder(_name(user, group), self._name, key.public_key()).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        return self._issue(stem, builder, key)


def service_account_keys(directory: Path) -> KeyPair:
    """The key pair that signs and verifies service-account tokens (cert holds the public key)."""
    key = _new_key()
    pair = KeyPair(cert=directory / "sa.pub", key=directory / "sa.key")
    _write_key(key, pair.key)
    pair.cert.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pair
