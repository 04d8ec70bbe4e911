"""OCSP for the test PKIs: a loopback responder, a client, and the OCPP 2.0.1 hash-data shapes.

- `OcspResponder`: RFC 6960 over HTTP on 127.0.0.1 (port 0 by default), POST (application/
  ocsp-request body) and GET (base64 of the DER request after the path, RFC 6960 Appendix A.1).
  Answers good / revoked / unknown, signed by the issuing CA itself (RFC 6960 §4.2.2.2: the CA
  that issued the certificate may sign; ResponderID byKey), echoing a request nonce. A request
  about an issuer it does not serve gets the "unauthorized" response status. Threaded server in a
  daemon thread; bodies over 64 KiB are refused; every socket read has a timeout.
- `ocsp_status(cert, issuer, url)`: ask a responder, check the response signature (the issuer or
  an issuer-signed delegated responder with id-kp-OCSPSigning) and that it is about `cert`.
- OCPP 2.0.1 data types: `certificate_hash_data` (CertificateHashDataType, InstallCertificate /
  GetInstalledCertificateIds / DeleteCertificate), `ocsp_request_data` (OCSPRequestDataType,
  GetCertificateStatus) and `iso15118_certificate_hash_data` (AuthorizeRequest, ≤ 4 entries).
  Per OCPP 2.0.1 Part 2 (CertificateHashDataType): issuerNameHash = hash of the DER-encoded issuer
  name of the certificate; issuerKeyHash = hash of the issuer's public key, i.e. the value (no tag,
  length or unused-bits octet) of the BIT STRING subjectPublicKey in the issuer's certificate — the
  same two values as an RFC 6960 CertID; serialNumber = the serial in hexadecimal without "0x" and
  without leading zeroes. Hashes are written as lowercase hex, as the serial.
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import hashlib
import os
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Iterable, Literal, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from .crl import CaKey, Revocation, signing_hash

if TYPE_CHECKING:
    from .v2g import V2GPki

HashName = Literal["SHA256", "SHA384", "SHA512"]
CertStatus = Literal["good", "revoked", "unknown"]
MAX_BODY = 64 * 1024
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA1": hashes.SHA1, "SHA256": hashes.SHA256, "SHA384": hashes.SHA384, "SHA512": hashes.SHA512}


class OcspError(RuntimeError):
    """The responder could not be asked, or its answer is unusable (status, signature, subject)."""


# --- hash data (RFC 6960 CertID values, OCPP 2.0.1 data types) -------------------------------

def public_key_bits(cert: x509.Certificate) -> bytes:
    """The contents of the issuer's subjectPublicKey BIT STRING (what issuerKeyHash hashes)."""
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    if isinstance(key, (ed448.Ed448PublicKey, ed25519.Ed25519PublicKey)):
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if isinstance(key, rsa.RSAPublicKey):
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    raise TypeError(f"unsupported issuer key type {type(key).__name__}")


def _digest(name: str, data: bytes) -> bytes:
    if name not in _HASHES:
        raise ValueError(f"unknown hash algorithm {name!r} (SHA256, SHA384 or SHA512)")
    return hashlib.new(name.lower(), data).digest()


def issuer_name_hash(cert: x509.Certificate, hash_algorithm: str = "SHA256") -> bytes:
    """Hash of the DER encoding of `cert`'s issuer name."""
    return _digest(hash_algorithm, cert.issuer.public_bytes())


def issuer_key_hash(issuer: x509.Certificate, hash_algorithm: str = "SHA256") -> bytes:
    """Hash of the issuer's public key bits."""
    return _digest(hash_algorithm, public_key_bits(issuer))


def serial_hex(cert: x509.Certificate) -> str:
    """The serial as OCPP writes it: lowercase hex, no 0x, no leading zeroes."""
    return format(cert.serial_number, "x")


def responder_url(cert: x509.Certificate) -> str | None:
    """The OCSP URL from the certificate's AuthorityInformationAccess, if any."""
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    for d in aia:
        if d.access_method == AuthorityInformationAccessOID.OCSP and isinstance(d.access_location,
                                                                               x509.UniformResourceIdentifier):
            return d.access_location.value
    return None


