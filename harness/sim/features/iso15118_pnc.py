"""ISO 15118 Plug & Charge of the station simulator (OCPP 2.0.1 C07, M01) and of the CSMS simulator.

Station simulator — each EVSE gets an SECC (harness.iso15118.secc.Secc) on [::1], started lazily by
the out-of-band action `secc` {evse, tls (default true), protocols} which returns
{evse, host, port, tls, pki_dir, emaid, v2g_root_pem}: the harness EV connects there directly (no
SDP on loopback). The SECC trusts a per-process test V2G PKI (`sim_v2g_pki()`, made with
harness.pki.v2g.make_v2g_pki); the EV under the harness uses the contract chain of the same PKI.
What the station does around the SECC:
- the V2G session starts: the EVSE counts as plugged in (StatusNotification Occupied);
- EIM: AuthorizationReq is Ongoing until a token is presented (`present_token`) and accepted;
- Plug & Charge: the contract chain arrives (-2 PaymentDetailsReq / -20 AuthorizationReq), the SECC
  checks it locally (chain to the MO/V2G roots, CRLs, signature of AuthorizationReq); then the
  station sends Authorize {idToken {<eMAID>, eMAID}, iso15118CertificateHashData [leaf, Sub-CAs]}
  (C07.FR.01; the PEM `certificate` instead when it does not hold the contract's root and
  ISO15118Ctrlr.CentralContractValidationAllowed is true) and answers AuthorizationRes
  EVSEProcessing=Ongoing until the CSMS answers. idTokenInfo.status Accepted with certificateStatus
  Accepted (or absent) → Finished/OK and the transaction starts (TransactionEvent Started,
  triggerReason Authorized, idToken type eMAID); otherwise Finished with the ResponseCode that
  certificateStatus maps to (CertificateRevoked → FAILED_CertificateRevoked, CertificateExpired →
  FAILED_CertificateExpired, NoCertificateAvailable → FAILED_NoCertificateAvailable, CertChainError /
  SignatureError → FAILED_CertChainError, ContractCancelled → FAILED_ContractCanceled), or FAILED
  when the token itself is refused; no transaction starts.
- CertificateInstallationReq → Get15118EVCertificate {iso15118SchemaVersion, action Install,
  exiRequest base64 of the EV's EXI message}; a base64 exiResponse of an Accepted answer goes back
  to the EV as it is (M01). SECC leaf provisioning (SignCertificate V2GCertificate / CertificateSigned)
  is the certificates feature's (TriggerMessage SignV2GCertificate).
- the EV's ChargeParameterDiscoveryReq (-2) / ScheduleExchangeReq (-20) in a running transaction →
  NotifyEVChargingNeeds via the smart-charging feature's `ev_charging_needs` (K15); the SECC's power
  limits come from the EVSE's limit and the smart-charging composite schedule;
- the EV ends the V2G session with SessionStop: the transaction ends (StoppedByEV).
Other actions: `secc_state` {evse} → the SECC's sessions, messages, violations and the last
Authorize payload; `secc_stop` {evse}.

CSMS simulator — Authorize carrying iso15118CertificateHashData or certificate: the contract is
checked against the same test PKI (revoked / expired / unknown issuer → certificateStatus
CertificateRevoked / CertificateExpired / CertChainError, idTokenInfo Invalid); an eMAID of a good
contract is Accepted unless it is a blocked token. Plain Authorize is answered by the core.
Get15118EVCertificate (Install) keeps the certificates feature's answer, but an Accepted one for a
real EXI CertificateInstallationReq carries a real signed CertificateInstallationRes (new contract
from the test PKI, key encrypted for the EV's OEM provisioning certificate).

Device model (ISO15118Ctrlr): PnCEnabled, CentralContractValidationAllowed, ContractValidationOffline,
V2GCertificateInstallationEnabled, ContractCertificateInstallationEnabled, SeccId.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.pki.ocsp import iso15118_certificate_hash_data

from ..api import Fault, Setting
from ..evse import Authorization
from . import Feature, feature_state

if TYPE_CHECKING:
    from harness.iso15118.secc import Secc, SessionRecord
    from harness.pki.v2g import V2GPki

    from ..csms import CsmsSimulator, StationState
    from ..station import FrontEnd, StationSimulator

NAME = "iso15118_pnc"
V201 = ("2.0.1",)
ISO2_NAMESPACE = "urn:iso:15118:2:2013:MsgDef"
PKI_DIR_ENV = "CHARGER_HARNESS_SIM_V2G_PKI"

_RO = {"readonly": True}
PNC_ENABLED = Setting(None, "bool", const="true")
CENTRAL_VALIDATION = Setting(None, "bool", const="true")
CERT_INSTALL_ENABLED = Setting(None, "bool", const="true")


@functools.lru_cache(maxsize=8)
def _load_pki(directory: str) -> "V2GPki":
    from harness.pki.v2g import load_v2g_pki
    return load_v2g_pki(directory)


def sim_v2g_pki(sim: "StationSimulator | None" = None) -> "V2GPki":
    """The V2G PKI a simulator trusts: the station's configured folder (`v2g_pki`), else the
    process's (harness.dut.builtin.process_v2g_pki, which the harness EV presents too)."""
    folder = getattr(getattr(sim, "cfg", None), "v2g_pki", None) or os.environ.get(PKI_DIR_ENV)
    if folder:
        return _load_pki(str(folder))
    from harness.dut.builtin import process_v2g_pki
    return process_v2g_pki()


