"""The harness's EVCC: it plays the EV against a charger's SECC under test.

    evcc = Evcc("iso2", ev=EvModel.truck(), pki=pki, tls=True, auth="pnc", trace=trace)
    await evcc.connect(iface="eth1")            # SDP, TCP/TLS, supportedAppProtocol
    ex = await evcc.request("SessionSetupReq")  # one request/response, body from the EV model
    ex = await evcc.request("CurrentDemandReq", {"EVTargetCurrent": {"Value": 9999}})
    await evcc.run({"loops": 5})                # or: the whole session on autopilot
    await evcc.close()

Protocols: "din" (DIN SPEC 70121 DC, EIM), "iso2" (ISO 15118-2 DC or AC, EIM or PnC), "iso20_dc"
(ISO 15118-20 DC, scheduled or dynamic mode, EIM or PnC), "iso20_ac" (ISO 15118-20 AC, scheduled
mode, EIM or PnC). Request bodies come from the EV model
and the session state (SessionID, EVSE limits, SAScheduleTupleID, GenChallenge, selected
services); `overrides` are deep-merged over them, where a value of None deletes that key and
these pseudo-keys change the frame instead of the body:

    "@session_id": bytes      header SessionID to send (default: the session's)
    "@signature": None|dict   no Signature / this Signature (default: signed where PnC needs it)
    "@timestamp": int         -20 header TimeStamp

Every exchange is checked, never raising for a finding (exchange.violations, clause named):
response type and ResponseCode, SessionID consistency, the SECC's performance time and the
sequence loop timeouts. Wrong response type, timeout and closed connection do raise
(EvccUnexpectedResponse / EvccTimeout / EvccConnectionClosed), the exchange is still recorded.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization

from harness.iso15118 import messages as m
from harness.iso15118 import signing, tls as v2g_tls
from harness.iso15118.ev_model import EvModel
from harness.iso15118.exi import DecodeError, EncodeError, codec_for
from harness.iso15118.v2gtp import V2gtpError, V2gtpTimeoutError, read_v2gtp, write_v2gtp

_DER = serialization.Encoding.DER


# The EVSE tells the EV to end the charge loop (EVSENotification, or a status code that means stop).
STOP_NOTIFICATIONS = frozenset({"StopCharging", "Terminate"})
STOP_STATUS_CODES = frozenset({"EVSE_Shutdown", "EVSE_EmergencyShutdown", "EVSE_UtilityInterruptEvent",
                               "EVSE_Malfunction"})


def evse_signals_stop(response: dict) -> bool:
    """Whether a charge-loop response (DC, AC or -20) tells the EV to stop charging."""
    status = response.get("DC_EVSEStatus") or response.get("AC_EVSEStatus") or response.get("EVSEStatus") or {}
    return (status.get("EVSENotification") in STOP_NOTIFICATIONS
            or status.get("EVSEStatusCode") in STOP_STATUS_CODES)


class EvccError(Exception):
    """The EVCC could not complete what was asked."""


class EvccTimeout(EvccError, TimeoutError):
    """No response within the EVCC's timeout."""


class EvccConnectionClosed(EvccError, ConnectionError):
    """The SECC closed the connection (or sent a broken V2GTP frame)."""


class EvccConnectError(EvccError, ConnectionError):
    """No TCP/TLS connection to the SECC (refused, unreachable, TLS handshake failed)."""


class EvccUnexpectedResponse(EvccError):
    """The SECC answered with another message than the response to our request."""


class EvccSessionFailed(EvccError):
    """run(): the SECC answered with a FAILED response code, the session cannot go on."""

    def __init__(self, message: str, exchange: "V2gExchange") -> None:
        super().__init__(message)
        self.exchange = exchange


@dataclass
class V2gExchange:
    request_name: str
    request: dict                  # body (without header)
    response_name: str
    response: dict                 # body (without header)
    elapsed_s: float
    request_exi: bytes
    response_exi: bytes
    response_code: str
    violations: list[str] = field(default_factory=list)
    sent_at: float = 0.0           # time.monotonic() when the request left
    session_id: bytes | None = None  # SessionID in the response header

    @property
    def ok(self) -> bool:
        return m.response_ok(self.response_code)

    def summary(self) -> dict:
        """JSON-friendly one-liner of the exchange (netns side results, reports)."""
        return {"request": self.request_name, "response": self.response_name, "code": self.response_code,
                "elapsed_s": round(self.elapsed_s, 4), "violations": list(self.violations)}


def deep_merge(base: Any, overrides: Any) -> Any:
    """overrides over base: dicts merge recursively, None deletes a key, anything else replaces."""
    if not isinstance(base, dict) or not isinstance(overrides, dict):
        return overrides
    out = dict(base)
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass
class SessionState:
    protocol: str | None = None
    session_id: bytes = b""
    evse_id: str | None = None
    payment_options: list[str] = field(default_factory=list)
    charge_service_id: int = 1
    offered_services: list[dict] = field(default_factory=list)
    energy_modes: list[str] = field(default_factory=list)
    gen_challenge: bytes | None = None
    auth_services: list[str] = field(default_factory=list)
    sa_schedule_tuple_id: int = 1
    evse: dict[str, float] = field(default_factory=dict)   # EVSE limits and present values, SI units
    evse_processing: str | None = None
    receipt_required: bool = False
    meter_info: dict | None = None
    # -20
    energy_services: list[int] = field(default_factory=list)
    selected_service: tuple[int, int] | None = None
    parameter_sets: dict[int, list[dict]] = field(default_factory=dict)
    schedule_tuple_id: int | None = None
    dynamic: bool = False
    pmax: float | None = None                 # -2: PMax of the first SAScheduleTuple's first entry, W
    # CertificateInstallation
    installed_contract: dict | None = None


# -20 service ids (ISO 15118-20 Table 204 as cited by public stacks)
ISO20_SERVICE = {"AC": 1, "DC": 2, "WPT": 3, "DC_ACDP": 4, "AC_BPT": 5, "DC_BPT": 6, "DC_ACDP_BPT": 7,
                 "MCS": 8, "MCS_BPT": 9}
CONTROL_MODE = {1: "scheduled", 2: "dynamic"}


