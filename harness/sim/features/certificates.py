"""Certificate management of both simulators: A02/A03 (station certificate), M01–M06 (ISO 15118
certificate management) in OCPP 2.0.1, and the certificate messages of the OCPP 1.6 security
extension (whitepaper edition 3).

Station simulator — a certificate store per simulator (kept over reboots), seeded with the fixture
CSMS root (`CSMSRootCertificate` / 1.6 `CentralSystemRootCertificate`) and manufacturer root
(see `_certificates_fixture`):
- TriggerMessage SignChargingStationCertificate / SignV2GCertificate (2.0.1), ExtendedTriggerMessage
  SignChargePointCertificate (1.6), and the out-of-band action `renew_certificate` (A03): a new EC
  P-256 key and a real PKCS#10 CSR (CN = station id, O = operator) in SignCertificate.
- CertificateSigned: the chain (leaf first) must verify up to an installed root of the right kind
  (CSMS root for the station certificate, V2G root for the V2G certificate), be valid now, and the
  leaf must name this station (CN = its identity); otherwise Rejected and a SecurityEventNotification
  InvalidChargingStationCertificate (1.6: InvalidChargePointCertificate) (A02.FR.06-08). The
  simulator does not insist on the key of its last CSR, so that cases can bring fixed certificates.
- InstallCertificate (M05): a CA certificate, valid now → Accepted; else Rejected, and for a CSMS
  root a SecurityEventNotification InvalidCsmsCertificate (1.6: InvalidCentralSystemCertificate).
- GetInstalledCertificateIds (M03), DeleteCertificate (M04; the station's own certificate cannot
  be deleted: Failed, M04.FR.06).
- Out-of-band `check_certificate_status` (M06: GetCertificateStatus for the station's fixture SECC
  certificate) and `ev_certificate_request` {action Install|Update, exi_request} (M01/M02: the EV's
  EXI request passed through in Get15118EVCertificate).

CSMS simulator — answers SignCertificate (Accepted, then CertificateSigned with the CSR signed by
the fixture CSMS sub-CA, chain = leaf + sub-CA), GetCertificateStatus (OCSP: answered from the
fixture CAs it holds, else asked of the responderURL), Get15118EVCertificate (Accepted with an
exiResponse); operator actions install_certificate, get_installed_certificate_ids,
delete_certificate (both editions) and extended_trigger_message (1.6).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness.pki.ocsp import certificate_hash_data, issuer_key_hash, serial_hex

from ..api import Fault, Reply
from . import Feature, feature_state
from . import _certificates_fixture as fixture
from ._chain import delegate
from .security import send_security_event

if TYPE_CHECKING:
    from ..csms import CsmsSimulator, StationState
    from ..station import FrontEnd, StationSimulator

NAME = "certificates"
ISO2_SCHEMA = "urn:iso:15118:2:2013:MsgDef"
# 1.6 names of the two root kinds it knows ↔ the 2.0.1 names the store uses.
_USE16 = {"CentralSystemRootCertificate": "CSMSRootCertificate", "ManufacturerRootCertificate": "ManufacturerRootCertificate"}
_USE16_BACK = {v: k for k, v in _USE16.items()}
_HASHES = {"SHA256": hashes.SHA256, "SHA384": hashes.SHA384, "SHA512": hashes.SHA512}


# ---- certificates as the station holds them ----------------------------------------------------

def load_chain(pem: str) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, in order (leaf first); ValueError when none parses."""
    try:
        chain = x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise ValueError(f"not a PEM certificate chain: {exc}") from None
    if not chain:
        raise ValueError("no certificate in the chain")
    return chain


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _valid_now(cert: x509.Certificate) -> bool:
    return cert.not_valid_before_utc <= _now() <= cert.not_valid_after_utc


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def chain_problem(chain: list[x509.Certificate], anchors: list[x509.Certificate], identity: str,
                  skip: frozenset[str] = frozenset()) -> str | None:
    """Why a station must refuse this signed chain (None: it is good). `skip` names checks a
    fault leaves out: "signature", "validity", "identity"."""
    leaf = chain[0]
    if "signature" not in skip:
        for cert, issuer in zip(chain, chain[1:]):
            if not _signed_by(cert, issuer):
                return f"{cert.subject.rfc4514_string()} is not signed by the next certificate in the chain"
        top = chain[-1]
        if not any(top == a or (top.issuer == a.subject and _signed_by(top, a)) for a in anchors):
            return "the chain does not lead to an installed root of this kind"
    if "validity" not in skip:
        for cert in chain:
            if not _valid_now(cert):
                return f"{cert.subject.rfc4514_string()} is not valid now (until {cert.not_valid_after_utc:%Y-%m-%d})"
    if "identity" not in skip and _common_name(leaf) != identity:
        return f"leaf CN {_common_name(leaf)!r} is not this station ({identity!r})"
    return None