# -- station side -------------------------------------------------------------------------------------

@dataclass
class EvseSecc:
    evse_id: int
    secc: "Secc"
    host: str
    port: int
    tls: bool
    authorize_task: asyncio.Task | None = None
    authorize_payload: dict[str, Any] | None = None
    authorize_answer: str | None = None        # what the SECC answers: "Accepted" | FAILED_* | None (pending)
    guard: asyncio.Task | None = None


@dataclass
class PncState:
    seccs: dict[int, EvseSecc] = field(default_factory=dict)


def state(front: "FrontEnd") -> PncState:
    return feature_state(front, NAME, PncState)


def _setting(sim: "StationSimulator", s: Setting) -> bool:
    return sim.read_setting(s) == "true"


def _find_root(chain: list[Any], roots: list[Any]) -> Any | None:
    top = chain[-1]
    return next((r for r in roots if r.subject == top.issuer), None)


def contract_token(sim: "StationSimulator", emaid: str, chain: list[Any]) -> str:
    """The idToken the station reports for a contract (a fault picks the wrong certificate's CN)."""
    if sim.has("pnc_wrong_emaid_in_authorize") and len(chain) > 1:
        from harness.iso15118.secc import _cn
        return _cn(chain[1])
    return emaid


def authorize_payload(sim: "StationSimulator", emaid: str, chain: list[Any]) -> dict[str, Any]:
    """AuthorizeRequest for a contract chain as C07 asks for it."""
    from cryptography.hazmat.primitives import serialization

    payload: dict[str, Any] = {"idToken": {"idToken": contract_token(sim, emaid, chain), "type": "eMAID"}}
    if sim.has("pnc_no_certificate_hash_data"):
        return payload
    root = _find_root(chain, sim_v2g_pki(sim).trusted_contract_roots)
    if root is not None:
        payload["iso15118CertificateHashData"] = iso15118_certificate_hash_data([*chain, root])
    elif _setting(sim, CENTRAL_VALIDATION):
        # C07.FR.03-ish: the station cannot check the chain itself, the CSMS gets the certificate
        payload["certificate"] = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain)
    return payload