class Evcc:
    def __init__(self, protocol: str, *, ev: EvModel | None = None, pki=None, tls: bool = False,
                 auth: str = "eim", trace=None, timeouts: dict | None = None,
                 offer: list[str] | None = None, keylog: str | os.PathLike | None = None,
                 peer_name: str | None = None, tls_group: str | None = None) -> None:
        self.info = m.protocol_info(protocol)
        if self.info.energy != "DC" and protocol != "iso20_ac":
            raise EvccError(f"{protocol}: only the DC protocols and -20 AC are emulated so far")
        if auth not in ("eim", "pnc"):
            raise EvccError(f"auth must be 'eim' or 'pnc', not {auth!r}")
        if auth == "pnc" and pki is None:
            raise EvccError("PnC needs a V2G PKI (pki=make_v2g_pki(...)) for the contract chain")
        if auth == "pnc" and protocol == "din":
            raise EvccError("DIN SPEC 70121 has no Plug & Charge")
        if tls and pki is None:
            raise EvccError("TLS needs a V2G PKI (the V2G root to check the SECC; -20: the OEM chain)")
        self.protocol = protocol
        self.ev = ev or EvModel()
        self.pki = pki
        self.tls = tls
        self.auth = auth
        self.trace = trace
        self.timeouts = dict(timeouts or {})
        self.offer = list(offer or [protocol])
        self.keylog = keylog
        self.peer = peer_name or "SECC"
        # Key-exchange group other than the profile's (secp256r1 for -2, secp521r1 for -20), for
        # SECCs that do not implement the profile's group; a deliberate deviation, so say it.
        self.tls_group = tls_group
        self.exchanges: list[V2gExchange] = []
        self.state = SessionState()
        self.tls_info: tuple[str, str] | None = None
        self.discovery = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._loop_started: dict[str, float] = {}
        self._contract_key = None
        self._contract_chain: list[bytes] = []
        self._stopping = False            # PowerDelivery builds "Stop" once the charge loop is over
        self._install = False
        self._energy_mode = "DC_extended"
        self._plan: dict = {}
        self._precharge_cycles = 0
        self._connected_at: float | None = None
        if pki is not None:   # also in EIM: request("PaymentDetailsReq") must still be possible
            chain = pki.chains["contract"]
            self._use_contract(pki.keys["contract"], [pki.certs[n] for n in [chain["leaf"], *chain["intermediates"]]])

    def _use_contract(self, key, certs) -> None:
        self._contract_key = key
        self._contract_chain = [c.public_bytes(_DER) for c in certs]

    # -- connection ---------------------------------------------------------------------------
    async def connect(self, host: str | None = None, port: int | None = None, *, iface: str | None = None,
                      timeout: float = 10.0) -> None:
        """SDP (unless host/port given), TCP or TLS, then the supportedAppProtocol handshake."""
        from harness.iso15118.sdp import Security, discover_secc
        from harness.iso15118.v2gtp import open_v2g_connection

        if self._writer is not None:
            raise EvccError("already connected")
        if host is None or port is None:
            if not iface:
                raise EvccError("connect() needs host and port, or iface for SDP")
            wanted = Security.TLS if self.tls else Security.NO_TLS
            max_requests = max(1, min(50, int(timeout / 0.25)))
            self.discovery = await discover_secc(iface, wanted, max_requests=max_requests)
            host, port = self.discovery.response.address, self.discovery.response.port
            if self.discovery.response.security != wanted:
                raise EvccError(f"SDP: the SECC offers security {self.discovery.response.security.name}, "
                                f"we asked for {wanted.name}")
        self.peer = f"[{host}]:{port}" if self.peer == "SECC" else self.peer
        context = self._ssl_context() if self.tls else None
        try:
            self._reader, self._writer = await open_v2g_connection(host, port, iface, ssl_context=context,
                                                                   timeout=timeout)
        except (OSError, ssl.SSLError, V2gtpError) as exc:
            raise EvccConnectError(f"cannot connect to [{host}]:{port}: {type(exc).__name__}: {exc!r}") from exc
        self._connected_at = time.monotonic()
        if self.trace is not None:
            self.trace.event(self.peer, f"{'TLS' if self.tls else 'TCP'} connected", "CONNECT")
        if context is not None:
            ssl_object = self._writer.get_extra_info("ssl_object")
            profile = v2g_tls.Profile.ISO20 if self.info.is_iso20 else v2g_tls.Profile.ISO2
            self.tls_info = v2g_tls.check_negotiated(ssl_object, profile)
        request = m.sap_request(self.offer)
        exchange = await self.request("supportedAppProtocolReq", _body=request)
        chosen = m.sap_selected(request, {"supportedAppProtocolRes": exchange.response})
        if exchange.response_code not in m.SAP_OK or chosen is None:
            raise EvccSessionFailed(f"supportedAppProtocol: {exchange.response_code}", exchange)
        if chosen != self.protocol:
            raise EvccSessionFailed(f"the SECC chose {chosen}, this EVCC speaks {self.protocol}", exchange)
        self.state.protocol = chosen
        self.state.session_id = bytes(8) if self.info.is_iso20 else bytes(1)

    def _ssl_context(self) -> ssl.SSLContext:
        pki = self.pki
        root = pki.cert_paths["v2g_root"]
        if self.info.is_iso20:
            context = v2g_tls.iso20_client_context(root, pki.chain_paths["oem_prov"], pki.key_paths["oem_prov"],
                                                   keylog=self.keylog)
        else:
            context = v2g_tls.iso2_client_context(root, keylog=self.keylog)
        if self.tls_group:
            context.set_ecdh_curve(self.tls_group)
            self._trace_event(f"TLS key exchange restricted to {self.tls_group} instead of the profile's group",
                              "NOTE")
        return context

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is None:
            return
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 2.0)
        except (asyncio.TimeoutError, OSError, ssl.SSLError):
            pass
        if self.trace is not None:
            self.trace.event(self.peer, "connection closed by the EVCC", "CLOSE")

    # -- one request ----------------------------------------------------------------------------
    def timeout_for(self, name: str) -> float:
        if name in self.timeouts:
            return float(self.timeouts[name])
        return m.evcc_timeout(self.protocol, name).seconds * float(self.timeouts.get("scale", 1.0))

    def build(self, name: str) -> dict:
        """The default body of request `name` from the EV model and the session state."""
        family = self.info.family
        builder = None
        if family == "iso2" and self._is_ac():     # AC bodies where they differ from DC
            builder = getattr(self, f"_iso2_ac_{name}", None)
        builder = builder or getattr(self, f"_{family}_{name}", None)
        if builder is None:
            raise EvccError(f"{self.protocol}: no builder for {name}")
        return builder()

    async def request(self, name: str, overrides: dict | None = None, timeout: float | None = None, *,
                      _body: dict | None = None) -> V2gExchange:
        if self._writer is None or self._reader is None:
            raise EvccConnectionClosed("not connected")
        overrides = dict(overrides or {})
        frame = {k: overrides.pop(k) for k in list(overrides) if k.startswith("@")}
        is_sap = name == "supportedAppProtocolReq"
        if is_sap:
            message = deep_merge(_body or m.sap_request(self.offer), {"supportedAppProtocolReq": overrides}
                                 if overrides else {})
            body = message["supportedAppProtocolReq"]
        else:
            body = deep_merge(self.build(name), overrides)
            signature = frame["@signature"] if "@signature" in frame else self._signature_for(name, body)
            message = m.wrap(self.protocol, name, body, frame.get("@session_id", self.state.session_id),
                             signature=signature, timestamp=frame.get("@timestamp"))
        codec = m.SAP_CODEC if is_sap else m.codec_name(self.protocol, name)
        try:
            exi = codec_for(codec).encode(message)
        except EncodeError as exc:
            raise EvccError(f"{name} does not fit the schema: {exc}") from exc
        wait = timeout if timeout is not None else self.timeout_for(name)
        expected = m.response_name(name)
        self._trace("tx", message, name)
        sent = time.monotonic()
        try:
            await write_v2gtp(self._writer, m.payload_type(self.protocol, name), exi)
            ptype, payload = await read_v2gtp(self._reader, wait)
        except V2gtpTimeoutError:
            self._trace_event(f"no {expected} within {wait} s", "TIMEOUT")
            raise EvccTimeout(f"{name}: no response within {wait} s "
                              f"({m.evcc_timeout(self.protocol, name).clause})") from None
        except (V2gtpError, ConnectionError, ssl.SSLError, OSError) as exc:
            self._trace_event(f"connection lost waiting for {expected}: {exc}", "CLOSE")
            raise EvccConnectionClosed(f"{name}: connection lost before the response: {exc}") from exc
        elapsed = time.monotonic() - sent
        rx_codec = m.SAP_CODEC if is_sap else m.codec_for_payload(self.protocol, ptype)
        try:
            decoded = codec_for(rx_codec).decode(payload)
        except DecodeError as exc:
            self._trace_event(f"undecodable response ({rx_codec}): {exc}; {payload.hex()[:200]}", "GARBAGE")
            raise EvccUnexpectedResponse(f"{name}: response does not decode with schema {rx_codec}: {exc}") from exc
        got = m.unwrap(self.protocol, decoded)
        self._trace("rx", decoded, got.name)
        exchange = V2gExchange(name, body, got.name, got.body, elapsed, exi, payload,
                               str(got.body.get("ResponseCode", "")), sent_at=sent, session_id=got.session_id)
        self.exchanges.append(exchange)
        if got.name != expected:
            exchange.violations.append(f"{self.info.title}: expected {expected}, got {got.name}")
            raise EvccUnexpectedResponse(f"{name}: expected {expected}, the SECC sent {got.name}")
        self._check(exchange, got, frame)
        self._absorb(exchange, got)
        return exchange

    def _signature_for(self, name: str, body: dict) -> dict | None:
        if self.protocol == "iso2" and self.auth == "pnc" and name in ("AuthorizationReq", "MeteringReceiptReq") \
                and "Id" in body:
            return signing.sign_elements("iso2", [{name: body}], self._contract_key)
        if self.protocol == "iso2" and name == "CertificateInstallationReq" and "Id" in body:
            return signing.sign_elements("iso2", [{name: body}], self.pki.keys["oem_prov"])
        if self.info.is_iso20 and name == "AuthorizationReq" and "PnC_AReqAuthorizationMode" in body:
            return signing.sign_elements("iso20", [{"PnC_AReqAuthorizationMode": body["PnC_AReqAuthorizationMode"]}],
                                         self._contract_key)
        return None

    # -- checks ---------------------------------------------------------------------------------
    def _check(self, exchange: V2gExchange, got: m.Unwrapped, frame: dict) -> None:
        name = exchange.request_name
        if name != "supportedAppProtocolReq":
            perf = m.secc_performance_time(self.protocol, name)
            if exchange.elapsed_s > perf.seconds:
                exchange.violations.append(
                    f"{perf.clause}: {exchange.response_name} after {exchange.elapsed_s:.3f} s > {perf.seconds} s")
            sent_sid = frame.get("@session_id", self.state.session_id)
            if name == "SessionSetupReq":
                setup = m.sequence_timings(self.protocol).communication_setup
                if self._connected_at is not None and time.monotonic() - self._connected_at > setup.seconds:
                    exchange.violations.append(f"{setup.clause}: SessionSetupRes "
                                               f"{time.monotonic() - self._connected_at:.1f} s after connecting")
                if not got.session_id or got.session_id == bytes(len(got.session_id)):
                    exchange.violations.append(f"{self.info.title} SessionSetupRes: the SECC must assign a "
                                               f"non-zero SessionID, got {got.session_id!r}")
            elif got.session_id != sent_sid and "@session_id" not in frame:
                exchange.violations.append(f"{self.info.title} MessageHeader: SessionID "
                                           f"{(got.session_id or b'').hex()} differs from the session's "
                                           f"{sent_sid.hex()}")
            if self.info.is_iso20 and got.timestamp is None:
                exchange.violations.append("ISO 15118-20 MessageHeader: TimeStamp missing")
        loop = m.LOOPS.get(name)
        if loop:
            first = self._loop_started.setdefault(name, exchange.sent_at)
            limit = getattr(m.sequence_timings(self.protocol), loop)
            spent = time.monotonic() - first
            if spent > limit.seconds:
                exchange.violations.append(f"{limit.clause}: {name} loop running for {spent:.1f} s > {limit.seconds} s")

    # -- state updates --------------------------------------------------------------------------
    def _absorb(self, exchange: V2gExchange, got: m.Unwrapped) -> None:
        body = got.body
        st = self.state
        name = got.name
        if name == "SessionSetupRes" and got.session_id:
            st.session_id = got.session_id
            st.evse_id = body.get("EVSEID")
        if "EVSEProcessing" in body:
            st.evse_processing = body["EVSEProcessing"]
            if body["EVSEProcessing"] == "Finished":
                self._loop_started.pop(exchange.request_name, None)
        if name == "CertificateInstallationRes" and self.info.family == "iso2":
            self._install_contract(exchange, got)
        handler = getattr(self, f"_absorb_{self.info.family}_{name}", None) or getattr(self, f"_absorb_{name}", None)
        if handler is not None:
            handler(body)
        self._absorb_evse_values(body)

    def _absorb_evse_values(self, body: dict) -> None:
        """EVSE limits and present values from any DC response (-2/DIN PhysicalValue, -20 RationalNumber)."""
        evse = self.state.evse
        sources = [body]
        for key in ("DC_EVSEChargeParameter", "DC_CPDResEnergyTransferMode", "BPT_DC_CPDResEnergyTransferMode",
                    "AC_EVSEChargeParameter"):
            if isinstance(body.get(key), dict):
                sources.append(body[key])
        for key in ("Scheduled_DC_CLResControlMode", "Dynamic_DC_CLResControlMode", "AC_CPDResEnergyTransferMode",
                    "Scheduled_AC_CLResControlMode"):
            if isinstance(body.get(key), dict):
                sources.append(body[key])
        for src in sources:
            for key, value in src.items():
                numeric = isinstance(value, dict) and ("Multiplier" in value or "Exponent" in value)
                if key.startswith("EVSE") and numeric:
                    evse[key] = m.number(value)

    def _absorb_ServiceDiscoveryRes(self, body: dict) -> None:
        st = self.state
        st.payment_options = list((body.get("PaymentOptionList") or {}).get("PaymentOption", []))
        if isinstance(body.get("PaymentOptions"), dict):   # DIN
            st.payment_options = list(body["PaymentOptions"].get("PaymentOption", []))
        charge = body.get("ChargeService") or {}
        sid = charge.get("ServiceID", (charge.get("ServiceTag") or {}).get("ServiceID"))
        if sid is not None:
            st.charge_service_id = sid
        st.energy_modes = list((charge.get("SupportedEnergyTransferMode") or {}).get("EnergyTransferMode", [])) \
            or ([charge["EnergyTransferType"]] if "EnergyTransferType" in charge else [])
        st.offered_services = list((body.get("ServiceList") or {}).get("Service", []))
        services = (body.get("EnergyTransferServiceList") or {}).get("Service", [])
        st.energy_services = [s["ServiceID"] for s in services]

    def _absorb_iso20_ServiceDetailRes(self, body: dict) -> None:
        sets = (body.get("ServiceParameterList") or {}).get("ParameterSet", [])
        self.state.parameter_sets[body.get("ServiceID", 0)] = sets

    def _absorb_PaymentDetailsRes(self, body: dict) -> None:
        self.state.gen_challenge = body.get("GenChallenge")

    def _absorb_AuthorizationSetupRes(self, body: dict) -> None:
        self.state.auth_services = list(body.get("AuthorizationServices", []))
        pnc = body.get("PnC_ASResAuthorizationMode")
        if pnc:
            self.state.gen_challenge = pnc.get("GenChallenge")

    def _absorb_ChargeParameterDiscoveryRes(self, body: dict) -> None:
        tuples = (body.get("SAScheduleList") or {}).get("SAScheduleTuple", [])
        if tuples:
            self.state.sa_schedule_tuple_id = tuples[0]["SAScheduleTupleID"]
            entries = (tuples[0].get("PMaxSchedule") or {}).get("PMaxScheduleEntry", [])
            if entries and isinstance(entries[0].get("PMax"), dict):   # DIN's PMax is a bare number
                self.state.pmax = m.number(entries[0]["PMax"])

    def _absorb_ScheduleExchangeRes(self, body: dict) -> None:
        tuples = (body.get("Scheduled_SEResControlMode") or {}).get("ScheduleTuple", [])
        if tuples:
            self.state.schedule_tuple_id = tuples[0]["ScheduleTupleID"]

    def _absorb_CurrentDemandRes(self, body: dict) -> None:
        self.state.receipt_required = bool(body.get("ReceiptRequired"))
        self.state.meter_info = body.get("MeterInfo") or self.state.meter_info
        if "SAScheduleTupleID" in body:
            self.state.sa_schedule_tuple_id = body["SAScheduleTupleID"]
        self._step_ev(body)

    def _absorb_DC_ChargeLoopRes(self, body: dict) -> None:
        self.state.meter_info = body.get("MeterInfo") or self.state.meter_info
        self._step_ev(body)

    def _absorb_iso2_ChargingStatusRes(self, body: dict) -> None:
        self.state.receipt_required = bool(body.get("ReceiptRequired"))
        self.state.meter_info = body.get("MeterInfo") or self.state.meter_info
        if "SAScheduleTupleID" in body:
            self.state.sa_schedule_tuple_id = body["SAScheduleTupleID"]
        # AC: the EV's on-board charger draws what both allow at the mains voltage
        ev = self.ev
        phases = self._ac_phases()
        ev.step(ev.ac_current(self._evse_max_current()), self._ac_phase_voltage() * phases)

    def _step_ev(self, body: dict) -> None:
        current = m.number(body.get("EVSEPresentCurrent")) or 0.0
        voltage = m.number(body.get("EVSEPresentVoltage")) or self.ev.battery_voltage
        self.ev.step(current, voltage)

    def _install_contract(self, exchange: V2gExchange, got: m.Unwrapped) -> None:
        """CertificateInstallationRes: check the CPS signature, decrypt the new contract key with
        the OEM provisioning key, and use the new chain from now on."""
        from cryptography import x509

        from harness.pki.contract_key import decrypt_contract_key_iso2

        body = got.body
        if not m.response_ok(body.get("ResponseCode")):
            return
        title = self.info.title
        signed, unchecked = [], []
        for name in ("ContractSignatureCertChain", "ContractSignatureEncryptedPrivateKey", "DHpublickey", "eMAID"):
            if isinstance(body.get(name), dict):
                try:   # our codec cannot encode every element as a fragment (eMAID has two types in -2)
                    signing.fragment_exi("iso2", {name: body[name]})
                    signed.append({name: body[name]})
                except EncodeError:
                    unchecked.append(name)
        if unchecked:
            self._trace_event(f"CertificateInstallationRes: digest of {', '.join(unchecked)} not checked "
                              "(no EXI fragment grammar for it); the SignatureValue still is", "NOTE")
        cps = (body.get("SAProvisioningCertificateChain") or {}).get("Certificate")
        problem = signing.signature_problem("iso2", got.signature, signed, cps) if cps else "no SAProvisioning chain"
        if problem:
            exchange.violations.append(f"{title} CertificateInstallationRes signature (CPS leaf): {problem}")
        chain = body["ContractSignatureCertChain"]
        certs = [x509.load_der_x509_certificate(c) for c in
                 [chain["Certificate"], *(chain.get("SubCertificates") or {}).get("Certificate", [])]]
        try:
            key = decrypt_contract_key_iso2(body["ContractSignatureEncryptedPrivateKey"]["value"],
                                            body["DHpublickey"]["value"], self.pki.keys["oem_prov"])
        except ValueError as exc:
            exchange.violations.append(f"{title} CertificateInstallationRes: contract key does not decrypt: {exc}")
            return
        if key.public_key().public_numbers() != certs[0].public_key().public_numbers():
            exchange.violations.append(f"{title} CertificateInstallationRes: the decrypted key does not belong "
                                       "to the contract certificate")
            return
        self._use_contract(key, certs)
        self.state.installed_contract = {"emaid": body["eMAID"]["value"], "certificates": len(certs)}

    # -- trace ----------------------------------------------------------------------------------
    def _trace(self, direction: str, message: dict, action: str) -> None:
        if self.trace is not None:
            self.trace.add(direction, self.peer, m.to_trace_json(message), kind="V2G", action=action)

    def _trace_event(self, text: str, kind: str) -> None:
        if self.trace is not None:
            self.trace.event(self.peer, text, kind)

    # -- request builders: shared pieces ------------------------------------------------------
    def _dc_status(self) -> dict:
        status = {"EVReady": self.ev.ready, "EVErrorCode": self.ev.error_code, "EVRESSSOC": int(self.ev.soc)}
        if self.protocol == "din":
            status = {"EVReady": self.ev.ready, "EVCabinConditioning": False, "EVRESSConditioning": False,
                      "EVErrorCode": self.ev.error_code, "EVRESSSOC": int(self.ev.soc)}
        return status

    def _contract_chain_body(self, with_id: bool) -> dict:
        if not self._contract_chain:
            raise EvccError("no contract certificate chain: give the EVCC a V2G PKI")
        leaf, *subs = self._contract_chain
        chain: dict[str, Any] = {"Certificate": leaf}
        if with_id:
            chain = {"Id": "id1", **chain}
        if subs:
            chain["SubCertificates"] = {"Certificate": subs}
        return chain

    def _evse_max_current(self) -> float | None:
        e = self.state.evse
        return e.get("EVSEMaximumCurrentLimit") or e.get("EVSEMaximumChargeCurrent") or e.get("EVSEMaxCurrent")

    def _evse_max_power(self) -> float | None:
        e = self.state.evse
        return e.get("EVSEMaximumPowerLimit") or e.get("EVSEMaximumChargePower")

    # -- DIN SPEC 70121 -----------------------------------------------------------------------------
    def _din_SessionSetupReq(self) -> dict:
        return {"EVCCID": self.ev.evcc_id}

    def _din_ServiceDiscoveryReq(self) -> dict:
        return {"ServiceCategory": "EVCharging"}

    def _din_ServicePaymentSelectionReq(self) -> dict:
        return {"SelectedPaymentOption": "ExternalPayment",
                "SelectedServiceList": {"SelectedService": [{"ServiceID": self.state.charge_service_id}]}}

    def _din_ContractAuthenticationReq(self) -> dict:
        return {}

    def _dc_ev_charge_parameter(self) -> dict:
        """DC_EVChargeParameter as DIN 70121 and ISO 15118-2 share it (-2 adds DepartureTime)."""
        ev = self.ev
        return {"DC_EVStatus": self._dc_status(),
                "EVMaximumCurrentLimit": m.pv(ev.max_current, "A"),
                "EVMaximumPowerLimit": m.pv(ev.max_power, "W"),
                "EVMaximumVoltageLimit": m.pv(ev.max_voltage, "V"),
                "EVEnergyCapacity": m.pv(ev.capacity_wh, "Wh"),
                "EVEnergyRequest": m.pv(ev.energy_request_wh, "Wh"),
                "FullSOC": int(ev.full_soc), "BulkSOC": int(ev.bulk_soc)}

    def _din_ChargeParameterDiscoveryReq(self) -> dict:
        return {"EVRequestedEnergyTransferType": "DC_extended", "DC_EVChargeParameter": self._dc_ev_charge_parameter()}

    def _din_CableCheckReq(self) -> dict:       # the same body in ISO 15118-2
        return {"DC_EVStatus": self._dc_status()}

    def _din_PreChargeReq(self) -> dict:        # the same body in ISO 15118-2
        return {"DC_EVStatus": self._dc_status(), "EVTargetVoltage": m.pv(self.ev.battery_voltage, "V"),
                "EVTargetCurrent": m.pv(self.ev.precharge_current, "A")}

    def _din_PowerDeliveryReq(self) -> dict:
        start = not self._stopping
        return {"ReadyToChargeState": start, "DC_EVPowerDeliveryParameter": {
            "DC_EVStatus": self._dc_status(), "BulkChargingComplete": self.ev.bulk_complete,
            "ChargingComplete": not start or self.ev.charging_complete}}

    def _din_CurrentDemandReq(self) -> dict:
        return self._iso2_CurrentDemandReq()

    def _din_WeldingDetectionReq(self) -> dict:
        return {"DC_EVStatus": self._dc_status()}

    def _din_SessionStopReq(self) -> dict:
        return {}

    # -- ISO 15118-2 ----------------------------------------------------------------------------
    def _iso2_SessionSetupReq(self) -> dict:
        return {"EVCCID": self.ev.evcc_id}

    def _iso2_ServiceDiscoveryReq(self) -> dict:
        return {"ServiceCategory": "EVCharging"}

    def _iso2_ServiceDetailReq(self) -> dict:
        services = self.state.offered_services
        return {"ServiceID": services[0]["ServiceID"] if services else 2}

    def _iso2_PaymentServiceSelectionReq(self) -> dict:
        selected = [{"ServiceID": self.state.charge_service_id}]
        if self._install:
            selected.append({"ServiceID": 2, "ParameterSetID": 1})   # Certificate service: installation
        return {"SelectedPaymentOption": "Contract" if self.auth == "pnc" else "ExternalPayment",
                "SelectedServiceList": {"SelectedService": selected}}

    def _iso2_PaymentDetailsReq(self) -> dict:
        return {"eMAID": self._emaid(), "ContractSignatureCertChain": self._contract_chain_body(with_id=True)}

    def _emaid(self) -> str:
        if self.state.installed_contract:
            return self.state.installed_contract["emaid"]
        return self.pki.emaid

    def _iso2_AuthorizationReq(self) -> dict:
        if self.auth == "pnc" and self.state.gen_challenge is not None:
            return {"Id": "id1", "GenChallenge": self.state.gen_challenge}
        return {}

    def _iso2_CertificateInstallationReq(self) -> dict:
        roots = []
        for name in ("v2g_root", "mo_root"):
            cert = self.pki.certs[name]
            roots.append({"X509IssuerName": cert.issuer.rfc4514_string(), "X509SerialNumber": cert.serial_number})
        return {"Id": "id1", "OEMProvisioningCert": self.pki.certs["oem_prov"].public_bytes(_DER),
                "ListOfRootCertificateIDs": {"RootCertificateID": roots}}

    def _iso2_ChargeParameterDiscoveryReq(self) -> dict:
        return {"RequestedEnergyTransferMode": self._energy_mode,
                "DC_EVChargeParameter": {"DepartureTime": int(self.ev.departure_s), **self._dc_ev_charge_parameter()}}

    _iso2_CableCheckReq = _din_CableCheckReq
    _iso2_PreChargeReq = _din_PreChargeReq

    def _iso2_PowerDeliveryReq(self) -> dict:
        stopping = self._stopping
        return {"ChargeProgress": "Stop" if stopping else "Start",
                "SAScheduleTupleID": self.state.sa_schedule_tuple_id,
                "DC_EVPowerDeliveryParameter": {
                    "DC_EVStatus": self._dc_status(), "BulkChargingComplete": self.ev.bulk_complete,
                    "ChargingComplete": stopping or self.ev.charging_complete}}

    def _iso2_CurrentDemandReq(self) -> dict:
        ev = self.ev
        power = min(ev.max_power, self._evse_max_power() or ev.max_power)
        return {"DC_EVStatus": self._dc_status(),
                "EVTargetCurrent": m.pv(ev.target_current(self._evse_max_current(), self._evse_max_power()), "A"),
                "EVMaximumVoltageLimit": m.pv(ev.max_voltage, "V"),
                "EVMaximumCurrentLimit": m.pv(ev.max_current, "A"),
                "EVMaximumPowerLimit": m.pv(ev.max_power, "W"),
                "BulkChargingComplete": ev.bulk_complete, "ChargingComplete": ev.charging_complete,
                "RemainingTimeToFullSoC": m.pv(min(ev.remaining_time_s(power, ev.full_soc), 32767), "s"),
                "RemainingTimeToBulkSoC": m.pv(min(ev.remaining_time_s(power, ev.bulk_soc), 32767), "s"),
                "EVTargetVoltage": m.pv(ev.target_voltage(), "V")}

    def _iso2_MeteringReceiptReq(self) -> dict:
        meter = self.state.meter_info or {"MeterID": "unknown"}
        body = {"Id": "id2", "SessionID": self.state.session_id, "SAScheduleTupleID": self.state.sa_schedule_tuple_id,
                "MeterInfo": meter}
        return body

    def _iso2_WeldingDetectionReq(self) -> dict:
        return {"DC_EVStatus": self._dc_status()}

    def _iso2_SessionStopReq(self) -> dict:
        return {"ChargingSession": "Terminate"}

    # -- ISO 15118-2 AC (only the bodies that differ from DC) ---------------------------------
    def _is_ac(self) -> bool:
        return self._energy_mode.startswith("AC_")

    def _ac_phases(self) -> int:
        return 1 if self._energy_mode == "AC_single_phase_core" else self.ev.ac_phases

    def _iso2_ac_ChargeParameterDiscoveryReq(self) -> dict:
        ev = self.ev
        wh = ev.energy_request_wh
        return {"RequestedEnergyTransferMode": self._energy_mode,
                "AC_EVChargeParameter": {
                    "DepartureTime": int(ev.departure_s),
                    "EAmount": m.pv(wh if wh <= 32767 else round(wh, -3), "Wh"),
                    "EVMaxVoltage": m.pv(ev.ac_max_voltage, "V"),
                    "EVMaxCurrent": m.pv(ev.ac_max_current, "A"),
                    "EVMinCurrent": m.pv(ev.ac_min_current, "A")}}

    def _iso2_ac_PowerDeliveryReq(self) -> dict:
        body: dict[str, Any] = {"ChargeProgress": "Stop" if self._stopping else "Start",
                                "SAScheduleTupleID": self.state.sa_schedule_tuple_id}
        if not self._stopping:
            # the profile the EV intends to follow: what its on-board charger will draw within the EVSE limit
            phases = self._ac_phases()
            watts = self.ev.ac_power(self.ev.ac_current(self._evse_max_current()), self._ac_phase_voltage(), phases)
            if self.state.pmax is not None:     # [V2G2-225]: the profile adheres to PMax of the chosen tuple
                watts = min(watts, self.state.pmax)
            body["ChargingProfile"] = {"ProfileEntry": [{
                "ChargingProfileEntryStart": 0, "ChargingProfileEntryMaxPower": m.pv(round(watts), "W"),
                "ChargingProfileEntryMaxNumberOfPhasesInUse": phases}]}
        return body

    def _ac_phase_voltage(self) -> float:
        """Phase-to-neutral voltage from EVSENominalVoltage: SECCs send either the phase voltage (230 V)
        or, for three phases, the line-to-line one (400 V); the EV's power arithmetic needs the former."""
        nominal = self.state.evse.get("EVSENominalVoltage") or 230.0
        return nominal / 3 ** 0.5 if nominal > 300 else nominal

    def _iso2_ChargingStatusReq(self) -> dict:
        return {}

    def _stop_signalled(self, exchange: V2gExchange) -> bool:
        return evse_signals_stop(exchange.response)

    def _check_ac_charge_parameters(self, exchange: V2gExchange) -> None:
        """An AC request needs an AC answer: the EVSE charge parameter type follows the requested energy
        transfer mode (ISO 15118-2 ChargeParameterDiscoveryRes), and the mode must be one that was offered."""
        body = exchange.response
        title = self.info.title
        ac = body.get("AC_EVSEChargeParameter")
        if not isinstance(ac, dict):
            exchange.violations.append(f"{title} ChargeParameterDiscoveryRes: {self._energy_mode} requested, "
                                       "but no AC_EVSEChargeParameter in the answer")
            return
        modes = self.state.energy_modes
        if modes and self._energy_mode not in modes:
            exchange.violations.append(f"{title}: the EV asked for {self._energy_mode}, the SECC offered {modes}")
        max_current = m.number(ac.get("EVSEMaxCurrent"))
        if max_current is not None and not 0 <= max_current <= 63:
            exchange.violations.append(f"{title} ChargeParameterDiscoveryRes: EVSEMaxCurrent {max_current} A is "
                                       "outside an AC charger's 0..63 A")

    def _choose_energy_mode(self) -> None:
        """No energy_mode in the plan: DC_extended, unless the SECC offers AC modes only (an AC wallbox)."""
        offered = self.state.energy_modes
        if not offered or any(mode.startswith("DC") for mode in offered):
            return
        wanted = "AC_three_phase_core" if self.ev.ac_phases == 3 else "AC_single_phase_core"
        for mode in (wanted, "AC_single_phase_core", "AC_three_phase_core"):
            if mode in offered:
                self._energy_mode = mode
                self._trace_event(f"the SECC offers only {offered}: charging with {mode}", "NOTE")
                return

    async def _run_iso2_ac(self, plan: dict) -> None:
        """The AC tail of a -2 session: no CableCheck/PreCharge/CurrentDemand/WeldingDetection."""
        cpd = await self._until_finished("ChargeParameterDiscoveryReq")
        if cpd is not None:
            self._check_ac_charge_parameters(cpd)
        await self._step("PowerDeliveryReq")
        await self._charge_loop("ChargingStatusReq")
        if self.state.receipt_required and self.auth == "pnc":
            await self._step("MeteringReceiptReq")
        self._stopping = True
        await self._step("PowerDeliveryReq")
        if self._plan.get("session_stop", True):
            await self._step("SessionStopReq")

    # -- ISO 15118-20 DC ------------------------------------------------------------------------
    def _iso20_SessionSetupReq(self) -> dict:
        return {"EVCCID": self.ev.evcc_id_20}

    def _iso20_AuthorizationSetupReq(self) -> dict:
        return {}

    def _iso20_AuthorizationReq(self) -> dict:
        if self.auth == "pnc":
            pnc = {"Id": "id1", "GenChallenge": self.state.gen_challenge or bytes(16),
                   "ContractCertificateChain": self._contract_chain_body(with_id=False)}
            return {"SelectedAuthorizationService": "PnC", "PnC_AReqAuthorizationMode": pnc}
        return {"SelectedAuthorizationService": "EIM", "EIM_AReqAuthorizationMode": {}}

    def _iso20_ServiceDiscoveryReq(self) -> dict:
        return {}

    def _iso20_ServiceDetailReq(self) -> dict:
        return {"ServiceID": self._iso20_service_id()}

    def _iso20_service_id(self) -> int:
        offered = self.state.energy_services
        if self.protocol == "iso20_ac":
            return ISO20_SERVICE["AC"]
        preferred = [ISO20_SERVICE["MCS"]] if self.ev.max_current > 500 else []
        for sid in [*preferred, ISO20_SERVICE["DC"]]:
            if sid in offered:
                return sid
        return offered[0] if offered else ISO20_SERVICE["DC"]

    def _iso20_ServiceSelectionReq(self) -> dict:
        if self.state.selected_service is None:
            self.state.selected_service = self._pick_parameter_set()
        sid, psid = self.state.selected_service
        return {"SelectedEnergyTransferService": {"ServiceID": sid, "ParameterSetID": psid}}

    def _pick_parameter_set(self) -> tuple[int, int]:
        sid = self._iso20_service_id()
        wanted = 2 if self.state.dynamic else 1
        sets = self.state.parameter_sets.get(sid, [])
        for ps in sets:
            for param in ps.get("Parameter", []):
                if param.get("Name") == "ControlMode" and param.get("intValue") == wanted:
                    return sid, ps["ParameterSetID"]
        return sid, sets[0]["ParameterSetID"] if sets else 1

    def _iso20_DC_ChargeParameterDiscoveryReq(self) -> dict:
        ev = self.ev
        return {"DC_CPDReqEnergyTransferMode": {
            "EVMaximumChargePower": m.rational(ev.max_power), "EVMinimumChargePower": m.rational(ev.min_power),
            "EVMaximumChargeCurrent": m.rational(ev.max_current),
            "EVMinimumChargeCurrent": m.rational(ev.min_current),
            "EVMaximumVoltage": m.rational(ev.max_voltage), "EVMinimumVoltage": m.rational(ev.min_voltage),
            "TargetSOC": int(ev.target_soc)}}

    def _iso20_ScheduleExchangeReq(self) -> dict:
        ev = self.ev
        energy = {"EVTargetEnergyRequest": m.rational(ev.energy_request_wh),
                  "EVMaximumEnergyRequest": m.rational(ev.energy_to_full_wh),
                  "EVMinimumEnergyRequest": m.rational(ev.energy_min_wh)}
        if self.state.dynamic:
            return {"MaximumSupportingPoints": 24, "Dynamic_SEReqControlMode": {
                "DepartureTime": int(ev.departure_s), "MinimumSOC": int(ev.min_soc),
                "TargetSOC": int(ev.target_soc), **energy}}
        return {"MaximumSupportingPoints": 24,
                "Scheduled_SEReqControlMode": {"DepartureTime": int(ev.departure_s), **energy}}

    def _iso20_DC_CableCheckReq(self) -> dict:
        return {}

    def _iso20_DC_PreChargeReq(self) -> dict:
        v = self.ev.battery_voltage
        return {"EVProcessing": "Ongoing", "EVPresentVoltage": m.rational(v), "EVTargetVoltage": m.rational(v)}

    def _iso20_PowerDeliveryReq(self) -> dict:
        if self._stopping:
            return {"EVProcessing": "Finished", "ChargeProgress": "Stop"}
        mode = {"Dynamic_EVPPTControlMode": {}} if self.state.dynamic else \
            {"Scheduled_EVPPTControlMode": {"SelectedScheduleTupleID": self.state.schedule_tuple_id or 1,
                                            # optional in the XSD; some SECCs insist on it
                                            "PowerToleranceAcceptance": "PowerToleranceConfirmed"}}
        return {"EVProcessing": "Finished", "ChargeProgress": "Start", "EVPowerProfile": {
            "TimeAnchor": int(time.time()), **mode,
            "EVPowerProfileEntries": {"EVPowerProfileEntry": [
                {"Duration": int(self.ev.departure_s), "Power": m.rational(
                    self._iso20_ac_power() if self.protocol == "iso20_ac" else self.ev.max_power)}]}}}

    def _iso20_DC_ChargeLoopReq(self) -> dict:
        ev = self.ev
        display = {"PresentSOC": int(ev.soc), "TargetSOC": int(ev.target_soc),
                   "RemainingTimeToTargetSOC": ev.remaining_time_s(self._evse_max_power()),
                   "BatteryEnergyCapacity": m.rational(ev.capacity_wh),
                   "ChargingComplete": ev.charging_complete}   # optional in the XSD; some SECCs insist
        body: dict[str, Any] = {"DisplayParameters": display, "MeterInfoRequested": False,
                                "EVPresentVoltage": m.rational(ev.battery_voltage)}
        if self.state.dynamic:
            body["Dynamic_DC_CLReqControlMode"] = {
                "DepartureTime": int(ev.departure_s),
                "EVTargetEnergyRequest": m.rational(ev.energy_request_wh),
                "EVMaximumEnergyRequest": m.rational(ev.energy_to_full_wh),
                "EVMinimumEnergyRequest": m.rational(ev.energy_min_wh),
                "EVMaximumChargePower": m.rational(ev.max_power), "EVMinimumChargePower": m.rational(ev.min_power),
                "EVMaximumChargeCurrent": m.rational(ev.max_current),
                "EVMaximumVoltage": m.rational(ev.max_voltage), "EVMinimumVoltage": m.rational(ev.min_voltage)}
        else:
            body["Scheduled_DC_CLReqControlMode"] = {
                "EVTargetEnergyRequest": m.rational(ev.energy_request_wh),
                "EVTargetCurrent": m.rational(ev.target_current(self._evse_max_current(), self._evse_max_power())),
                "EVTargetVoltage": m.rational(ev.target_voltage()),
                "EVMaximumChargePower": m.rational(ev.max_power),
                "EVMaximumChargeCurrent": m.rational(ev.max_current),
                "EVMaximumVoltage": m.rational(ev.max_voltage)}
        return body

    # -- ISO 15118-20 AC (scheduled mode) ------------------------------------------------------
    def _iso20_ac_power(self) -> float:
        """What the on-board charger draws: its AC current × 230 V × phases, the current within what the
        EVSE's maximum power allows per phase (-20 AC signals power only; absorbed as EVSEMaxCurrent)."""
        ev = self.ev
        return round(ev.ac_power(ev.ac_current(self._evse_max_current()), 230.0, ev.ac_phases))

    def _absorb_AC_ChargeParameterDiscoveryRes(self, body: dict) -> None:
        watts = m.number((body.get("AC_CPDResEnergyTransferMode") or {}).get("EVSEMaximumChargePower"))
        if watts:
            self.state.evse["EVSEMaxCurrent"] = round(watts / (230.0 * self.ev.ac_phases), 1)

    def _iso20_AC_ChargeParameterDiscoveryReq(self) -> dict:
        ev = self.ev
        return {"AC_CPDReqEnergyTransferMode": {
            "EVMaximumChargePower": m.rational(ev.ac_power(ev.ac_max_current, 230.0, ev.ac_phases)),
            "EVMinimumChargePower": m.rational(ev.ac_power(ev.ac_min_current, 230.0, 1))}}

    def _iso20_AC_ChargeLoopReq(self) -> dict:
        ev = self.ev
        present = self._iso20_ac_power() if not ev.charging_complete else 0
        return {"DisplayParameters": {"PresentSOC": int(ev.soc), "TargetSOC": int(ev.target_soc),
                                      "ChargingComplete": ev.charging_complete},
                "MeterInfoRequested": False,
                "Scheduled_AC_CLReqControlMode": {
                    "EVTargetEnergyRequest": m.rational(round(ev.energy_request_wh)),
                    "EVMaximumChargePower": m.rational(ev.ac_power(ev.ac_max_current, 230.0, ev.ac_phases)),
                    "EVMinimumChargePower": m.rational(ev.ac_power(ev.ac_min_current, 230.0, 1)),
                    "EVPresentActivePower": m.rational(present)}}

    def _absorb_AC_ChargeLoopRes(self, body: dict) -> None:
        self.state.meter_info = body.get("MeterInfo") or self.state.meter_info
        target = m.number((body.get("Scheduled_AC_CLResControlMode") or {}).get("EVSETargetActivePower"))
        watts = self._iso20_ac_power() if target is None else min(target, self._iso20_ac_power())
        self.ev.step(watts / 230.0, 230.0)     # current × voltage = the power drawn

    async def _run_iso20_ac(self) -> None:
        """-20 AC after ServiceSelection: no cable check, pre-charge or welding detection."""
        await self._step("AC_ChargeParameterDiscoveryReq")
        await self._until_finished("ScheduleExchangeReq")
        await self._step("PowerDeliveryReq")
        await self._charge_loop("AC_ChargeLoopReq")
        self._stopping = True
        await self._step("PowerDeliveryReq")
        if self._plan.get("session_stop", True):
            await self._step("SessionStopReq")

    def _iso20_DC_WeldingDetectionReq(self) -> dict:
        return {"EVProcessing": "Finished"}

    def _iso20_SessionStopReq(self) -> dict:
        return {"ChargingSession": "Terminate"}

    # -- autopilot ------------------------------------------------------------------------------
    async def run(self, plan: dict | None = None) -> list[V2gExchange]:
        """A whole session; returns its exchanges. Plan keys:
          loops                 charge loop cycles (default 3; fewer if the EV is full)
          stop_after            request or response name: stop there, the connection stays open
          auth                  "eim" | "pnc" (default: the constructor's)
          energy_mode           -2 RequestedEnergyTransferMode (default DC_extended, or an AC mode when the
                                SECC offers AC only); AC_three_phase_core / AC_single_phase_core run the
                                AC sequence (ChargeParameterDiscovery, PowerDelivery, ChargingStatus loop)
          dynamic               -20: dynamic instead of scheduled control mode
          install_certificate   -2: CertificateInstallation before PaymentDetails
          service_detail        -2: ServiceDetailReq for each offered value-added service
          max_ongoing           bound on EVSEProcessing=Ongoing repetitions (default 100)
          ongoing_interval      s between Ongoing repeats (0.1); loop_interval: between charge loops (0.05)
          precharge_tolerance_v |EVSEPresentVoltage - target| that ends PreCharge (20 V)
          precharge_cycles      go on after this many PreCharge cycles even if the voltage never
                                matched, recording a violation (default: wait up to the PreCharge timeout)
          welding_detection, session_stop   False: leave that step out
        """
        plan = dict(plan or {})
        known = {"loops", "stop_after", "auth", "energy_mode", "dynamic", "install_certificate", "service_detail",
                 "max_ongoing", "ongoing_interval", "loop_interval", "precharge_tolerance_v", "precharge_cycles",
                 "session_stop", "welding_detection"}
        unknown = set(plan) - known
        if unknown:
            raise EvccError(f"unknown plan keys {sorted(unknown)} (known: {sorted(known)})")
        if "auth" in plan:
            if plan["auth"] not in ("eim", "pnc"):
                raise EvccError("plan auth must be 'eim' or 'pnc'")
            if plan["auth"] == "pnc" and self._contract_key is None:
                raise EvccError("PnC needs a V2G PKI")
            self.auth = plan["auth"]
        self._energy_mode = plan.get("energy_mode", "DC_extended")
        if self._energy_mode not in ("DC_extended", "DC_core", "DC_combo_core", "DC_unique",
                                     "AC_three_phase_core", "AC_single_phase_core"):
            raise EvccError(f"unknown energy_mode {self._energy_mode!r}")
        if self.protocol == "iso20_ac" and plan.get("dynamic"):
            raise EvccError("iso20_ac: only the scheduled control mode is emulated")
        if self._is_ac() and self.protocol not in ("iso2", "iso20_ac"):
            raise EvccError(f"energy_mode {self._energy_mode}: AC is emulated for ISO 15118-2 only")
        self._install = bool(plan.get("install_certificate"))
        self.state.dynamic = bool(plan.get("dynamic", False))
        self._stopping = False
        self._plan = plan
        self._precharge_cycles = 0
        start = len(self.exchanges)
        try:
            if self.protocol == "din":
                await self._run_din(plan)
            elif self.protocol == "iso2":
                await self._run_iso2(plan)
            else:
                await self._run_iso20(plan)
        except _StopPlan:
            pass
        return self.exchanges[start:]

    async def _step(self, name: str, overrides: dict | None = None) -> V2gExchange:
        exchange = await self.request(name, overrides)
        if exchange.response_code and not exchange.ok:
            raise EvccSessionFailed(f"{name}: the SECC answered {exchange.response_code}", exchange)
        stop_after = self._plan.get("stop_after")
        if stop_after in (name, exchange.response_name):
            raise _StopPlan()
        return exchange

    async def _until_finished(self, name: str, done=None) -> V2gExchange:
        bound = int(self._plan.get("max_ongoing", 100))
        interval = float(self._plan.get("ongoing_interval", 0.1))
        loop = m.LOOPS.get(name, "ongoing")
        limit = getattr(m.sequence_timings(self.protocol), loop).seconds * float(self.timeouts.get("scale", 1.0))
        started = time.monotonic()
        for _ in range(bound):
            exchange = await self._step(name)
            finished = done(exchange) if done else exchange.response.get("EVSEProcessing", "Finished") == "Finished"
            if finished:
                return exchange
            if time.monotonic() - started > limit:
                raise EvccError(f"{name}: still not finished after {limit} s")
            await asyncio.sleep(interval)
        raise EvccError(f"{name}: still not finished after {bound} requests")

    def _precharged(self, exchange: V2gExchange) -> bool:
        present = m.number(exchange.response.get("EVSEPresentVoltage"))
        tolerance = float(self._plan.get("precharge_tolerance_v", 20.0))
        if present is not None and abs(present - self.ev.battery_voltage) <= tolerance:
            return True
        self._precharge_cycles += 1
        cycles = self._plan.get("precharge_cycles")
        if cycles is not None and self._precharge_cycles >= int(cycles):
            # Simulated chargers often never raise their voltage: go on, but say so.
            exchange.violations.append(
                f"{self.info.title} PreCharge: EVSEPresentVoltage {present} V is not within {tolerance} V of the "
                f"target {self.ev.battery_voltage} V after {self._precharge_cycles} cycles "
                f"(continued because plan precharge_cycles={cycles})")
            return True
        return False

    async def _charge_loop(self, name: str) -> None:
        interval = float(self._plan.get("loop_interval", 0.05))
        for _ in range(int(self._plan.get("loops", 3))):
            exchange = await self._step(name)
            if self.ev.charging_complete or self._stop_signalled(exchange):
                break     # full, or the EVSE asks the EV to stop (EVSENotification / a shutdown status)
            await asyncio.sleep(interval)

    async def _finish(self, welding: str) -> None:
        self._stopping = True
        await self._step("PowerDeliveryReq")
        if self._plan.get("welding_detection", True):
            await self._step(welding)
        if self._plan.get("session_stop", True):
            await self._step("SessionStopReq")

    async def _run_din(self, plan: dict) -> None:
        await self._step("SessionSetupReq")
        await self._step("ServiceDiscoveryReq")
        await self._step("ServicePaymentSelectionReq")
        await self._until_finished("ContractAuthenticationReq")
        await self._until_finished("ChargeParameterDiscoveryReq")
        await self._until_finished("CableCheckReq")
        await self._until_finished("PreChargeReq", self._precharged)
        await self._step("PowerDeliveryReq")
        await self._charge_loop("CurrentDemandReq")
        await self._finish("WeldingDetectionReq")

    async def _run_iso2(self, plan: dict) -> None:
        await self._step("SessionSetupReq")
        # ServiceCategory filters the answer: without it the SECC lists the certificate service too.
        await self._step("ServiceDiscoveryReq", {"ServiceCategory": None} if self._install else None)
        if self._install and not any(s.get("ServiceID") == 2 for s in self.state.offered_services):
            raise EvccError("install_certificate: the SECC does not offer the Certificate service (ServiceID 2)")
        if self.auth == "pnc" and "Contract" not in self.state.payment_options:
            raise EvccError(f"the SECC does not offer Contract payment (offers {self.state.payment_options}); "
                            "PnC needs TLS")
        if plan.get("service_detail"):
            for service in self.state.offered_services:
                await self._step("ServiceDetailReq", {"ServiceID": service["ServiceID"]})
        await self._step("PaymentServiceSelectionReq")
        if self._install:
            await self._step("CertificateInstallationReq")
        if self.auth == "pnc":
            await self._step("PaymentDetailsReq")
        await self._until_finished("AuthorizationReq")
        if "energy_mode" not in plan:
            self._choose_energy_mode()
        if self._is_ac():
            await self._run_iso2_ac(plan)
            return
        await self._until_finished("ChargeParameterDiscoveryReq")
        await self._until_finished("CableCheckReq")
        await self._until_finished("PreChargeReq", self._precharged)
        await self._step("PowerDeliveryReq")
        await self._charge_loop("CurrentDemandReq")
        if self.state.receipt_required and self.auth == "pnc":
            await self._step("MeteringReceiptReq")
        await self._finish("WeldingDetectionReq")

    async def _run_iso20(self, plan: dict) -> None:
        await self._step("SessionSetupReq")
        await self._step("AuthorizationSetupReq")
        wanted = "PnC" if self.auth == "pnc" else "EIM"
        if self.state.auth_services and wanted not in self.state.auth_services:
            raise EvccError(f"the SECC offers {self.state.auth_services}, not {wanted}")
        await self._until_finished("AuthorizationReq")
        await self._step("ServiceDiscoveryReq")
        await self._step("ServiceDetailReq")
        await self._step("ServiceSelectionReq")
        if self.protocol == "iso20_ac":
            await self._run_iso20_ac()
            return
        await self._step("DC_ChargeParameterDiscoveryReq")
        await self._until_finished("ScheduleExchangeReq")
        await self._until_finished("DC_CableCheckReq")
        await self._until_finished("DC_PreChargeReq", self._precharged)
        # -20: the EV ends PreCharge with EVProcessing=Finished before PowerDelivery.
        await self._step("DC_PreChargeReq", {"EVProcessing": "Finished"})
        await self._step("PowerDeliveryReq")
        await self._charge_loop("DC_ChargeLoopReq")
        await self._finish("DC_WeldingDetectionReq")