def certificate_hash_data(cert: x509.Certificate, issuer: x509.Certificate,
                          hash_algorithm: HashName = "SHA256") -> dict[str, str]:
    """OCPP 2.0.1 CertificateHashDataType of `cert` (for a root, pass the root as its own issuer)."""
    if cert.issuer != issuer.subject:
        raise ValueError(f"{issuer.subject.rfc4514_string()} is not the issuer of {cert.subject.rfc4514_string()}")
    return {"hashAlgorithm": hash_algorithm,
            "issuerNameHash": issuer_name_hash(cert, hash_algorithm).hex(),
            "issuerKeyHash": issuer_key_hash(issuer, hash_algorithm).hex(),
            "serialNumber": serial_hex(cert)}


def ocsp_request_data(cert: x509.Certificate, issuer: x509.Certificate, url: str | None = None,
                      hash_algorithm: HashName = "SHA256") -> dict[str, str]:
    """OCPP 2.0.1 OCSPRequestDataType: the hash data plus responderURL (default: the cert's AIA)."""
    url = url or responder_url(cert)
    if not url:
        raise ValueError(f"{cert.subject.rfc4514_string()} has no OCSP URL in its AIA; pass url=")
    return {**certificate_hash_data(cert, issuer, hash_algorithm), "responderURL": url}


def iso15118_certificate_hash_data(chain: Sequence[x509.Certificate], hash_algorithm: HashName = "SHA256",
                                   url: str | None = None) -> list[dict[str, str]]:
    """AuthorizeRequest.iso15118CertificateHashData for a contract chain given leaf → … → root:
    one OCSPRequestDataType per certificate below the root (leaf first), at most 4."""
    if len(chain) < 2:
        raise ValueError("chain must run from the leaf up to and including its root")
    out = [ocsp_request_data(c, chain[i + 1], url, hash_algorithm) for i, c in enumerate(chain[:-1])]
    return out[:4]


# --- responder -------------------------------------------------------------------------------

@dataclass
class _Authority:
    cert: x509.Certificate
    key: CaKey
    known: set[int] = field(default_factory=set)
    revoked: dict[int, Revocation] = field(default_factory=dict)

    def matches(self, name_hash: bytes, key_hash: bytes, algo: str) -> bool:
        return (_digest(algo, self.cert.subject.public_bytes()) == name_hash
                and _digest(algo, public_key_bits(self.cert)) == key_hash)