def answer_from_authorize(sim: "StationSimulator", response: dict[str, Any] | None) -> str:
    """Map an AuthorizeResponse onto what the SECC tells the EV (ISO 15118-2 ResponseCode or Accepted)."""
    from harness.iso15118.secc import CERT_STATUS_TO_RESPONSE

    if response is None:
        return "FAILED"
    token_status = (response.get("idTokenInfo") or {}).get("status")
    cert_status = response.get("certificateStatus", "Accepted")
    if sim.has("secc_accepts_revoked_contract"):
        cert_status = "Accepted"               # the bug: only idTokenInfo counts
    if cert_status != "Accepted":
        return CERT_STATUS_TO_RESPONSE.get(str(cert_status), "FAILED")
    return "Accepted" if token_status == "Accepted" else "FAILED"


def _grant(sim: "StationSimulator", evse_id: int, token: str, token_type: str) -> None:
    evse = sim.evse(evse_id)
    if evse.tx is None:
        if sim.has("pnc_tx_token_type_wrong"):
            token_type = "ISO14443"
        sim.front.authorize(evse, Authorization(token, token_type, sim.now()), "Authorized")


def _hooks(sim: "StationSimulator", evse_id: int) -> Any:
    from harness.iso15118.secc import SeccHooks

    def entry() -> EvseSecc:
        return state(sim.front).seccs[evse_id]

    async def on_session_start(record: "SessionRecord") -> None:
        evse = sim.evse(evse_id)
        if not evse.plugged:
            await sim.perform("plug_in", {"evse": evse_id})
        e = entry()
        e.authorize_task, e.authorize_payload, e.authorize_answer = None, None, None

    async def on_session_stop(record: "SessionRecord") -> None:
        evse = sim.evse(evse_id)
        if record.ended_in == "SessionStop" and evse.tx is not None and not evse.tx.ended:
            sim.front.on_ev_stop(evse)

    async def authorize_eim() -> str:
        evse = sim.evse(evse_id)
        if sim.has("eim_finished_before_authorized"):
            return "Accepted"                  # the bug: the EV hears "authorized" before any token
        return "Accepted" if evse.tx is not None or evse.auth is not None else "Ongoing"

    async def authorize_contract(emaid: str, chain: list[Any]) -> str:
        e = entry()
        if e.authorize_answer is not None:
            return e.authorize_answer
        if e.authorize_task is None:
            e.authorize_payload = authorize_payload(sim, emaid, chain)
            token = e.authorize_payload["idToken"]["idToken"]
            pending = sim.enqueue("Authorize", e.authorize_payload)
            if sim.has("pnc_starts_before_authorized"):
                _grant(sim, evse_id, token, "eMAID")      # the bug: charging while the CSMS has not said yes

            async def ask() -> None:
                response = await pending
                e.authorize_answer = answer_from_authorize(sim, response)
                if e.authorize_answer == "Accepted":
                    _grant(sim, evse_id, token, "eMAID")
            e.authorize_task = sim.spawn(ask(), f"pnc-authorize-evse{evse_id}", session=True)
        if e.authorize_task.done() and e.authorize_answer is None:
            e.authorize_answer = "FAILED"      # the task died (connection lost): no authorization
            return "FAILED"
        return "Ongoing"

    async def certificate_installation(exi_request: bytes) -> bytes | None:
        if sim.has("cert_install_not_forwarded") or not _setting(sim, CERT_INSTALL_ENABLED):
            return None
        response = await sim.enqueue("Get15118EVCertificate", {
            "iso15118SchemaVersion": ISO2_NAMESPACE, "action": "Install",
            "exiRequest": base64.b64encode(exi_request).decode()})
        if not response or response.get("status") != "Accepted":
            return None
        try:
            return base64.b64decode(response.get("exiResponse", ""), validate=True) or None
        except (binascii.Error, ValueError):
            return None

    async def charge_needs(needs: dict) -> None:
        """K15: the EV's ChargeParameterDiscovery/ScheduleExchange as NotifyEVChargingNeeds (smart charging
        feature's action), once the transaction runs."""
        from . import station_actions

        action = station_actions().get("ev_charging_needs")
        evse = sim.evse(evse_id)
        if action is None or sim.version != "2.0.1" or evse.tx is None or evse.ev is None:
            return
        params: dict[str, Any] = {"evse": evse_id}
        if needs.get("energy_wh"):
            params["energy_kwh"] = float(needs["energy_wh"]) / 1000
        if needs.get("departure_s") is not None:
            params["departure_s"] = float(needs["departure_s"])
        if needs.get("max_power_w"):
            params["max_power_kw"] = float(needs["max_power_w"]) / 1000
        await action(sim, params)

    async def power_limits() -> float | None:
        evse = sim.evse(evse_id)
        limits = [x for x in (evse.limit_w, evse.limit_source() if evse.limit_source else None) if x is not None]
        return min(limits) if limits else None

    return SeccHooks(authorize_eim=authorize_eim, authorize_contract=authorize_contract,
                     certificate_installation=certificate_installation, power_limits=power_limits,
                     charge_needs=charge_needs,
                     on_session_start=on_session_start, on_session_stop=on_session_stop)