class _StopPlan(Exception):
    """plan["stop_after"] reached."""


# -- netns side entry point ------------------------------------------------------------------------
async def evcc_side(side: Any) -> dict:
    """harness.iso15118.netns entry point: our EVCC on the EV end of the veth pair.

    kwargs: protocol, tls, auth, plan, pki_dir (a make_v2g_pki directory), ev (EvModel
    keyword arguments, or {"preset": "mcs_truck", ...}), timeouts, connect_timeout, tls_group."""
    from harness.pki.v2g import load_v2g_pki

    kw = dict(side.kwargs)
    pki = load_v2g_pki(kw["pki_dir"]) if kw.get("pki_dir") else None
    ev_kw = dict(kw.get("ev") or {})
    preset = ev_kw.pop("preset", None)
    ev = getattr(EvModel, preset)(**ev_kw) if preset else EvModel(**ev_kw)
    evcc = Evcc(kw.get("protocol", "iso2"), ev=ev, pki=pki, tls=bool(kw.get("tls")), auth=kw.get("auth", "eim"),
                timeouts=kw.get("timeouts"), tls_group=kw.get("tls_group"))
    started = time.monotonic()
    result: dict[str, Any] = {"exchanges": []}
    try:
        await evcc.connect(iface=side.iface, timeout=float(kw.get("connect_timeout", 30)))
        result["tls"] = list(evcc.tls_info) if evcc.tls_info else None
        await evcc.run(kw.get("plan"))
    except EvccError as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        result["exchanges"] = [e.summary() for e in evcc.exchanges]
        result["session_s"] = round(time.monotonic() - started, 3)
        result["soc"] = round(evcc.ev.soc, 3)
        result["installed_contract"] = evcc.state.installed_contract
        await evcc.close()
    return result
