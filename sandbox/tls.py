"""The sandbox's own certificate authority and serving certificate, as every real cluster has.

Each ``Sandbox`` makes a fresh CA and a server certificate for the address it serves
(IP SANs 127.0.0.1 and the host it binds, DNS SAN localhost), with ECDSA P-256 keys:
cheap to make (milliseconds) and cheap to handshake with. Nothing touches the disk for
longer than Python's TLS stack needs to load the key (``ssl`` reads key pairs only from
files): a private 0700 temporary directory, removed at once.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import socket
import ssl
import tempfile
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

WILDCARD_HOSTS = ("", "0.0.0.0", "::")


def _alternative_names(host: str) -> list[x509.GeneralName]:
    ips = {ipaddress.ip_address("127.0.0.1")}
    dns = {"localhost"}
    if host in WILDCARD_HOSTS:
        # Bound to every address: the names this machine answers to as well.
        ips.add(ipaddress.ip_address("::1"))
        dns.add(socket.gethostname())
    else:
        try:
            ips.add(ipaddress.ip_address(host))
        except ValueError:
            dns.add(host)
    return [*(x509.IPAddress(ip) for ip in sorted(ips, key=str)), *(x509.DNSName(name) for name in sorted(dns))]


@dataclass(frozen=True)
class Authority:
    """A CA (its certificate in PEM) and a server certificate it signed, with the server's key."""

    ca_pem: str
    cert_pem: str
    key_pem: str

    @classmethod
    def create(cls, host: str, *, days: int = 365) -> Authority:
        now = datetime.datetime.now(datetime.UTC)
        start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=days)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sandbox-ca")])
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
        ca = (
            x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ca_ski, critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(_alternative_names(host)), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        return cls(
            ca_pem=ca.public_bytes(serialization.Encoding.PEM).decode(),
            cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
            key_pem=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode(),
        )

    def server_context(self) -> ssl.SSLContext:
        """What the server listens with (HTTP/1.1 offered by ALPN, as the sandbox speaks no HTTP/2)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])
        with tempfile.TemporaryDirectory(prefix="sandbox-tls-") as folder:
            os.chmod(folder, 0o700)
            path = os.path.join(folder, "server.pem")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(self.key_pem + self.cert_pem)
            context.load_cert_chain(path)
        return context

    @cached_property
    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA alone and checks the host name (for httpx and the like)."""
        return ssl.create_default_context(cadata=self.ca_pem)


def endpoint(kubeconfig: dict[str, Any]) -> tuple[str, str, ssl.SSLContext | bool]:
    """(server URL, bearer token, what to verify the server with) from a sandbox kubeconfig, for tools and
    benchmarks that talk to the control endpoints over plain HTTP clients (``httpx.get(..., verify=...)``)."""
    cluster, user = kubeconfig["clusters"][0]["cluster"], kubeconfig["users"][0]["user"]
    ca = cluster.get("certificate-authority-data")
    verify: ssl.SSLContext | bool = ssl.create_default_context(cadata=base64.b64decode(ca).decode()) if ca else True
    return cluster["server"], user.get("token", ""), verify