_SECC_FAULTS = {"secc_accepts_revoked_contract", "secc_skips_signature_check", "secc_ignores_max_current",
                "secc_cable_check_without_isolation"}


async def _secc_action(sim: "StationSimulator", params: dict[str, Any]) -> dict[str, Any]:
    """Start (once) the SECC of an EVSE and say where the harness EV finds it."""
    from harness.iso15118.charger_model import ChargerModel
    from harness.iso15118.secc import Secc

    evse_id = int(params.get("evse", 1))
    evse = sim.evse(evse_id)
    st = state(sim.front)
    pki = sim_v2g_pki(sim)
    existing = st.seccs.get(evse_id)
    if existing is not None and "tls" in params and bool(params["tls"]) != existing.tls:
        await _secc_stop(sim, {"evse": evse_id})     # the next EV wants the other security: a fresh SECC
        existing = None
    if existing is None:
        use_tls = bool(params.get("tls", True))
        protocols = tuple(params.get("protocols") or ("iso20_dc", "iso2", "din"))
        power = min(max(evse.cfg.max_power_kw, 150.0), 400.0)
        charger = (ChargerModel.mcs(min(evse.cfg.max_power_kw, 3750.0)) if evse.cfg.max_power_kw > 400
                   else ChargerModel.ccs2_dc(power, max_current=float(evse.cfg.max_current_a)))
        fault = sim.fault if sim.fault in _SECC_FAULTS else None
        secc = Secc(protocols, charger=charger, pki=pki if use_tls else None, tls=use_tls, trace=sim.trace,
                    fault=fault, sequence_timeout=float(params.get("sequence_timeout", 60)))
        # OCPP 1.6 has Plug & Charge only through DataTransfer (OCA application note): not emulated, EIM only
        secc.offer_pnc = sim.version == "2.0.1" and _setting(sim, PNC_ENABLED)
        secc.defer_unknown_root = _setting(sim, CENTRAL_VALIDATION)
        host, port = await secc.start("::1", int(params.get("port", 0)))
        entry = EvseSecc(evse_id, secc, host, port, use_tls)
        secc.hooks = _hooks(sim, evse_id)
        st.seccs[evse_id] = entry

        async def guard() -> None:             # stops the SECC with the simulator
            try:
                await asyncio.Event().wait()
            finally:
                await secc.stop()
        entry.guard = sim.spawn(guard(), f"secc-evse{evse_id}")
        existing = entry
    return {"evse": evse_id, "host": existing.host, "port": existing.port, "tls": existing.tls,
            "pki_dir": str(pki.dir), "emaid": pki.emaid, "v2g_root_pem": str(pki.cert_paths["v2g_root"])}


async def _secc_state(sim: "StationSimulator", params: dict[str, Any]) -> dict[str, Any]:
    entry = state(sim.front).seccs.get(int(params.get("evse", 1)))
    if entry is None:
        return {"running": False}
    secc = entry.secc
    return {"running": True, "host": entry.host, "port": entry.port, "tls": entry.tls,
            "sessions": [{"protocol": s.protocol, "auth": s.auth, "emaid": s.emaid, "ended_in": s.ended_in,
                          "reason": s.reason, "authorized": s.authorized,
                          "messages": [f"{d}:{n}" for d, n in s.messages]} for s in secc.sessions],
            "violations": [{"clause": v.clause, "text": v.text, "message": v.message} for v in secc.violations],
            "authorize_payload": entry.authorize_payload, "authorize_answer": entry.authorize_answer}