@dataclass
class _Installed:
    use: str                                     # 2.0.1 GetCertificateIdUseEnumType name
    cert: x509.Certificate
    issuer: x509.Certificate                     # itself for a root


@dataclass
class _Store:
    installed: list[_Installed] = field(default_factory=list)
    station_cert: list[x509.Certificate] | None = None      # the accepted ChargingStationCertificate chain
    v2g_cert: list[x509.Certificate] | None = None
    csr_key: ec.EllipticCurvePrivateKey | None = None       # key of the last CSR (a new one each time)

    def roots(self, use: str) -> list[x509.Certificate]:
        return [i.cert for i in self.installed if i.use == use]

    def find(self, wanted: dict[str, Any]) -> _Installed | None:
        algo = str(wanted.get("hashAlgorithm", "SHA256"))
        for item in self.installed:
            if _hash_data(item, algo) == _normalised(wanted):
                return item
        return None


def _normalised(h: dict[str, Any]) -> tuple[str, str, str]:
    return (str(h.get("issuerNameHash", "")).lower(), str(h.get("issuerKeyHash", "")).lower(),
            str(h.get("serialNumber", "")).lower().lstrip("0") or "0")


def _hash_data(item: _Installed, algo: str) -> tuple[str, str, str]:
    return _normalised(certificate_hash_data(item.cert, item.issuer, algo))   # type: ignore[arg-type]


def _store(front: "FrontEnd") -> _Store:
    def seed() -> _Store:
        s = _Store()
        for name, use in (("csms_root", "CSMSRootCertificate"), ("manufacturer_root", "ManufacturerRootCertificate")):
            c = fixture.cert(name)
            s.installed.append(_Installed(use, c, c))
        if front.sim.cfg.tls_ca:     # profiles 2-3: the root its TLS connection really trusts
            try:
                for c in x509.load_pem_x509_certificates(open(front.sim.cfg.tls_ca, "rb").read()):
                    s.installed.append(_Installed("CSMSRootCertificate", c, c))
            except (OSError, ValueError):
                pass                 # the transport reports an unusable CA file itself
        return s
    return feature_state(front, NAME, seed)


def _report_hash(front: "FrontEnd", item: _Installed, algo: str = "SHA256") -> dict[str, str]:
    data = certificate_hash_data(item.cert, item.issuer, algo)   # type: ignore[arg-type]
    if front.sim.has("installed_ids_wrong_hash"):
        # the bug: hashes the issuer's whole SubjectPublicKeyInfo instead of the key bits
        spki = item.issuer.public_key().public_bytes(serialization.Encoding.DER,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo)
        data["issuerKeyHash"] = hashlib.new(algo.lower(), spki).hexdigest()
    return data


# ---- station: CSR --------------------------------------------------------------------------

def make_csr(front: "FrontEnd") -> str:
    """A new key pair and its PEM CSR: CN = the station's identity, O = the operator (A02.FR.02/03)."""
    key = ec.generate_private_key(ec.SECP256R1())
    _store(front).csr_key = key
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, front.sim.cfg.station_id),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, fixture.OPERATOR)])
    signer = ec.generate_private_key(ec.SECP256R1()) if front.sim.has("csr_signed_with_other_key") else key
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(signer, hashes.SHA256())
    if signer is not key:                  # the bug: the request carries one public key, is signed by another
        csr = _swap_public_key(csr, key)
    if front.sim.has("csr_not_pem"):       # the bug: base64 DER without the PEM armour
        return base64.b64encode(csr.public_bytes(serialization.Encoding.DER)).decode()
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _swap_public_key(csr: x509.CertificateSigningRequest, key: ec.EllipticCurvePrivateKey) -> x509.CertificateSigningRequest:
    """Graft `key`'s public key into `csr` without re-signing: its self-signature no longer verifies."""
    other = csr.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    mine = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return x509.load_der_x509_csr(csr.public_bytes(serialization.Encoding.DER).replace(other, mine))