class OcspResponder:
    """RFC 6960 responder on loopback. Use as a context manager, or start()/stop()."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, path: str = "/ocsp",
                 validity: dt.timedelta = dt.timedelta(hours=1), request_timeout: float = 5.0) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the test OCSP responder only binds to loopback")
        self.host, self.port, self.path = host, port, "/" + path.strip("/")
        self.validity, self.request_timeout = validity, request_timeout
        self._authorities: list[_Authority] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.log: collections.deque[tuple[str, str, str]] = collections.deque(maxlen=1000)  # (method, serial, answer)

    # configuration
    def add_authority(self, ca_cert: x509.Certificate, ca_key: CaKey, issued: Iterable[x509.Certificate | int] = (),
                      revoked: Iterable[Revocation] = ()) -> None:
        """Serve status for certificates issued by `ca_cert`: `issued` are good unless `revoked`."""
        a = _Authority(ca_cert, ca_key)
        for c in issued:
            a.known.add(c if isinstance(c, int) else c.serial_number)
        for r in revoked:
            a.known.add(r.serial)
            a.revoked[r.serial] = r
        with self._lock:
            self._authorities.append(a)

    def revoke(self, ca_cert: x509.Certificate, serial: int, when: dt.datetime | None = None,
               reason: x509.ReasonFlags | None = x509.ReasonFlags.key_compromise) -> None:
        """Revoke one more certificate at run time (a test can flip good → revoked)."""
        with self._lock:
            for a in self._authorities:
                if a.cert == ca_cert:
                    a.known.add(serial)
                    a.revoked[serial] = Revocation(serial, when or dt.datetime.now(dt.timezone.utc), reason)
                    return
        raise KeyError(f"{ca_cert.subject.rfc4514_string()} is not served by this responder")

    @classmethod
    def for_pki(cls, pki: "V2GPki", **kwargs: object) -> "OcspResponder":
        """A responder for every CA of a V2G PKI: each CA's certificates are known, the ones in its
        CRL are revoked (same time and reason as the CRL entry)."""
        r = cls(**kwargs)  # type: ignore[arg-type]
        for ca, crl in pki.crls.items():
            ca_cert = pki.certs[ca]
            issued = [c for n, c in pki.certs.items() if c.issuer == ca_cert.subject and n != ca]
            revoked = [Revocation(e.serial_number, e.revocation_date_utc, _reason(e)) for e in crl]
            r.add_authority(ca_cert, pki.keys[ca], issued, revoked)
        return r

    # the protocol, without HTTP
    def respond(self, der_request: bytes) -> bytes:
        """The DER OCSPResponse for a DER OCSPRequest."""
        try:
            req = ocsp.load_der_ocsp_request(der_request)
            algo = req.hash_algorithm.name.upper().replace("-", "")
            name_hash, key_hash, serial = req.issuer_name_hash, req.issuer_key_hash, req.serial_number
        except Exception:   # noqa: BLE001 — any parse failure is the client's malformed request
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.MALFORMED_REQUEST).public_bytes(serialization.Encoding.DER)
        if algo not in _HASHES:
            return self._unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST, "-", "malformed (hash)")
        with self._lock:
            auth = next((a for a in self._authorities if a.matches(name_hash, key_hash, algo)), None)
            if auth is None:
                return self._unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED, format(serial, "x"), "unauthorized")
            rev = auth.revoked.get(serial)
            status = (ocsp.OCSPCertStatus.REVOKED if rev else
                      ocsp.OCSPCertStatus.GOOD if serial in auth.known else ocsp.OCSPCertStatus.UNKNOWN)
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        b = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=name_hash, issuer_key_hash=key_hash, serial_number=serial,
            algorithm=_HASHES[algo](), cert_status=status, this_update=now - dt.timedelta(minutes=1),
            next_update=now + self.validity, revocation_time=rev.when if rev else None,
            revocation_reason=rev.reason if rev else None,
        ).responder_id(ocsp.OCSPResponderEncoding.HASH, auth.cert)
        try:
            nonce = req.extensions.get_extension_for_class(x509.OCSPNonce).value
            b = b.add_extension(nonce, critical=False)
        except x509.ExtensionNotFound:
            pass
        self.log.append(("OCSP", format(serial, "x"), status.name.lower()))
        return b.sign(auth.key, signing_hash(auth.key)).public_bytes(serialization.Encoding.DER)

    def _safe_respond(self, der_request: bytes) -> bytes:
        try:
            return self.respond(der_request)
        except Exception as exc:   # noqa: BLE001 — a bug or bad key must not kill the handler silently
            return self._unsuccessful(ocsp.OCSPResponseStatus.INTERNAL_ERROR, "-", f"internal error: {exc}")

    def _unsuccessful(self, status: ocsp.OCSPResponseStatus, serial: str, note: str) -> bytes:
        self.log.append(("OCSP", serial, note))
        return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)

    # HTTP
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("responder not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path}"

    def start(self) -> "OcspResponder":
        if self._server is not None:
            return self
        responder = self

        class Handler(BaseHTTPRequestHandler):
            timeout = responder.request_timeout     # socket timeout: a silent client cannot hold a thread
            protocol_version = "HTTP/1.0"

            def log_message(self, fmt: str, *args: object) -> None:   # quiet: tests read .log instead
                pass

            def _reply(self, code: int, body: bytes = b"", ctype: str = "application/ocsp-response") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _ours(self, path: str) -> bool:
                return path == responder.path or path.startswith(responder.path + "/")

            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                if not self._ours(self.path.split("?")[0].rstrip("/") or "/"):
                    return self._reply(404, b"not found", "text/plain")
                try:
                    length = int(self.headers.get("Content-Length", ""))
                except ValueError:
                    return self._reply(411, b"Content-Length required", "text/plain")
                if length < 0 or length > MAX_BODY:
                    return self._reply(413, b"request too large", "text/plain")
                self._reply(200, responder._safe_respond(self.rfile.read(length)))

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?")[0]
                if not path.startswith(responder.path + "/") or len(path) > 4 * MAX_BODY:
                    return self._reply(404, b"not found", "text/plain")
                encoded = urllib.parse.unquote(path[len(responder.path) + 1:])
                try:
                    der = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_"
                                           if ("-" in encoded or "_" in encoded) else None, validate=False)
                except ValueError:
                    der = b""
                self._reply(200, responder._safe_respond(der))

        server_cls = ThreadingHTTPServer
        if ":" in self.host:     # ::1 needs an IPv6 socket
            server_cls = type("ThreadingHTTPServer6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
        server = server_cls((self.host, self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"ocsp-responder:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> "OcspResponder":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _reason(entry: x509.RevokedCertificate) -> x509.ReasonFlags | None:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None


# --- client ----------------------------------------------------------------------------------

def _verify_signature(resp: ocsp.OCSPResponse, signer: x509.Certificate) -> bool:
    key = signer.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            if resp.signature_hash_algorithm is None:
                return False
            key.verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(resp.signature_hash_algorithm))
        elif isinstance(key, (ed448.Ed448PublicKey, ed25519.Ed25519PublicKey)):
            key.verify(resp.signature, resp.tbs_response_bytes)
        elif isinstance(key, rsa.RSAPublicKey) and resp.signature_hash_algorithm is not None:
            key.verify(resp.signature, resp.tbs_response_bytes, PKCS1v15(), resp.signature_hash_algorithm)
        else:
            return False
        return True
    except InvalidSignature:
        return False


def _is_responder(cert: x509.Certificate, resp: ocsp.OCSPResponse) -> bool:
    if resp.responder_name is not None:
        return cert.subject == resp.responder_name
    return resp.responder_key_hash == hashlib.sha1(public_key_bits(cert)).digest()


def _signer(resp: ocsp.OCSPResponse, issuer: x509.Certificate) -> x509.Certificate:
    if _is_responder(issuer, resp):
        return issuer
    for c in resp.certificates:        # delegated responder: issued by the CA, id-kp-OCSPSigning
        if not _is_responder(c, resp):
            continue
        try:
            c.verify_directly_issued_by(issuer)
            eku = c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (InvalidSignature, ValueError, TypeError, x509.ExtensionNotFound):
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING in eku:
            return c
    raise OcspError("OCSP response is signed neither by the issuer nor by a responder the issuer authorised")


def ocsp_status(cert: x509.Certificate, issuer: x509.Certificate, url: str | None = None, *,
                timeout: float = 5.0, hash_algorithm: HashName = "SHA256", method: str = "POST") -> CertStatus:
    """Ask the OCSP responder (default: the URL in `cert`'s AIA) about `cert`: "good", "revoked" or
    "unknown". Raises OcspError when the responder fails or its answer does not check out."""
    url = url or responder_url(cert)
    if not url:
        raise OcspError(f"{cert.subject.rfc4514_string()} has no OCSP URL; pass url=")
    nonce = os.urandom(16)
    req = (ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, _HASHES[hash_algorithm]())
           .add_extension(x509.OCSPNonce(nonce), critical=False).build())
    der = req.public_bytes(serialization.Encoding.DER)
    if method == "POST":
        http_req = urllib.request.Request(url, data=der, method="POST",
                                          headers={"Content-Type": "application/ocsp-request"})
    elif method == "GET":
        http_req = urllib.request.Request(
            url.rstrip("/") + "/" + urllib.parse.quote(base64.b64encode(der).decode(), safe=""), method="GET")
    else:
        raise ValueError("method must be POST or GET")
    try:
        with urllib.request.urlopen(http_req, timeout=timeout) as r:   # noqa: S310 (test tool, http URL expected)
            body = r.read(MAX_BODY + 1)
    except (urllib.error.URLError, OSError) as exc:
        raise OcspError(f"OCSP request to {url} failed: {exc}") from None
    if len(body) > MAX_BODY:
        raise OcspError(f"OCSP response from {url} larger than {MAX_BODY} bytes")
    try:
        resp = ocsp.load_der_ocsp_response(body)
    except ValueError as exc:
        raise OcspError(f"OCSP response from {url} is not DER OCSP: {exc}") from None
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise OcspError(f"OCSP responder {url} answered {resp.response_status.name}")
    if not _verify_signature(resp, _signer(resp, issuer)):
        raise OcspError("OCSP response signature does not verify")
    expected = req
    if (resp.serial_number != cert.serial_number or resp.issuer_name_hash != expected.issuer_name_hash
            or resp.issuer_key_hash != expected.issuer_key_hash):
        raise OcspError("OCSP response is about another certificate")
    try:
        if resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce != nonce:
            raise OcspError("OCSP response nonce does not match the request")
    except x509.ExtensionNotFound:
        pass   # nonces are optional for responders (RFC 6960 / 8954)
    return {ocsp.OCSPCertStatus.GOOD: "good", ocsp.OCSPCertStatus.REVOKED: "revoked",
            ocsp.OCSPCertStatus.UNKNOWN: "unknown"}[resp.certificate_status]  # type: ignore[return-value]