async def _secc_stop(sim: "StationSimulator", params: dict[str, Any]) -> dict[str, Any]:
    entry = state(sim.front).seccs.pop(int(params.get("evse", 1)), None)
    if entry is None:
        return {"stopped": False}
    if entry.guard is not None:
        entry.guard.cancel()
    await entry.secc.stop()
    return {"stopped": True}


# -- CSMS side ----------------------------------------------------------------------------------------

def contract_certificate_status(hash_data: list[dict[str, Any]] | None, pem: str | None) -> str:
    """AuthorizeCertificateStatusEnumType for the contract the station described (test PKI only)."""
    from cryptography import x509

    from harness.pki.ocsp import certificate_hash_data
    from harness.pki.v2g_verify import verify_contract_chain

    pki = sim_v2g_pki()
    if pem:
        try:
            chain = x509.load_pem_x509_certificates(pem.encode())
        except ValueError:
            return "CertChainError"
        verdict = verify_contract_chain(chain[0], chain[1:], pki.trusted_contract_roots, crls=list(pki.crls.values()))
        return verdict.status
    if not hash_data:
        return "NoCertificateAvailable"
    leaf = hash_data[0]
    revoked = {n for names in pki.revoked.values() for n in names}
    wanted_serial = str(leaf.get("serialNumber", "")).lower().lstrip("0")
    for name, cert in pki.certs.items():
        if format(cert.serial_number, "x") != wanted_serial:
            continue
        try:
            expected = certificate_hash_data(cert, pki.issuer_of(name), leaf.get("hashAlgorithm", "SHA256"))
        except (KeyError, ValueError):
            continue
        if (expected["issuerNameHash"].lower(), expected["issuerKeyHash"].lower()) != (
                str(leaf.get("issuerNameHash", "")).lower(), str(leaf.get("issuerKeyHash", "")).lower()):
            return "CertChainError"
        if name in revoked:
            return "CertificateRevoked"
        leaf_cert, intermediates, _root = pki.chain(name) if name in pki.chains else (cert, [], None)
        verdict = verify_contract_chain(leaf_cert, intermediates, pki.trusted_contract_roots, crls=[])
        return verdict.status
    return "CertChainError"                     # an issuer/serial this CSMS's PKI does not know


def _csms_authorize(sim: "CsmsSimulator", st: "StationState", p: dict[str, Any]) -> dict[str, Any]:
    from .. import csms201

    if "iso15118CertificateHashData" not in p and "certificate" not in p:
        return csms201._authorize(sim, st, p)
    id_token = p.get("idToken") or {}
    if id_token.get("type") != "eMAID":
        sim.note(st, f"Authorize with contract data but idToken type {id_token.get('type')!r} (C07: eMAID)")
    cert_status = contract_certificate_status(p.get("iso15118CertificateHashData"), p.get("certificate"))
    if sim.faulty("pnc_certificate_status_ignored", "2.0.1"):
        cert_status = "Accepted"
    token = id_token.get("idToken")
    if cert_status != "Accepted":
        status = "Invalid"
    elif token in sim.cfg.blocked_tokens:
        status = "Blocked"
    else:
        status = "Accepted"
    return {"idTokenInfo": {"status": status}, "certificateStatus": cert_status}