def _send_csr(front: "FrontEnd", use: str | None, triggered: bool) -> None:
    payload: dict[str, Any] = {"csr": make_csr(front)}
    if front.version == "2.0.1" and use is not None:
        if front.sim.has("csr_wrong_certificate_type"):
            use = "V2GCertificate" if use == "ChargingStationCertificate" else "ChargingStationCertificate"
        payload["certificateType"] = use
    if triggered:
        front.sim.send_triggered("SignCertificate", payload)
    else:
        front.sim.enqueue("SignCertificate", payload)


_TRIGGER201 = {"SignChargingStationCertificate": "ChargingStationCertificate", "SignV2GCertificate": "V2GCertificate"}


async def _trigger201(front: "FrontEnd", p: dict[str, Any]) -> Reply:
    use = _TRIGGER201.get(p["requestedMessage"])
    if use is None:
        return await delegate(front, "TriggerMessage", p, NAME)

    async def send() -> None:
        _send_csr(front, use, triggered=True)
    return Reply({"status": "Accepted"}, None if front.sim.has("trigger_ignored") else send)


async def _extended_trigger16(front: "FrontEnd", p: dict[str, Any]) -> Reply:
    """1.6 ExtendedTriggerMessage: the certificate request here, the classic messages as TriggerMessage."""
    what = p["requestedMessage"]
    if what == "SignChargePointCertificate":
        async def send() -> None:
            _send_csr(front, None, triggered=True)
        return Reply({"status": "Accepted"}, None if front.sim.has("trigger_ignored") else send)
    if what in ("BootNotification", "Heartbeat", "MeterValues", "StatusNotification", "FirmwareStatusNotification"):
        return await delegate(front, "TriggerMessage", p, NAME)
    return Reply({"status": "NotImplemented"})


# ---- station: CertificateSigned ---------------------------------------------------------------

def _invalid_event(front: "FrontEnd") -> str:
    return "InvalidChargingStationCertificate" if front.version == "2.0.1" else "InvalidChargePointCertificate"


def _skipped_checks(front: "FrontEnd") -> frozenset[str]:
    skip = {"signature": "accepts_unsigned_chain", "validity": "accepts_expired_certificate",
            "identity": "accepts_certificate_for_other_identity"}
    return frozenset(check for check, fault in skip.items() if front.sim.has(fault))


async def _certificate_signed(front: "FrontEnd", p: dict[str, Any]) -> Reply:
    store = _store(front)
    use = p.get("certificateType", "ChargingStationCertificate")
    try:
        chain = load_chain(p["certificateChain"])
        anchors = store.roots("V2GRootCertificate" if use == "V2GCertificate" else "CSMSRootCertificate")
        problem = chain_problem(chain, anchors, front.sim.cfg.station_id, _skipped_checks(front))
    except ValueError as exc:
        chain, problem = [], str(exc)
    if problem is None:
        if use == "V2GCertificate":
            store.v2g_cert = chain
        else:
            store.station_cert = chain     # used for profile-3 connections from now on (not simulated)
        return Reply({"status": "Accepted"})

    async def report() -> None:
        if not front.sim.has("no_security_event_on_invalid_cert"):
            send_security_event(front, _invalid_event(front), problem)
    status = {"status": "Rejected"}
    if front.version == "2.0.1":
        status["statusInfo"] = {"reasonCode": "InvalidCertificate", "additionalInfo": problem[:512]}  # type: ignore[assignment]
    return Reply(status, report)


# ---- station: install / list / delete ---------------------------------------------------------

def _store_use(front: "FrontEnd", wire_use: str) -> str:
    use = _USE16.get(wire_use, wire_use) if front.version == "1.6" else wire_use
    if front.sim.has("install_certificate_wrong_type"):
        return "CSMSRootCertificate"        # the bug: every root lands in the CSMS trust store
    return use


