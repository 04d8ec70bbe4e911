"""The station simulator's SECC and its OCPP 2.0.1 Plug & Charge flows (feature iso15118_pnc).

The station simulator is built but not connected: its CALLs are captured from `enqueue` and
answered by the test; the harness EV (harness.iso15118.evcc.Evcc) talks to the EVSE's SECC on
[::1] over TLS with the contract chain of the test V2G PKI. Everything runs in one bounded loop.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import pytest

from harness.sim.csms import CsmsSimulator, StationState
from harness.sim.features import iso15118_pnc as pnc
from harness.sim.station import StationSimulator

from _features import with_recording_station

Answer = Callable[[str, dict[str, Any]], "dict[str, Any] | None"]


def accept_all(action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    if action == "Authorize":
        return {"idTokenInfo": {"status": "Accepted"}, "certificateStatus": "Accepted"}
    return {}


def with_station(body: Callable[[StationSimulator, list], Awaitable[None]], *, fault: str | None = None,
                 answer: Answer = accept_all, delay: float = 0.0) -> None:
    """`body(sim, sent)` on a recording 2.0.1 station; the CSMS answers Authorize after `delay` s."""
    with_recording_station(body, answer=answer, fault=fault,
                           answer_after=lambda action: delay if action == "Authorize" else 0, timeout=30)


async def ev_session(sim: StationSimulator, *, auth: str = "pnc", tls: bool = True, plan: dict | None = None,
                     protocol: str = "iso2"):
    from harness.iso15118.evcc import Evcc

    where = await sim.perform("secc", {"evse": 1, "tls": tls})
    evcc = Evcc(protocol, pki=pnc.sim_v2g_pki(sim) if tls else None, tls=tls, auth=auth)
    await evcc.connect(where["host"], where["port"], timeout=5)
    from harness.iso15118.evcc import EvccSessionFailed

    try:
        await evcc.run({"loops": 2, "ongoing_interval": 0.05, **(plan or {})})
    except EvccSessionFailed:
        pass                             # a FAILED_* answer ends the session: the test looks at it
    finally:
        await evcc.close()
    return where, evcc, evcc.exchanges


async def until(condition: Callable[[], Any], bound: float = 3.0) -> None:
    """Wait (bounded) for something the simulator does after the EV's side has finished."""
    for _ in range(int(bound / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


def calls(sent: list, action: str) -> list[dict[str, Any]]:
    return [p for a, p in sent if a == action]


def responses(exchanges, name: str) -> list[dict[str, Any]]:
    return [x.response for x in exchanges if x.response_name == name]


def test_pnc_session_authorizes_with_hash_data_and_starts_an_emaid_transaction():
    async def body(sim, sent):
        where, _evcc, exchanges = await ev_session(sim)
        assert where["tls"] and where["port"] >= 49152
        emaid = pnc.sim_v2g_pki(sim).emaid
        (authorize,) = calls(sent, "Authorize")
        assert authorize["idToken"] == {"idToken": emaid, "type": "eMAID"}
        hashes = authorize["iso15118CertificateHashData"]
        assert len(hashes) == 3 and all(h["responderURL"] for h in hashes)
        started = [p for p in calls(sent, "TransactionEvent") if p["eventType"] == "Started"]
        assert started and started[0]["idToken"] == {"idToken": emaid, "type": "eMAID"}
        assert started[0]["triggerReason"] == "Authorized"
        auth = responses(exchanges, "AuthorizationRes")
        assert auth[-1]["EVSEProcessing"] == "Finished" and auth[-1]["ResponseCode"] == "OK"
        assert responses(exchanges, "SessionStopRes")
        await until(lambda: any(p["eventType"] == "Ended" for p in calls(sent, "TransactionEvent")))
        ended = [p for p in calls(sent, "TransactionEvent") if p["eventType"] == "Ended"]
        assert ended and ended[0]["transactionInfo"]["stoppedReason"] == "StoppedByEV"
        state = await sim.perform("secc_state", {"evse": 1})
        assert state["violations"] == [] and state["sessions"][0]["auth"] == "PnC"
        (needs,) = calls(sent, "NotifyEVChargingNeeds")           # K15 from the EV's ChargeParameterDiscovery
        assert needs["evseId"] == 1 and needs["chargingNeeds"]["requestedEnergyTransfer"] == "DC"
    with_station(body)


def test_iso20_pnc_session_at_the_station():
    async def body(sim, sent):
        _where, _evcc, exchanges = await ev_session(sim, protocol="iso20_dc")
        assert responses(exchanges, "AuthorizationRes")[-1]["ResponseCode"] == "OK"
        (authorize,) = calls(sent, "Authorize")
        assert authorize["idToken"]["type"] == "eMAID" and authorize["iso15118CertificateHashData"]
        assert [p for p in calls(sent, "TransactionEvent") if p["eventType"] == "Started"]
        state = await sim.perform("secc_state", {"evse": 1})
        assert state["violations"] == [] and state["sessions"][0]["protocol"] == "iso20_dc"
    with_station(body)


def test_authorization_is_ongoing_until_the_csms_answers():
    async def body(sim, sent):
        _where, _evcc, exchanges = await ev_session(sim)
        processing = [r["EVSEProcessing"] for r in responses(exchanges, "AuthorizationRes")]
        assert processing[0] == "Ongoing" and processing[-1] == "Finished"
    with_station(body, delay=0.3)


@pytest.mark.parametrize("cert_status, code", [("CertificateRevoked", "FAILED_CertificateRevoked"),
                                               ("CertificateExpired", "FAILED_CertificateExpired"),
                                               ("CertChainError", "FAILED_CertChainError")])
def test_refused_contract_gives_the_mapped_response_code_and_no_transaction(cert_status, code):
    def answer(action, payload):
        if action == "Authorize":
            return {"idTokenInfo": {"status": "Invalid"}, "certificateStatus": cert_status}
        return {}

    async def body(sim, sent):
        _where, _evcc, exchanges = await ev_session(sim, plan={"max_ongoing": 20})
        assert responses(exchanges, "AuthorizationRes")[-1]["ResponseCode"] == code
        assert not calls(sent, "TransactionEvent")
    with_station(body, answer=answer)


def test_fault_accepts_revoked_contract_charges_anyway():
    def answer(action, payload):
        if action == "Authorize":    # a CSMS that says the token is fine but the certificate is revoked
            return {"idTokenInfo": {"status": "Accepted"}, "certificateStatus": "CertificateRevoked"}
        return {}

    async def body(sim, sent):
        _where, _evcc, exchanges = await ev_session(sim)
        assert responses(exchanges, "AuthorizationRes")[-1]["ResponseCode"] == "OK"
        assert [p for p in calls(sent, "TransactionEvent") if p["eventType"] == "Started"]
    with_station(body, answer=answer, fault="secc_accepts_revoked_contract")


def test_faults_in_the_authorize_request():
    async def wrong_emaid(sim, sent):
        await ev_session(sim)
        assert calls(sent, "Authorize")[0]["idToken"]["idToken"] != pnc.sim_v2g_pki(sim).emaid
    with_station(wrong_emaid, fault="pnc_wrong_emaid_in_authorize")

    async def no_hash(sim, sent):
        await ev_session(sim)
        assert set(calls(sent, "Authorize")[0]) == {"idToken"}
    with_station(no_hash, fault="pnc_no_certificate_hash_data")

    async def token_type(sim, sent):
        await ev_session(sim)
        started = [p for p in calls(sent, "TransactionEvent") if p["eventType"] == "Started"]
        assert started[0]["idToken"]["type"] == "ISO14443"
    with_station(token_type, fault="pnc_tx_token_type_wrong")


def test_fault_starts_before_authorized():
    def refuse(action, payload):
        return {"idTokenInfo": {"status": "Invalid"}, "certificateStatus": "CertificateRevoked"} \
            if action == "Authorize" else {}

    async def body(sim, sent):
        await ev_session(sim, plan={"max_ongoing": 20})
        order = [a for a, p in sent if a in ("Authorize", "TransactionEvent")]
        assert order[:2] == ["Authorize", "TransactionEvent"]     # started while pending, and although refused
    with_station(body, answer=refuse, fault="pnc_starts_before_authorized", delay=0.2)


def test_eim_session_waits_for_a_token():
    async def body(sim, sent):
        async def driver() -> None:
            await asyncio.sleep(0.3)
            await sim.perform("present_token", {"evse": 1, "id_token": "TRUCK-0001"})
        asyncio.ensure_future(driver())
        _where, _evcc, exchanges = await ev_session(sim, auth="eim", tls=False)
        processing = [r["EVSEProcessing"] for r in responses(exchanges, "AuthorizationRes")]
        assert processing[0] == "Ongoing" and processing[-1] == "Finished"
        started = [p for p in calls(sent, "TransactionEvent") if p["eventType"] == "Started"]
        assert started[0]["idToken"]["idToken"] == "TRUCK-0001"
    with_station(body)


def test_certificate_installation_is_forwarded_and_the_fault_skips_it():
    def answer(action, payload):
        if action == "Get15118EVCertificate":
            return {"status": "Failed", "exiResponse": ""}
        return accept_all(action, payload)

    async def forwarded(sim, sent):
        from harness.iso15118.evcc import Evcc
        where = await sim.perform("secc", {"evse": 1, "tls": True})
        evcc = Evcc("iso2", pki=pnc.sim_v2g_pki(sim), tls=True, auth="pnc")
        await evcc.connect(where["host"], where["port"], timeout=5)
        try:
            for name in ("SessionSetupReq", "ServiceDiscoveryReq", "PaymentServiceSelectionReq"):
                await evcc.request(name)
            x = await evcc.request("CertificateInstallationReq")
        finally:
            await evcc.close()
        return x

    async def body(sim, sent):
        x = await forwarded(sim, sent)
        (get,) = calls(sent, "Get15118EVCertificate")
        assert get["action"] == "Install" and get["iso15118SchemaVersion"] == pnc.ISO2_NAMESPACE
        assert get["exiRequest"]
        assert x.response["ResponseCode"] == "FAILED_NoCertificateAvailable"
    with_station(body, answer=answer)

    async def faulty(sim, sent):
        x = await forwarded(sim, sent)
        assert not calls(sent, "Get15118EVCertificate")
        assert x.response["ResponseCode"] == "FAILED_NoCertificateAvailable"
    with_station(faulty, fault="cert_install_not_forwarded")


def test_certificate_installation_end_to_end_with_the_csms_simulator_answer():
    """Station SECC → Get15118EVCertificate → the CSMS simulator's answer (a real signed
    CertificateInstallationRes) → the EV installs the new contract and charges with it."""
    from harness.sim.api import CsmsSimConfig

    csms = CsmsSimulator(CsmsSimConfig())
    st = StationState("CS1")

    def answer(action, payload):
        if action == "Get15118EVCertificate":
            return pnc._csms_ev_certificate(csms, st, payload)
        return accept_all(action, payload)

    async def body(sim, sent):
        _where, evcc, exchanges = await ev_session(sim, plan={"install_certificate": True})
        (get,) = calls(sent, "Get15118EVCertificate")
        assert get["action"] == "Install"
        res = responses(exchanges, "CertificateInstallationRes")
        assert res and res[0]["ResponseCode"] == "OK"
        assert responses(exchanges, "AuthorizationRes")[-1]["EVSEProcessing"] == "Finished"
        assert [p for p in calls(sent, "TransactionEvent") if p["eventType"] == "Started"]
    with_station(body, answer=answer)


def test_contract_of_an_unknown_root_goes_to_the_csms_as_certificate():
    """CentralContractValidationAllowed: the station holds no root for the contract, so it sends the
    PEM chain in Authorize.certificate; the CSMS simulator finds no trusted root → CertChainError."""
    from harness.sim.api import CsmsSimConfig

    csms = CsmsSimulator(CsmsSimConfig())
    st = StationState("CS1")

    def answer(action, payload):
        if action == "Authorize":
            return pnc._csms_authorize(csms, st, payload)
        return {}

    async def body(sim, sent):
        from harness.iso15118.evcc import Evcc, EvccSessionFailed

        pki = pnc.sim_v2g_pki(sim)
        where = await sim.perform("secc", {"evse": 1, "tls": True})
        evcc = Evcc("iso2", pki=pki, tls=True, auth="pnc")
        evcc._use_contract(pki.keys["contract_foreign_root"], [pki.certs[n] for n in (
            "contract_foreign_root", "foreign_mo_subca2", "foreign_mo_subca1")])
        await evcc.connect(where["host"], where["port"], timeout=5)
        try:
            await evcc.run({"ongoing_interval": 0.05, "max_ongoing": 40})
        except EvccSessionFailed:
            pass
        finally:
            await evcc.close()
        (authorize,) = calls(sent, "Authorize")
        assert "certificate" in authorize and "iso15118CertificateHashData" not in authorize
        assert authorize["certificate"].startswith("-----BEGIN CERTIFICATE-----")
        codes = [x.response["ResponseCode"] for x in evcc.exchanges if x.response_name == "AuthorizationRes"]
        assert codes[-1] == "FAILED_CertChainError"
        assert not calls(sent, "TransactionEvent")
    with_station(body, answer=answer)


def test_station_power_limit_reaches_the_ev():
    async def body(sim, sent):
        await sim.perform("set_limit", {"evse": 1, "limit_kw": 50})
        _where, _evcc, exchanges = await ev_session(sim)
        from harness.iso15118.secc import value_of
        (cpd,) = responses(exchanges, "ChargeParameterDiscoveryRes")
        assert value_of(cpd["DC_EVSEChargeParameter"]["EVSEMaximumPowerLimit"]) == 50_000
        demand = responses(exchanges, "CurrentDemandRes")
        assert demand and all(value_of(d["EVSEMaximumPowerLimit"]) == 50_000 for d in demand)
    with_station(body)


def test_secc_restarts_when_the_ev_wants_the_other_security():
    async def body(sim, sent):
        first = await sim.perform("secc", {"evse": 1, "tls": True})
        assert (await sim.perform("secc", {"evse": 1}))["port"] == first["port"]      # same SECC
        plain = await sim.perform("secc", {"evse": 1, "tls": False})
        assert plain["tls"] is False
        _where, _evcc, exchanges = await ev_session(sim, auth="eim", tls=False, plan={"stop_after": "SessionSetupReq"})
        assert responses(exchanges, "SessionSetupRes")
        assert (await sim.perform("secc_stop", {"evse": 1})) == {"stopped": True}
    with_station(body)


# -- CSMS side ---------------------------------------------------------------------------------------

def _hash_data(name: str) -> list[dict[str, str]]:
    from harness.pki.ocsp import iso15118_certificate_hash_data

    pki = pnc.sim_v2g_pki()
    leaf, intermediates, root = pki.chain(name)
    return iso15118_certificate_hash_data([leaf, *intermediates, root])


def test_csms_checks_the_contract_in_authorize():
    assert pnc.contract_certificate_status(_hash_data("contract"), None) == "Accepted"
    assert pnc.contract_certificate_status(_hash_data("contract_revoked"), None) == "CertificateRevoked"
    assert pnc.contract_certificate_status(_hash_data("contract_expired"), None) == "CertificateExpired"
    assert pnc.contract_certificate_status(_hash_data("contract_foreign_root"), None) == "CertChainError"
    assert pnc.contract_certificate_status(None, None) == "NoCertificateAvailable"


def test_csms_authorize_answer_and_its_fault():
    from harness.sim.api import CsmsSimConfig

    emaid = pnc.sim_v2g_pki().emaid
    request = {"idToken": {"idToken": emaid, "type": "eMAID"},
               "iso15118CertificateHashData": _hash_data("contract_revoked")}
    st = StationState("CS1")
    sim = CsmsSimulator(CsmsSimConfig())
    assert pnc._csms_authorize(sim, st, request) == {"idTokenInfo": {"status": "Invalid"},
                                                     "certificateStatus": "CertificateRevoked"}
    good = {**request, "iso15118CertificateHashData": _hash_data("contract")}
    assert pnc._csms_authorize(sim, st, good)["idTokenInfo"]["status"] == "Accepted"
    faulty = CsmsSimulator(CsmsSimConfig(), fault="pnc_certificate_status_ignored")
    assert pnc._csms_authorize(faulty, st, request)["certificateStatus"] == "Accepted"