def _csms_ev_certificate(sim: "CsmsSimulator", st: "StationState", p: dict[str, Any]) -> dict[str, Any]:
    """M01: the answer of the feature before this one (certificates: status, base64 checks, faults);
    when it is Accepted and exiRequest is a real ISO 15118-2 CertificateInstallationReq, the
    exiResponse becomes a real, signed CertificateInstallationRes from the test PKI (the CPS role)."""
    from harness.iso15118.secc import certificate_installation_exi

    from . import all_features

    answer: dict[str, Any] = {"status": "Failed", "exiResponse": ""}
    for f in all_features():
        if f.name == NAME:
            break
        other = f.csms_answers.get("2.0.1", {}).get("Get15118EVCertificate")
        if other is not None:
            answer = other(sim, st, p)
    if answer.get("status") != "Accepted" or p.get("action") != "Install":
        return answer
    try:
        request = base64.b64decode(str(p.get("exiRequest", "")), validate=True)
    except (binascii.Error, ValueError):
        return answer
    response = certificate_installation_exi(sim_v2g_pki(), request)
    if response is None:
        return answer
    return {**answer, "exiResponse": base64.b64encode(response).decode()}


def _cs(name: str, text: str) -> Fault:
    return Fault(name, "cs", V201, text)


FEATURE = Feature(
    name=NAME,
    station_variables={
        ("ISO15118Ctrlr", "PnCEnabled", None): PNC_ENABLED,
        ("ISO15118Ctrlr", "CentralContractValidationAllowed", None): CENTRAL_VALIDATION,
        ("ISO15118Ctrlr", "ContractValidationOffline", None): Setting(None, "bool", const="false"),
        ("ISO15118Ctrlr", "V2GCertificateInstallationEnabled", None): Setting(None, "bool", const="true"),
        ("ISO15118Ctrlr", "ContractCertificateInstallationEnabled", None): CERT_INSTALL_ENABLED,
        ("ISO15118Ctrlr", "SeccId", None): Setting(None, const="DE*CHH*E0001*1", **_RO),
    },
    station_actions={"secc": _secc_action, "secc_state": _secc_state, "secc_stop": _secc_stop},
    csms_answers={"2.0.1": {"Authorize": _csms_authorize, "Get15118EVCertificate": _csms_ev_certificate}},
    station_faults=[
        _cs("secc_accepts_revoked_contract",
            "Plug & Charge: ignores revocation — neither its own CRL check nor the CSMS's certificateStatus "
            "stops a revoked contract; only idTokenInfo.status counts."),
        _cs("secc_ignores_max_current",
            "The SECC lets the EV's target current through above the EVSE's rated maximum (EVSEPresentCurrent > "
            "EVSEMaximumCurrentLimit in CurrentDemandRes)."),
        _cs("secc_cable_check_without_isolation",
            "CableCheckRes says Finished while EVSEIsolationStatus is still Invalid (no insulation test result)."),
        _cs("pnc_wrong_emaid_in_authorize",
            "Plug & Charge: Authorize carries the CN of the MO Sub-CA certificate as eMAID instead of the "
            "contract certificate's."),
        _cs("pnc_no_certificate_hash_data",
            "Plug & Charge: Authorize carries only the eMAID, without iso15118CertificateHashData or certificate."),
        _cs("secc_skips_signature_check",
            "Plug & Charge: the SECC does not verify the signature of AuthorizationReq / CertificateInstallationReq."),
        _cs("pnc_starts_before_authorized",
            "Plug & Charge: starts the transaction (TransactionEvent Started) while its Authorize is still "
            "pending, whatever the CSMS then answers."),
        _cs("cert_install_not_forwarded",
            "CertificateInstallationReq is answered FAILED_NoCertificateAvailable without asking the CSMS "
            "(no Get15118EVCertificate)."),
        _cs("eim_finished_before_authorized",
            "ISO 15118 with EIM: the SECC answers AuthorizationRes Finished before any token was presented "
            "and accepted (the EV proceeds to charge parameters unauthorized)."),
        _cs("pnc_tx_token_type_wrong",
            "Plug & Charge: the transaction's idToken has type ISO14443 instead of eMAID."),
    ],
    csms_faults=[
        Fault("pnc_certificate_status_ignored", "csms", V201,
              "Authorize with iso15118CertificateHashData: answers Accepted without checking the contract "
              "certificate (a revoked or unknown contract charges)."),
    ],
)