async def _install_certificate(front: "FrontEnd", p: dict[str, Any]) -> Reply:
    store = _store(front)
    wire_use = p["certificateType"]
    use = _store_use(front, wire_use)
    problem = None
    try:
        cert = load_chain(p["certificate"])[0]
        if not _is_ca(cert):
            problem = "not a CA certificate"
        elif not _valid_now(cert) and not front.sim.has("accepts_expired_certificate"):
            problem = f"not valid now (until {cert.not_valid_after_utc:%Y-%m-%d})"
    except ValueError as exc:
        problem = str(exc)
    if problem is not None:
        async def report() -> None:
            if use == "CSMSRootCertificate" and not front.sim.has("no_security_event_on_invalid_cert"):
                send_security_event(front, "InvalidCsmsCertificate" if front.version == "2.0.1"
                                    else "InvalidCentralSystemCertificate", problem)
        out: dict[str, Any] = {"status": "Rejected"}
        if front.version == "2.0.1":
            out["statusInfo"] = {"reasonCode": "InvalidCertificate", "additionalInfo": problem[:512]}
        return Reply(out, report)
    issuer = cert
    if cert.issuer != cert.subject:        # a sub-CA: hash data need its issuer, if the store has it
        issuer = next((i.cert for i in store.installed if i.cert.subject == cert.issuer), cert)
    if not any(i.cert == cert and i.use == use for i in store.installed):
        store.installed.append(_Installed(use, cert, issuer))
    return Reply({"status": "Accepted"})


async def _get_installed_ids201(front: "FrontEnd", p: dict[str, Any]) -> Reply:
    store = _store(front)
    wanted = p.get("certificateType") or None
    chain = []
    for item in store.installed:
        if wanted is None or item.use in wanted:
            chain.append({"certificateType": item.use, "certificateHashData": _report_hash(front, item)})
    if store.v2g_cert and (wanted is None or "V2GCertificateChain" in wanted):
        leaf = _Installed("V2GCertificateChain", store.v2g_cert[0],
                          store.v2g_cert[1] if len(store.v2g_cert) > 1 else store.v2g_cert[0])
        chain.append({"certificateType": "V2GCertificateChain", "certificateHashData": _report_hash(front, leaf)})
    if not chain:
        return Reply({"status": "NotFound"})
    return Reply({"status": "Accepted", "certificateHashDataChain": chain})


async def _get_installed_ids16(front: "FrontEnd", p: dict[str, Any]) -> Reply:
    use = _USE16.get(p["certificateType"], p["certificateType"])
    found = [_report_hash(front, i) for i in _store(front).installed if i.use == use]
    if not found:
        return Reply({"status": "NotFound"})
    return Reply({"status": "Accepted", "certificateHashData": found})


async def _delete_certificate(front: "FrontEnd", p: dict[str, Any]) -> Reply:
    store = _store(front)
    wanted = p["certificateHashData"]
    if store.station_cert is not None:
        own = _Installed("ChargingStationCertificate", store.station_cert[0],
                         store.station_cert[1] if len(store.station_cert) > 1 else store.station_cert[0])
        if _hash_data(own, str(wanted.get("hashAlgorithm", "SHA256"))) == _normalised(wanted):
            return Reply({"status": "Failed"})     # M04.FR.06: never its own certificate
    item = store.find(wanted)
    if item is None:
        return Reply({"status": "Accepted" if front.sim.has("delete_unknown_accepted") else "NotFound"})
    if not front.sim.has("delete_certificate_ignored"):
        store.installed.remove(item)
    return Reply({"status": "Accepted"})


# ---- station: out-of-band (M06, M01/M02, A03) -------------------------------------------------

def secc_ocsp_request(front: "FrontEnd") -> dict[str, str]:
    """OCSPRequestData of the station's own (fixture) SECC certificate, issued by the V2G root."""
    secc, root = fixture.cert("secc"), fixture.cert("v2g_root")
    data = certificate_hash_data(secc, root)
    if front.sim.has("ocsp_request_subject_hash"):
        # the bug: hashes the certificate's own subject name instead of its issuer's
        data["issuerNameHash"] = hashlib.sha256(secc.subject.public_bytes()).hexdigest()
    return {**data, "responderURL": fixture.OCSP_URL}


async def _check_certificate_status(sim: "StationSimulator", params: dict[str, Any]) -> dict[str, Any]:
    if sim.version != "2.0.1":
        raise ValueError("GetCertificateStatus is an OCPP 2.0.1 message")
    sim.enqueue("GetCertificateStatus", {"ocspRequestData": secc_ocsp_request(sim.front)})
    return {"sent": "GetCertificateStatus"}


async def _ev_certificate_request(sim: "StationSimulator", params: dict[str, Any]) -> dict[str, Any]:
    """The EV asks for (action Install, M01) or renews (Update, M02) its contract certificate."""
    if sim.version != "2.0.1":
        raise ValueError("Get15118EVCertificate is an OCPP 2.0.1 message")
    action = str(params.get("action", "Install"))
    if action not in ("Install", "Update"):
        raise ValueError("action must be Install or Update")
    exi = str(params.get("exi_request") or base64.b64encode(b"\x80\x00 CertificateInstallationReq").decode())
    if sim.has("ev_certificate_request_hex"):   # the bug: forwards the EXI bytes hex-encoded
        exi = base64.b64decode(exi).hex()
    if sim.has("ev_certificate_update_as_install"):
        action = "Install"
    sim.enqueue("Get15118EVCertificate", {"iso15118SchemaVersion": str(params.get("schema", ISO2_SCHEMA)),
                                          "action": action, "exiRequest": exi})
    return {"sent": "Get15118EVCertificate", "action": action}


async def _renew_certificate(sim: "StationSimulator", params: dict[str, Any]) -> dict[str, Any]:
    """A03: the station's certificate is about to expire; it asks for a new one by itself."""
    use = params.get("certificate_type", "ChargingStationCertificate") if sim.version == "2.0.1" else None
    _send_csr(sim.front, use, triggered=False)
    return {"sent": "SignCertificate"}


# ---- CSMS simulator ---------------------------------------------------------------------------

def sign_csr(csr_pem: str, *, v2g: bool = False, untrusted: bool = False) -> str:
    """The CSMS's CA: sign a PEM CSR; returns the PEM chain (leaf, then the issuing CA)."""
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    if not csr.is_signature_valid:
        raise ValueError("CSR signature does not verify")
    ca_name = "untrusted_root" if untrusted else ("v2g_root" if v2g else "csms_subca")
    ca, ca_key = fixture.cert(ca_name), fixture.key(ca_name)
    now = _now()
    leaf = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca.subject).public_key(csr.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = leaf.public_bytes(serialization.Encoding.PEM).decode()
    return pem + fixture.load()[ca_name]["cert"]


def _sign_certificate(version: str):  # type: ignore[no-untyped-def]
    def answer(sim: "CsmsSimulator", st: "StationState", p: dict[str, Any]) -> dict[str, Any]:
        if sim.faulty("sign_certificate_rejected_always", version):
            return {"status": "Rejected"}
        use = p.get("certificateType")
        try:
            chain = sign_csr(p["csr"], v2g=use == "V2GCertificate",
                             untrusted=sim.faulty("certificate_signed_wrong_chain", version))
        except ValueError as exc:
            sim.note(st, f"SignCertificate with a bad CSR: {exc}")
            return {"status": "Rejected"}
        payload: dict[str, Any] = {"certificateChain": chain}
        if version == "2.0.1" and use:
            payload["certificateType"] = use          # A02.FR.14: echo the type asked for
        sim._spawn(_deliver(sim, st, payload), f"csms-certificate-signed-{st.station_id}")
        return {"status": "Accepted"}
    return answer


async def _deliver(sim: "CsmsSimulator", st: "StationState", payload: dict[str, Any]) -> None:
    """After the SignCertificate answer is on the wire: CertificateSigned to the station."""
    await asyncio.sleep(0.2)
    conn = sim._conns.get(st.station_id)
    if conn is None:
        sim.note(st, "CertificateSigned not sent: the station is gone")
        return
    try:
        out = await sim._call(st, conn, "CertificateSigned", payload, True, {"timeout": 10})
    except Exception as exc:    # the station did not answer; a real CSMS logs and retries later
        sim.note(st, f"CertificateSigned failed: {type(exc).__name__}: {exc}")
        return
    status = (out.get("response") or {}).get("status")
    if status != "Accepted":
        sim.note(st, f"station answered CertificateSigned with {status or out.get('error')}")


def _ocsp_answer(sim: "CsmsSimulator", st: "StationState", p: dict[str, Any]) -> dict[str, Any]:
    """M06: the OCSP status of a station's certificate, as DER base64 (M06.FR.02)."""
    if sim.faulty("certificate_status_failed", "2.0.1"):
        return {"status": "Failed"}
    req = p["ocspRequestData"]
    der = _ocsp_from_fixture(req) or _ocsp_from_responder(req)
    if der is None:
        return {"status": "Failed", "statusInfo": {"reasonCode": "OCSPUnavailable"}}
    return {"status": "Accepted", "ocspResult": base64.b64encode(der).decode()}


def _ocsp_from_fixture(req: dict[str, Any]) -> bytes | None:
    """The CSMS holds the fixture CAs' OCSP signing keys: answer for certificates they issued."""
    algo = str(req.get("hashAlgorithm", "SHA256"))
    name_hash, key_hash, serial = _normalised(req)
    for ca_name in ("v2g_root", "csms_subca", "csms_root"):
        ca = fixture.cert(ca_name)
        # Certificates this CA issued carry its subject as their issuer name.
        if (hashlib.new(algo.lower(), ca.subject.public_bytes()).hexdigest(), issuer_key_hash(ca, algo).hex()) \
                != (name_hash, key_hash):
            continue
        for name in fixture.load():
            entry = fixture.load()[name]
            if "cert" not in entry:
                continue
            cert = fixture.cert(name)
            if cert.issuer == ca.subject and serial_hex(cert) == serial:
                now = _now()
                resp = (ocsp.OCSPResponseBuilder()
                        .add_response(cert=cert, issuer=ca, algorithm=_HASHES[algo](),
                                      cert_status=ocsp.OCSPCertStatus.GOOD, this_update=now,
                                      next_update=now + dt.timedelta(days=1), revocation_time=None,
                                      revocation_reason=None)
                        .responder_id(ocsp.OCSPResponderEncoding.HASH, ca)
                        .sign(fixture.key(ca_name), hashes.SHA256()))
                return resp.public_bytes(serialization.Encoding.DER)
    return None


def _ocsp_from_responder(req: dict[str, Any]) -> bytes | None:
    """Ask the responderURL (short timeout: the CSMS answers the station within its call timeout)."""
    algo = str(req.get("hashAlgorithm", "SHA256"))
    try:
        der_req = (ocsp.OCSPRequestBuilder().add_certificate_by_hash(
            bytes.fromhex(req["issuerNameHash"]), bytes.fromhex(req["issuerKeyHash"]),
            int(req["serialNumber"], 16), _HASHES[algo]()).build().public_bytes(serialization.Encoding.DER))
        http = urllib.request.Request(req["responderURL"], data=der_req, method="POST",
                                      headers={"Content-Type": "application/ocsp-request"})
        with urllib.request.urlopen(http, timeout=2.0) as r:   # noqa: S310 (test responder URL)
            body = r.read(64 * 1024)
        if ocsp.load_der_ocsp_response(body).response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            return None
        return body
    except (KeyError, ValueError, urllib.error.URLError, OSError):
        return None


def _ev_certificate(sim: "CsmsSimulator", st: "StationState", p: dict[str, Any]) -> dict[str, Any]:
    """M01/M02: the CSMS forwards the EV's request to its contract-certificate service. This one has
    none: it checks the EXI request is base64 and answers with a stand-in exiResponse."""
    if sim.faulty("ev_certificate_request_failed", "2.0.1"):
        return {"status": "Failed", "exiResponse": ""}
    try:
        raw = base64.b64decode(p["exiRequest"], validate=True)
    except (binascii.Error, ValueError):
        sim.note(st, "Get15118EVCertificate exiRequest is not base64")
        return {"status": "Failed", "exiResponse": ""}
    kind = b"CertificateUpdateRes" if p.get("action") == "Update" else b"CertificateInstallationRes"
    return {"status": "Accepted", "exiResponse": base64.b64encode(kind + b":" + hashlib.sha256(raw).digest()).decode()}


# CSMS operator actions

_WRONG_USE = {  # fault install_certificate_wrong_use: the neighbouring kind of the same edition
    "2.0.1": {"CSMSRootCertificate": "ManufacturerRootCertificate", "ManufacturerRootCertificate": "CSMSRootCertificate",
              "V2GRootCertificate": "MORootCertificate", "MORootCertificate": "V2GRootCertificate"},
    "1.6": {"CentralSystemRootCertificate": "ManufacturerRootCertificate",
            "ManufacturerRootCertificate": "CentralSystemRootCertificate"},
}


def _pem_param(params: dict[str, Any]) -> str:
    if params.get("certificate"):
        return str(params["certificate"])
    if params.get("fixture"):
        return fixture.load()[str(params["fixture"])]["cert"]
    raise ValueError("install_certificate needs certificate (PEM) or fixture (a fixture certificate name)")


def _install(version: str):  # type: ignore[no-untyped-def]
    def build(sim: "CsmsSimulator", st: "StationState", params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
        use = str(params.get("certificate_type") or ("CSMSRootCertificate" if version == "2.0.1"
                                                     else "CentralSystemRootCertificate"))
        if sim.faulty("install_certificate_wrong_use", version):
            use = _WRONG_USE[version].get(use, use)
        return "InstallCertificate", {"certificateType": use, "certificate": _pem_param(params)}, True
    return build


def _get_ids(version: str):  # type: ignore[no-untyped-def]
    def build(sim: "CsmsSimulator", st: "StationState", params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
        wrong = sim.faulty("get_installed_ids_wrong_filter", version)   # the bug: always the CSMS roots only
        if version == "1.6":
            use = "CentralSystemRootCertificate" if wrong else str(params.get("certificate_type", "CentralSystemRootCertificate"))
            return "GetInstalledCertificateIds", {"certificateType": use}, True
        types = ["CSMSRootCertificate"] if wrong else params.get("certificate_types")
        return "GetInstalledCertificateIds", ({"certificateType": list(types)} if types else {}), True
    return build


def _delete(version: str):  # type: ignore[no-untyped-def]
    def build(sim: "CsmsSimulator", st: "StationState", params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
        data = params.get("certificate_hash_data")
        if data is None and params.get("fixture"):
            data = fixture.hash_data(str(params["fixture"]))
        if not isinstance(data, dict):
            raise ValueError("delete_certificate needs certificate_hash_data or fixture")
        data = dict(data)
        if sim.faulty("delete_certificate_wrong_hash", version):
            data["issuerKeyHash"] = _spki_hash(data)
        return "DeleteCertificate", {"certificateHashData": data}, True
    return build


def _spki_hash(data: dict[str, Any]) -> str:
    """Fault delete_certificate_wrong_hash: issuerKeyHash over the issuer's whole DER
    SubjectPublicKeyInfo (a classic slip) instead of its key bits, for the certificate the
    CSMS holds under that hash data (the fixture PKI here)."""
    algo = str(data.get("hashAlgorithm", "SHA256"))
    for name in fixture.certificate_names():
        if _normalised(fixture.hash_data(name)) == _normalised(data):
            spki = fixture.issuer_of(name).public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            return hashlib.new(algo.lower(), spki).hexdigest()
    key_hash = str(data["issuerKeyHash"])      # not a certificate it knows: the same slip shows as a wrong hash
    return key_hash[:-1] + ("0" if key_hash[-1:] != "0" else "1")


def _extended_trigger(sim: "CsmsSimulator", st: "StationState", params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    payload: dict[str, Any] = {"requestedMessage": str(params.get("message", "SignChargePointCertificate"))}
    if params.get("connector") is not None:
        payload["connectorId"] = int(params["connector"])
    return "ExtendedTriggerMessage", payload, True


_BOTH = ("1.6", "2.0.1")
_V201 = ("2.0.1",)


def _cs(name: str, versions: tuple[str, ...], text: str) -> Fault:
    return Fault(name, "cs", versions, text)


def _csms(name: str, versions: tuple[str, ...], text: str) -> Fault:
    return Fault(name, "csms", versions, text)


FEATURE = Feature(
    name=NAME,
    station_handlers={
        "2.0.1": {"TriggerMessage": _trigger201, "CertificateSigned": _certificate_signed,
                  "InstallCertificate": _install_certificate, "GetInstalledCertificateIds": _get_installed_ids201,
                  "DeleteCertificate": _delete_certificate},
        "1.6": {"ExtendedTriggerMessage": _extended_trigger16, "CertificateSigned": _certificate_signed,
                "InstallCertificate": _install_certificate, "GetInstalledCertificateIds": _get_installed_ids16,
                "DeleteCertificate": _delete_certificate},
    },
    profile16="Security",
    station_actions={"renew_certificate": _renew_certificate, "check_certificate_status": _check_certificate_status,
                     "ev_certificate_request": _ev_certificate_request},
    csms_answers={
        "2.0.1": {"SignCertificate": _sign_certificate("2.0.1"), "GetCertificateStatus": _ocsp_answer,
                  "Get15118EVCertificate": _ev_certificate},
        "1.6": {"SignCertificate": _sign_certificate("1.6")},
    },
    csms_operator={
        "2.0.1": {"install_certificate": _install("2.0.1"), "get_installed_certificate_ids": _get_ids("2.0.1"),
                  "delete_certificate": _delete("2.0.1")},
        "1.6": {"install_certificate": _install("1.6"), "get_installed_certificate_ids": _get_ids("1.6"),
                "delete_certificate": _delete("1.6"), "extended_trigger_message": _extended_trigger},
    },
    csms_provokes={"ExtendedTriggerMessage": frozenset({"SignCertificate"})},
    station_faults=[
        _cs("accepts_certificate_for_other_identity", _BOTH,
            "Accepts a CertificateSigned chain whose leaf names another station (CN is not its identity)."),
        _cs("accepts_expired_certificate", _BOTH,
            "Accepts an expired certificate (CertificateSigned leaf or InstallCertificate root)."),
        _cs("accepts_unsigned_chain", _BOTH,
            "Accepts a CertificateSigned chain that does not lead to an installed CSMS root."),
        _cs("no_security_event_on_invalid_cert", _BOTH,
            "Rejects an invalid certificate but sends no SecurityEventNotification about it."),
        _cs("install_certificate_wrong_type", _BOTH,
            "Files every installed root under CSMSRootCertificate, whatever certificateType said."),
        _cs("installed_ids_wrong_hash", _BOTH,
            "Reports issuerKeyHash over the issuer's whole SubjectPublicKeyInfo instead of its key bits."),
        _cs("delete_certificate_ignored", _BOTH,
            "Answers DeleteCertificate Accepted but keeps the certificate."),
        _cs("delete_unknown_accepted", _BOTH,
            "Answers DeleteCertificate Accepted for a certificate it does not hold (instead of NotFound)."),
        _cs("csr_not_pem", _BOTH,
            "Sends the CSR as bare base64 DER, without the PEM armour SignCertificate requires."),
        _cs("csr_signed_with_other_key", _BOTH,
            "The CSR's self-signature is made with another key than the one it requests a certificate for "
            "(a key-store mix-up): no CA may sign it."),
        _cs("csr_wrong_certificate_type", _V201,
            "Labels the CSR for its CSMS-connection certificate as V2GCertificate (and vice versa)."),
        _cs("ocsp_request_subject_hash", _V201,
            "GetCertificateStatus: issuerNameHash is the hash of the certificate's own subject, not its issuer."),
        _cs("ev_certificate_request_hex", _V201,
            "Get15118EVCertificate: forwards the EV's EXI request hex-encoded instead of base64."),
        _cs("ev_certificate_update_as_install", _V201,
            "Get15118EVCertificate: forwards an EV's certificate update with action Install."),
    ],
    csms_faults=[
        _csms("sign_certificate_rejected_always", _BOTH, "Answers every SignCertificate with Rejected."),
        _csms("certificate_signed_wrong_chain", _BOTH,
              "Signs the station's CSR with a CA the station does not trust (not under the CSMS root)."),
        _csms("install_certificate_wrong_use", _BOTH,
              "InstallCertificate carries the wrong certificateType (CSMS root ↔ manufacturer root, V2G ↔ MO root)."),
        _csms("delete_certificate_wrong_hash", _BOTH,
              "DeleteCertificate: issuerKeyHash over the issuer's whole SubjectPublicKeyInfo instead of its key bits."),
        _csms("get_installed_ids_wrong_filter", _BOTH,
              "GetInstalledCertificateIds always asks for the CSMS roots only, whatever kinds the operator chose."),
        _csms("certificate_status_failed", _V201, "Answers every GetCertificateStatus with Failed."),
        _csms("ev_certificate_request_failed", _V201, "Answers every Get15118EVCertificate with Failed."),
    ],
)
