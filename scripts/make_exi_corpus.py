#!/usr/bin/env python3
"""Build tests/data/exi_corpus/: realistic V2G messages encoded by the reference codec.

Each file <schema>__<name>.json holds {"schema", "msg" (canonical, bytes as {"$hex": ...}),
"exi_hex"}. Every message is also decoded again through the reference and must come back
equal, so the corpus only holds messages the reference round-trips.

    .venv/bin/python scripts/make_exi_corpus.py [--out DIR]

Needs the iso15118 venv (scripts/iso15118_venv.sh) and Java 17. Certificates are real DER
(EC P-256, deterministic keys and signatures), so re-running gives the same files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harness.iso15118.reference import ReferenceExi, reference_available
from harness.iso15118.reference.canonical import to_jsonable

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "data" / "exi_corpus"

SESSION_ID = bytes.fromhex("4A1B2C3D4E5F6071")
SESSION_ID_DIN = bytes.fromhex("00112233445566")
EVCC_MAC = bytes.fromhex("0A1B2C3D4E5F")
TIMESTAMP = 1795000000  # 2026-11-18, fixed so the corpus is reproducible
EVSE_ID = "DE*ABC*E1234567*1"
EMAID = "DEABCC1234567X"
GEN_CHALLENGE = bytes(range(0x10, 0x20))
SIG_ALG = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
DIGEST_ALG = "http://www.w3.org/2001/04/xmlenc#sha256"
C14N_ALG = "http://www.w3.org/TR/canonical-exi/"


# -- deterministic test PKI -----------------------------------------------------------------
def _cert(cn: str, secret: int, issuer_cn: str, issuer_secret: int, ca: bool) -> bytes:
    key = ec.derive_private_key(secret, ec.SECP256R1())
    issuer_key = ec.derive_private_key(issuer_secret, ec.SECP256R1())
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
        .public_key(key.public_key())
        .serial_number(secret)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=730))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    try:  # deterministic ECDSA (RFC 6979, cryptography >= 44) keeps the corpus stable
        cert = builder.sign(issuer_key, hashes.SHA256(), ecdsa_deterministic=True)
    except TypeError:
        cert = builder.sign(issuer_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.DER)


CONTRACT_CERT = _cert(EMAID, 1001, "MO Sub-CA 2", 1003, ca=False)
MO_SUB2 = _cert("MO Sub-CA 2", 1003, "MO Sub-CA 1", 1002, ca=True)
MO_SUB1 = _cert("MO Sub-CA 1", 1002, "V2G Root CA", 1000, ca=True)
CPS_LEAF = _cert("CPS Leaf", 2001, "CPS Sub-CA 2", 2003, ca=False)
CPS_SUB2 = _cert("CPS Sub-CA 2", 2003, "V2G Root CA", 1000, ca=True)
OEM_PROV = _cert("OEM Prov VIN1234567890", 3001, "OEM Sub-CA 2", 3003, ca=False)
OEM_SUB2 = _cert("OEM Sub-CA 2", 3003, "OEM Root CA", 3000, ca=True)
EC_PUBKEY = ec.derive_private_key(4242, ec.SECP256R1()).public_key().public_bytes(
    serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
)  # 65 bytes, the size of a -2 DHpublickey
ENCRYPTED_KEY_2 = bytes((i * 7) & 0xFF for i in range(48))
SIGNATURE_VALUE = bytes((i * 13 + 5) & 0xFF for i in range(64))
DIGEST = bytes((i * 3 + 1) & 0xFF for i in range(32))


def signature(ref_id: str, with_c14n: bool = True) -> dict:
    signed_info: dict = {
        "CanonicalizationMethod": {"Algorithm": C14N_ALG},
        "SignatureMethod": {"Algorithm": SIG_ALG},
        "Reference": [
            {
                "URI": f"#{ref_id}",
                "Transforms": {"Transform": [{"Algorithm": C14N_ALG}]},
                "DigestMethod": {"Algorithm": DIGEST_ALG},
                "DigestValue": DIGEST,
            }
        ],
    }
    if not with_c14n:
        del signed_info["CanonicalizationMethod"]
    return {"SignedInfo": signed_info, "SignatureValue": {"value": SIGNATURE_VALUE}}


# -- helpers --------------------------------------------------------------------------------
def pv(value: int, multiplier: int, unit: str) -> dict:
    """ISO 15118-2 PhysicalValueType."""
    return {"Multiplier": multiplier, "Unit": unit, "Value": value}


def rn(value: int, exponent: int = 0) -> dict:
    """ISO 15118-20 RationalNumberType: value * 10**exponent."""
    return {"Exponent": exponent, "Value": value}


def v2(body_name: str, body: dict, header_extra: dict | None = None) -> dict:
    header = {"SessionID": SESSION_ID, **(header_extra or {})}
    return {"V2G_Message": {"Header": header, "Body": {body_name: body}}}


def din(body_name: str, body: dict) -> dict:
    return {"V2G_Message": {"Header": {"SessionID": SESSION_ID_DIN}, "Body": {body_name: body}}}


def h20(extra: dict | None = None) -> dict:
    return {"Header": {"SessionID": SESSION_ID, "TimeStamp": TIMESTAMP, **(extra or {})}}


def m20(name: str, body: dict, header_extra: dict | None = None) -> dict:
    return {name: {**h20(header_extra), **body}}


# -- SupportedAppProtocol ---------------------------------------------------------------------
def app_messages() -> Iterator[tuple[str, str, dict]]:
    protocols = [
        ("urn:iso:std:iso:15118:-20:DC", 1, 0, 1, 1),
        ("urn:iso:15118:2:2013:MsgDef", 2, 0, 2, 2),
        ("urn:din:70121:2012:MsgDef", 2, 0, 3, 3),
    ]
    yield "app", "supportedAppProtocolReq", {"supportedAppProtocolReq": {"AppProtocol": [
        {"ProtocolNamespace": ns, "VersionNumberMajor": major, "VersionNumberMinor": minor,
         "SchemaID": sid, "Priority": prio}
        for ns, major, minor, sid, prio in protocols
    ]}}
    yield "app", "supportedAppProtocolReq_single", {"supportedAppProtocolReq": {"AppProtocol": [
        {"ProtocolNamespace": "urn:din:70121:2012:MsgDef", "VersionNumberMajor": 2,
         "VersionNumberMinor": 0, "SchemaID": 1, "Priority": 1}]}}
    yield "app", "supportedAppProtocolRes", {"supportedAppProtocolRes": {
        "ResponseCode": "OK_SuccessfulNegotiation", "SchemaID": 2}}
    yield "app", "supportedAppProtocolRes_minor_deviation", {"supportedAppProtocolRes": {
        "ResponseCode": "OK_SuccessfulNegotiationWithMinorDeviation", "SchemaID": 1}}
    # Not in the corpus: Failed_NoNegotiation without a SchemaID, because the reference jar
    # cannot leave the optional SchemaID out (it encodes SchemaID 0).


# -- ISO 15118-2 -------------------------------------------------------------------------------
DC_EV_STATUS = {"EVReady": True, "EVErrorCode": "NO_ERROR", "EVRESSSOC": 42}
DC_EVSE_STATUS = {"NotificationMaxDelay": 0, "EVSENotification": "None",
                  "EVSEIsolationStatus": "Valid", "EVSEStatusCode": "EVSE_Ready"}
AC_EVSE_STATUS = {"NotificationMaxDelay": 0, "EVSENotification": "None", "RCD": False}
CONTRACT_CHAIN = {"Id": "id1", "Certificate": CONTRACT_CERT,
                  "SubCertificates": {"Certificate": [MO_SUB2, MO_SUB1]}}
METER_INFO_2 = {"MeterID": "METER-0001", "MeterReading": 123456, "SigMeterReading": SIGNATURE_VALUE,
                "MeterStatus": 1, "TMeter": TIMESTAMP}
ROOT_IDS = {"RootCertificateID": [
    {"X509IssuerName": "CN=V2G Root CA", "X509SerialNumber": 1000},
    {"X509IssuerName": "CN=MO Root CA", "X509SerialNumber": 77}]}


def sa_schedule_list() -> dict:
    return {"SAScheduleTuple": [{
        "SAScheduleTupleID": 1,
        "PMaxSchedule": {"PMaxScheduleEntry": [
            {"RelativeTimeInterval": {"start": 0}, "PMax": pv(350, 3, "W")},
            {"RelativeTimeInterval": {"start": 3600, "duration": 82800}, "PMax": pv(150, 3, "W")},
        ]},
        "SalesTariff": {
            "Id": "tariff1", "SalesTariffID": 1, "SalesTariffDescription": "Depot night tariff",
            "NumEPriceLevels": 2,
            "SalesTariffEntry": [
                {"RelativeTimeInterval": {"start": 0}, "EPriceLevel": 1,
                 "ConsumptionCost": [{"startValue": pv(0, 0, "W"),
                                      "Cost": [{"costKind": "relativePricePercentage", "amount": 80}]}]},
                {"RelativeTimeInterval": {"start": 3600, "duration": 82800}, "EPriceLevel": 2},
            ],
        },
    }]}


def iso2_messages() -> Iterator[tuple[str, str, dict]]:
    s = "iso2"
    yield s, "SessionSetupReq", v2("SessionSetupReq", {"EVCCID": EVCC_MAC},
                                   {"SessionID": bytes(1)})
    yield s, "SessionSetupRes", v2("SessionSetupRes", {
        "ResponseCode": "OK_NewSessionEstablished", "EVSEID": EVSE_ID, "EVSETimeStamp": TIMESTAMP})
    yield s, "ServiceDiscoveryReq", v2("ServiceDiscoveryReq", {"ServiceCategory": "EVCharging"})
    yield s, "ServiceDiscoveryRes", v2("ServiceDiscoveryRes", {
        "ResponseCode": "OK",
        "PaymentOptionList": {"PaymentOption": ["Contract", "ExternalPayment"]},
        "ChargeService": {"ServiceID": 1, "ServiceName": "AC_DC_Charging", "ServiceCategory": "EVCharging",
                          "FreeService": False,
                          "SupportedEnergyTransferMode": {"EnergyTransferMode": ["DC_extended", "DC_core"]}},
        "ServiceList": {"Service": [
            {"ServiceID": 2, "ServiceName": "Certificate", "ServiceCategory": "ContractCertificate",
             "FreeService": True},
            {"ServiceID": 3, "ServiceName": "InternetAccess", "ServiceCategory": "Internet",
             "FreeService": False}]},
    })
    yield s, "ServiceDetailReq", v2("ServiceDetailReq", {"ServiceID": 2})
    yield s, "ServiceDetailRes", v2("ServiceDetailRes", {
        "ResponseCode": "OK", "ServiceID": 2,
        "ServiceParameterList": {"ParameterSet": [
            {"ParameterSetID": 1, "Parameter": [{"Name": "Service", "stringValue": "Installation"}]},
            {"ParameterSetID": 2, "Parameter": [{"Name": "Service", "stringValue": "Update"}]},
        ]},
    })
    yield s, "ServiceDetailRes_internet", v2("ServiceDetailRes", {
        "ResponseCode": "OK", "ServiceID": 3,
        "ServiceParameterList": {"ParameterSet": [{"ParameterSetID": 3, "Parameter": [
            {"Name": "Protocol", "stringValue": "https"},
            {"Name": "Port", "intValue": 443},
            {"Name": "MaxRate", "physicalValue": pv(100, 3, "W")},
            {"Name": "Metered", "boolValue": True}]}]},
    })
    yield s, "PaymentServiceSelectionReq", v2("PaymentServiceSelectionReq", {
        "SelectedPaymentOption": "Contract",
        "SelectedServiceList": {"SelectedService": [{"ServiceID": 1}, {"ServiceID": 2, "ParameterSetID": 1}]},
    })
    yield s, "PaymentServiceSelectionRes", v2("PaymentServiceSelectionRes", {"ResponseCode": "OK"})
    yield s, "PaymentDetailsReq", v2("PaymentDetailsReq", {
        "eMAID": EMAID, "ContractSignatureCertChain": CONTRACT_CHAIN})
    yield s, "PaymentDetailsRes", v2("PaymentDetailsRes", {
        "ResponseCode": "OK", "GenChallenge": GEN_CHALLENGE, "EVSETimeStamp": TIMESTAMP})
    yield s, "AuthorizationReq_PnC", v2("AuthorizationReq", {"Id": "id1", "GenChallenge": GEN_CHALLENGE},
                                        {"Signature": signature("id1")})
    yield s, "AuthorizationReq_EIM", v2("AuthorizationReq", {})
    yield s, "AuthorizationRes_ongoing", v2("AuthorizationRes", {"ResponseCode": "OK", "EVSEProcessing": "Ongoing"})
    yield s, "AuthorizationRes", v2("AuthorizationRes", {"ResponseCode": "OK", "EVSEProcessing": "Finished"})
    yield s, "ChargeParameterDiscoveryReq_DC", v2("ChargeParameterDiscoveryReq", {
        "MaxEntriesSAScheduleTuple": 12, "RequestedEnergyTransferMode": "DC_extended",
        "DC_EVChargeParameter": {
            "DepartureTime": 7200, "DC_EVStatus": DC_EV_STATUS,
            "EVMaximumCurrentLimit": pv(500, 0, "A"), "EVMaximumPowerLimit": pv(350, 3, "W"),
            "EVMaximumVoltageLimit": pv(920, 0, "V"), "EVEnergyCapacity": pv(540, 3, "Wh"),
            "EVEnergyRequest": pv(300, 3, "Wh"), "FullSOC": 100, "BulkSOC": 80},
    })
    yield s, "ChargeParameterDiscoveryRes_DC", v2("ChargeParameterDiscoveryRes", {
        "ResponseCode": "OK", "EVSEProcessing": "Finished", "SAScheduleList": sa_schedule_list(),
        "DC_EVSEChargeParameter": {
            "DC_EVSEStatus": DC_EVSE_STATUS,
            "EVSEMaximumCurrentLimit": pv(500, 0, "A"), "EVSEMaximumPowerLimit": pv(350, 3, "W"),
            "EVSEMaximumVoltageLimit": pv(1000, 0, "V"), "EVSEMinimumCurrentLimit": pv(0, 0, "A"),
            "EVSEMinimumVoltageLimit": pv(150, 0, "V"), "EVSECurrentRegulationTolerance": pv(5, 0, "A"),
            "EVSEPeakCurrentRipple": pv(2, 0, "A"), "EVSEEnergyToBeDelivered": pv(300, 3, "Wh")},
    })
    yield s, "ChargeParameterDiscoveryReq_AC", v2("ChargeParameterDiscoveryReq", {
        "RequestedEnergyTransferMode": "AC_three_phase_core",
        "AC_EVChargeParameter": {"DepartureTime": 36000, "EAmount": pv(40, 3, "Wh"),
                                 "EVMaxVoltage": pv(400, 0, "V"), "EVMaxCurrent": pv(32, 0, "A"),
                                 "EVMinCurrent": pv(6, 0, "A")},
    })
    yield s, "ChargeParameterDiscoveryRes_AC", v2("ChargeParameterDiscoveryRes", {
        "ResponseCode": "OK", "EVSEProcessing": "Finished", "SAScheduleList": sa_schedule_list(),
        "AC_EVSEChargeParameter": {"AC_EVSEStatus": AC_EVSE_STATUS, "EVSENominalVoltage": pv(230, 0, "V"),
                                   "EVSEMaxCurrent": pv(32, 0, "A")},
    })
    yield s, "CableCheckReq", v2("CableCheckReq", {"DC_EVStatus": DC_EV_STATUS})
    yield s, "CableCheckRes", v2("CableCheckRes", {
        "ResponseCode": "OK", "DC_EVSEStatus": DC_EVSE_STATUS, "EVSEProcessing": "Finished"})
    yield s, "PreChargeReq", v2("PreChargeReq", {
        "DC_EVStatus": DC_EV_STATUS, "EVTargetVoltage": pv(7500, -1, "V"), "EVTargetCurrent": pv(2, 0, "A")})
    yield s, "PreChargeRes", v2("PreChargeRes", {
        "ResponseCode": "OK", "DC_EVSEStatus": DC_EVSE_STATUS, "EVSEPresentVoltage": pv(7480, -1, "V")})
    yield s, "PowerDeliveryReq_DC_start", v2("PowerDeliveryReq", {
        "ChargeProgress": "Start", "SAScheduleTupleID": 1,
        "ChargingProfile": {"ProfileEntry": [
            {"ChargingProfileEntryStart": 0, "ChargingProfileEntryMaxPower": pv(350, 3, "W")},
            {"ChargingProfileEntryStart": 3600, "ChargingProfileEntryMaxPower": pv(150, 3, "W")}]},
        "DC_EVPowerDeliveryParameter": {"DC_EVStatus": DC_EV_STATUS, "BulkChargingComplete": False,
                                        "ChargingComplete": False},
    })
    yield s, "PowerDeliveryReq_DC_stop", v2("PowerDeliveryReq", {
        "ChargeProgress": "Stop", "SAScheduleTupleID": 1,
        "DC_EVPowerDeliveryParameter": {"DC_EVStatus": {**DC_EV_STATUS, "EVRESSSOC": 80},
                                        "ChargingComplete": True},
    })
    yield s, "PowerDeliveryRes_DC", v2("PowerDeliveryRes", {"ResponseCode": "OK", "DC_EVSEStatus": DC_EVSE_STATUS})
    yield s, "PowerDeliveryReq_AC", v2("PowerDeliveryReq", {
        "ChargeProgress": "Start", "SAScheduleTupleID": 1,
        "ChargingProfile": {"ProfileEntry": [
            {"ChargingProfileEntryStart": 0, "ChargingProfileEntryMaxPower": pv(22, 3, "W"),
             "ChargingProfileEntryMaxNumberOfPhasesInUse": 3}]},
    })
    yield s, "PowerDeliveryRes_AC", v2("PowerDeliveryRes", {"ResponseCode": "OK", "AC_EVSEStatus": AC_EVSE_STATUS})
    yield s, "CurrentDemandReq", v2("CurrentDemandReq", {
        "DC_EVStatus": DC_EV_STATUS, "EVTargetCurrent": pv(3800, -1, "A"),
        "EVMaximumVoltageLimit": pv(920, 0, "V"), "EVMaximumCurrentLimit": pv(500, 0, "A"),
        "EVMaximumPowerLimit": pv(350, 3, "W"), "BulkChargingComplete": False, "ChargingComplete": False,
        "RemainingTimeToFullSoC": pv(45, 1, "s"), "RemainingTimeToBulkSoC": pv(30, 1, "s"),
        "EVTargetVoltage": pv(8000, -1, "V"),
    })
    yield s, "CurrentDemandRes", v2("CurrentDemandRes", {
        "ResponseCode": "OK", "DC_EVSEStatus": DC_EVSE_STATUS,
        "EVSEPresentVoltage": pv(7995, -1, "V"), "EVSEPresentCurrent": pv(3790, -1, "A"),
        "EVSECurrentLimitAchieved": False, "EVSEVoltageLimitAchieved": False, "EVSEPowerLimitAchieved": False,
        "EVSEMaximumVoltageLimit": pv(1000, 0, "V"), "EVSEMaximumCurrentLimit": pv(500, 0, "A"),
        "EVSEMaximumPowerLimit": pv(350, 3, "W"), "EVSEID": EVSE_ID, "SAScheduleTupleID": 1,
        "MeterInfo": METER_INFO_2, "ReceiptRequired": True,
    })
    yield s, "MeteringReceiptReq", v2("MeteringReceiptReq", {
        "Id": "id2", "SessionID": SESSION_ID, "SAScheduleTupleID": 1, "MeterInfo": METER_INFO_2},
        {"Signature": signature("id2")})
    yield s, "MeteringReceiptRes_DC", v2("MeteringReceiptRes", {"ResponseCode": "OK", "DC_EVSEStatus": DC_EVSE_STATUS})
    yield s, "MeteringReceiptRes_AC", v2("MeteringReceiptRes", {"ResponseCode": "OK", "AC_EVSEStatus": AC_EVSE_STATUS})
    yield s, "ChargingStatusReq", v2("ChargingStatusReq", {})
    yield s, "ChargingStatusRes", v2("ChargingStatusRes", {
        "ResponseCode": "OK", "EVSEID": EVSE_ID, "SAScheduleTupleID": 1, "EVSEMaxCurrent": pv(32, 0, "A"),
        "MeterInfo": {"MeterID": "METER-0001", "MeterReading": 2345}, "ReceiptRequired": False,
        "AC_EVSEStatus": AC_EVSE_STATUS,
    })
    yield s, "WeldingDetectionReq", v2("WeldingDetectionReq", {"DC_EVStatus": DC_EV_STATUS})
    yield s, "WeldingDetectionRes", v2("WeldingDetectionRes", {
        "ResponseCode": "OK", "DC_EVSEStatus": DC_EVSE_STATUS, "EVSEPresentVoltage": pv(30, 0, "V")})
    yield s, "SessionStopReq", v2("SessionStopReq", {"ChargingSession": "Terminate"})
    yield s, "SessionStopReq_pause", v2("SessionStopReq", {"ChargingSession": "Pause"})
    yield s, "SessionStopRes", v2("SessionStopRes", {"ResponseCode": "OK"})
    yield s, "CertificateInstallationReq", v2("CertificateInstallationReq", {
        "Id": "id1", "OEMProvisioningCert": OEM_PROV, "ListOfRootCertificateIDs": ROOT_IDS},
        {"Signature": signature("id1")})
    yield s, "CertificateInstallationRes", v2("CertificateInstallationRes", {
        "ResponseCode": "OK",
        "SAProvisioningCertificateChain": {"Certificate": CPS_LEAF, "SubCertificates": {"Certificate": [CPS_SUB2]}},
        "ContractSignatureCertChain": CONTRACT_CHAIN,
        "ContractSignatureEncryptedPrivateKey": {"Id": "id2", "value": ENCRYPTED_KEY_2},
        "DHpublickey": {"Id": "id3", "value": EC_PUBKEY},
        "eMAID": {"Id": "id4", "value": EMAID},
    }, {"Signature": signature("id1")})
    yield s, "SessionSetupRes_failed", v2("SessionSetupRes", {
        "ResponseCode": "FAILED", "EVSEID": "ZZ00000", "EVSETimeStamp": TIMESTAMP},
        {"Notification": {"FaultCode": "UnknownError", "FaultMsg": "test fault"}})


# -- ISO 15118-20 -------------------------------------------------------------------------------
def iso20_messages() -> Iterator[tuple[str, str, dict]]:
    s = "iso20"
    yield s, "SessionSetupReq", {"SessionSetupReq": {
        "Header": {"SessionID": bytes(8), "TimeStamp": TIMESTAMP}, "EVCCID": "WMIV1234567890ABCDEX"}}
    yield s, "SessionSetupRes", m20("SessionSetupRes", {"ResponseCode": "OK_NewSessionEstablished",
                                                        "EVSEID": EVSE_ID})
    yield s, "AuthorizationSetupReq", m20("AuthorizationSetupReq", {})
    yield s, "AuthorizationSetupRes_PnC", m20("AuthorizationSetupRes", {
        "ResponseCode": "OK", "AuthorizationServices": ["EIM", "PnC"], "CertificateInstallationService": True,
        "PnC_ASResAuthorizationMode": {"GenChallenge": GEN_CHALLENGE,
                                       "SupportedProviders": {"ProviderID": ["ABC", "DEF"]}}})
    yield s, "AuthorizationSetupRes_EIM", m20("AuthorizationSetupRes", {
        "ResponseCode": "OK", "AuthorizationServices": ["EIM"], "CertificateInstallationService": False,
        "EIM_ASResAuthorizationMode": {}})
    yield s, "AuthorizationReq_PnC", m20("AuthorizationReq", {
        "SelectedAuthorizationService": "PnC",
        "PnC_AReqAuthorizationMode": {"Id": "id1", "GenChallenge": GEN_CHALLENGE,
                                      "ContractCertificateChain": {
                                          "Certificate": CONTRACT_CERT,
                                          "SubCertificates": {"Certificate": [MO_SUB2, MO_SUB1]}}}},
        {"Signature": signature("id1")})
    yield s, "AuthorizationReq_EIM", m20("AuthorizationReq", {
        "SelectedAuthorizationService": "EIM", "EIM_AReqAuthorizationMode": {}})
    yield s, "AuthorizationRes_ongoing", m20("AuthorizationRes", {"ResponseCode": "OK", "EVSEProcessing": "Ongoing"})
    yield s, "AuthorizationRes", m20("AuthorizationRes", {"ResponseCode": "OK", "EVSEProcessing": "Finished"})
    yield s, "ServiceDiscoveryReq", m20("ServiceDiscoveryReq", {})
    yield s, "ServiceDiscoveryReq_filtered", m20("ServiceDiscoveryReq", {
        "SupportedServiceIDs": {"ServiceID": [2, 6]}})
    yield s, "ServiceDiscoveryRes", m20("ServiceDiscoveryRes", {
        "ResponseCode": "OK", "ServiceRenegotiationSupported": False,
        "EnergyTransferServiceList": {"Service": [{"ServiceID": 2, "FreeService": False},
                                                  {"ServiceID": 6, "FreeService": False}]},
        "VASList": {"Service": [{"ServiceID": 65, "FreeService": True}]}})
    yield s, "ServiceDetailReq", m20("ServiceDetailReq", {"ServiceID": 2})
    yield s, "ServiceDetailRes_DC", m20("ServiceDetailRes", {
        "ResponseCode": "OK", "ServiceID": 2,
        "ServiceParameterList": {"ParameterSet": [
            {"ParameterSetID": 1, "Parameter": [
                {"Name": "Connector", "intValue": 2},
                {"Name": "ControlMode", "intValue": 1},
                {"Name": "MobilityNeedsMode", "intValue": 1},
                {"Name": "Pricing", "intValue": 0}]},
            {"ParameterSetID": 2, "Parameter": [
                {"Name": "Connector", "intValue": 2},
                {"Name": "ControlMode", "intValue": 2},
                {"Name": "MobilityNeedsMode", "intValue": 2},
                {"Name": "Pricing", "intValue": 0}]}]}})
    yield s, "ServiceDetailRes_MCS", m20("ServiceDetailRes", {
        "ResponseCode": "OK", "ServiceID": 2,
        "ServiceParameterList": {"ParameterSet": [{"ParameterSetID": 1, "Parameter": [
            {"Name": "Connector", "intValue": 2},
            {"Name": "MaximumPower", "rationalNumber": rn(375, 4)},
            {"Name": "Operator", "finiteString": "Depot MCS"},
            {"Name": "Metered", "boolValue": True}]}]}})
    yield s, "ServiceSelectionReq", m20("ServiceSelectionReq", {
        "SelectedEnergyTransferService": {"ServiceID": 2, "ParameterSetID": 1},
        "SelectedVASList": {"SelectedService": [{"ServiceID": 65, "ParameterSetID": 1}]}})
    yield s, "ServiceSelectionRes", m20("ServiceSelectionRes", {"ResponseCode": "OK"})
    yield s, "ScheduleExchangeReq_scheduled", m20("ScheduleExchangeReq", {
        "MaximumSupportingPoints": 1024,
        "Scheduled_SEReqControlMode": {
            "DepartureTime": 14400, "EVTargetEnergyRequest": rn(400, 3),
            "EVMaximumEnergyRequest": rn(540, 3), "EVMinimumEnergyRequest": rn(100, 3),
            "EVEnergyOffer": {
                "EVPowerSchedule": {"TimeAnchor": TIMESTAMP, "EVPowerScheduleEntries": {"EVPowerScheduleEntry": [
                    {"Duration": 3600, "Power": rn(375, 4)}, {"Duration": 10800, "Power": rn(150, 4)}]}},
                "EVAbsolutePriceSchedule": {
                    "TimeAnchor": TIMESTAMP, "Currency": "EUR", "PriceAlgorithm": "urn:iso:std:iso:15118:-20:PriceAlgorithm:1-Power",
                    "EVPriceRuleStacks": {"EVPriceRuleStack": [{"Duration": 0, "EVPriceRule": [
                        {"EnergyFee": rn(30, -2), "PowerRangeStart": rn(0)}]}]}}}}})
    yield s, "ScheduleExchangeReq_dynamic", m20("ScheduleExchangeReq", {
        "MaximumSupportingPoints": 24,
        "Dynamic_SEReqControlMode": {"DepartureTime": 7200, "MinimumSOC": 30, "TargetSOC": 80,
                                     "EVTargetEnergyRequest": rn(300, 3), "EVMaximumEnergyRequest": rn(450, 3),
                                     "EVMinimumEnergyRequest": rn(50, 3)}})
    yield s, "ScheduleExchangeRes_scheduled", m20("ScheduleExchangeRes", {
        "ResponseCode": "OK", "EVSEProcessing": "Finished",
        "Scheduled_SEResControlMode": {"ScheduleTuple": [{
            "ScheduleTupleID": 1,
            "ChargingSchedule": {
                "PowerSchedule": {"TimeAnchor": TIMESTAMP, "PowerScheduleEntries": {"PowerScheduleEntry": [
                    {"Duration": 3600, "Power": rn(375, 4)}, {"Duration": 82800, "Power": rn(100, 4)}]}},
                "PriceLevelSchedule": {
                    "Id": "pls1", "TimeAnchor": TIMESTAMP, "PriceScheduleID": 1, "NumberOfPriceLevels": 2,
                    "PriceLevelScheduleEntries": {"PriceLevelScheduleEntry": [
                        {"Duration": 3600, "PriceLevel": 1}, {"Duration": 82800, "PriceLevel": 0}]}}}}]}})
    yield s, "ScheduleExchangeRes_dynamic", m20("ScheduleExchangeRes", {
        "ResponseCode": "OK", "EVSEProcessing": "Finished",
        "Dynamic_SEResControlMode": {"DepartureTime": 7200, "MinimumSOC": 30, "TargetSOC": 80,
                                     "AbsolutePriceSchedule": {
                                         "Id": "aps1", "TimeAnchor": TIMESTAMP, "PriceScheduleID": 7,
                                         "Currency": "EUR", "Language": "ENG",
                                         "PriceAlgorithm": "urn:iso:std:iso:15118:-20:PriceAlgorithm:1-Power",
                                         "PriceRuleStacks": {"PriceRuleStack": [{"Duration": 0, "PriceRule": [
                                             {"EnergyFee": rn(45, -2), "PowerRangeStart": rn(0)},
                                             {"EnergyFee": rn(55, -2), "PowerRangeStart": rn(150, 3)}]}]}}}})
    yield s, "PowerDeliveryReq_start", m20("PowerDeliveryReq", {
        "EVProcessing": "Finished", "ChargeProgress": "Start",
        "EVPowerProfile": {"TimeAnchor": TIMESTAMP,
                           "Scheduled_EVPPTControlMode": {"SelectedScheduleTupleID": 1},
                           "EVPowerProfileEntries": {"EVPowerProfileEntry": [
                               {"Duration": 3600, "Power": rn(375, 4)}]}}})
    yield s, "PowerDeliveryReq_dynamic", m20("PowerDeliveryReq", {
        "EVProcessing": "Finished", "ChargeProgress": "Start",
        "EVPowerProfile": {"TimeAnchor": TIMESTAMP, "Dynamic_EVPPTControlMode": {},
                           "EVPowerProfileEntries": {"EVPowerProfileEntry": [
                               {"Duration": 7200, "Power": rn(100, 4)}]}}})
    yield s, "PowerDeliveryReq_stop", m20("PowerDeliveryReq", {"EVProcessing": "Finished", "ChargeProgress": "Stop"})
    yield s, "PowerDeliveryRes", m20("PowerDeliveryRes", {
        "ResponseCode": "OK", "EVSEStatus": {"NotificationMaxDelay": 0, "EVSENotification": "Pause"}})
    yield s, "SessionStopReq", m20("SessionStopReq", {"ChargingSession": "Terminate"})
    yield s, "SessionStopReq_servicerenegotiation", m20("SessionStopReq", {
        "ChargingSession": "ServiceRenegotiation", "EVTerminationCode": "CODE1",
        "EVTerminationExplanation": "renegotiate"})
    yield s, "SessionStopRes", m20("SessionStopRes", {"ResponseCode": "OK"})


def iso20_dc_messages() -> Iterator[tuple[str, str, dict]]:
    s = "iso20_dc"
    display = {"PresentSOC": 42, "TargetSOC": 80, "RemainingTimeToTargetSOC": 1500,
               "BatteryEnergyCapacity": rn(540, 3), "InletHot": False}
    yield s, "DC_ChargeParameterDiscoveryReq", m20("DC_ChargeParameterDiscoveryReq", {
        "DC_CPDReqEnergyTransferMode": {
            "EVMaximumChargePower": rn(350, 3), "EVMinimumChargePower": rn(1, 3),
            "EVMaximumChargeCurrent": rn(500), "EVMinimumChargeCurrent": rn(1),
            "EVMaximumVoltage": rn(920), "EVMinimumVoltage": rn(200), "TargetSOC": 80}})
    yield s, "DC_ChargeParameterDiscoveryReq_MCS", m20("DC_ChargeParameterDiscoveryReq", {
        "DC_CPDReqEnergyTransferMode": {
            "EVMaximumChargePower": rn(375, 4), "EVMinimumChargePower": rn(10, 3),
            "EVMaximumChargeCurrent": rn(3000), "EVMinimumChargeCurrent": rn(10),
            "EVMaximumVoltage": rn(1250), "EVMinimumVoltage": rn(500)}})
    yield s, "DC_ChargeParameterDiscoveryRes_MCS", m20("DC_ChargeParameterDiscoveryRes", {
        "ResponseCode": "OK",
        "DC_CPDResEnergyTransferMode": {
            "EVSEMaximumChargePower": rn(375, 4), "EVSEMinimumChargePower": rn(0),
            "EVSEMaximumChargeCurrent": rn(3000), "EVSEMinimumChargeCurrent": rn(0),
            "EVSEMaximumVoltage": rn(1250), "EVSEMinimumVoltage": rn(150),
            "EVSEPowerRampLimitation": rn(100, 3)}})
    yield s, "DC_ChargeParameterDiscoveryReq_BPT", m20("DC_ChargeParameterDiscoveryReq", {
        "BPT_DC_CPDReqEnergyTransferMode": {
            "EVMaximumChargePower": rn(150, 3), "EVMinimumChargePower": rn(1, 3),
            "EVMaximumChargeCurrent": rn(300), "EVMinimumChargeCurrent": rn(1),
            "EVMaximumVoltage": rn(800), "EVMinimumVoltage": rn(300),
            "EVMaximumDischargePower": rn(50, 3), "EVMinimumDischargePower": rn(1, 3),
            "EVMaximumDischargeCurrent": rn(100), "EVMinimumDischargeCurrent": rn(1)}})
    yield s, "DC_CableCheckReq", m20("DC_CableCheckReq", {})
    yield s, "DC_CableCheckRes_ongoing", m20("DC_CableCheckRes", {"ResponseCode": "OK", "EVSEProcessing": "Ongoing"})
    yield s, "DC_CableCheckRes", m20("DC_CableCheckRes", {"ResponseCode": "OK", "EVSEProcessing": "Finished"})
    yield s, "DC_PreChargeReq", m20("DC_PreChargeReq", {
        "EVProcessing": "Ongoing", "EVPresentVoltage": rn(7500, -1), "EVTargetVoltage": rn(750)})
    yield s, "DC_PreChargeRes", m20("DC_PreChargeRes", {"ResponseCode": "OK", "EVSEPresentVoltage": rn(7490, -1)})
    yield s, "DC_ChargeLoopReq_scheduled", m20("DC_ChargeLoopReq", {
        "DisplayParameters": display, "MeterInfoRequested": True, "EVPresentVoltage": rn(800),
        "Scheduled_DC_CLReqControlMode": {
            "EVTargetEnergyRequest": rn(400, 3), "EVTargetCurrent": rn(3000), "EVTargetVoltage": rn(1250),
            "EVMaximumChargePower": rn(375, 4), "EVMaximumChargeCurrent": rn(3000), "EVMaximumVoltage": rn(1250)}})
    yield s, "DC_ChargeLoopReq_dynamic", m20("DC_ChargeLoopReq", {
        "DisplayParameters": display, "MeterInfoRequested": False, "EVPresentVoltage": rn(7995, -1),
        "Dynamic_DC_CLReqControlMode": {
            "DepartureTime": 7200, "EVTargetEnergyRequest": rn(300, 3), "EVMaximumEnergyRequest": rn(450, 3),
            "EVMinimumEnergyRequest": rn(50, 3), "EVMaximumChargePower": rn(350, 3),
            "EVMinimumChargePower": rn(0), "EVMaximumChargeCurrent": rn(500), "EVMaximumVoltage": rn(920),
            "EVMinimumVoltage": rn(200)}})
    yield s, "DC_ChargeLoopRes_scheduled", m20("DC_ChargeLoopRes", {
        "ResponseCode": "OK", "EVSEStatus": {"NotificationMaxDelay": 0, "EVSENotification": "ExitStandby"},
        "MeterInfo": {"MeterID": "METER-0001", "ChargedEnergyReadingWh": 123456, "MeterSignature": SIGNATURE_VALUE,
                      "MeterStatus": 1, "MeterTimestamp": TIMESTAMP},
        "EVSEPresentCurrent": rn(2990), "EVSEPresentVoltage": rn(1249),
        "EVSEPowerLimitAchieved": False, "EVSECurrentLimitAchieved": False, "EVSEVoltageLimitAchieved": False,
        "Scheduled_DC_CLResControlMode": {"EVSEMaximumChargePower": rn(375, 4),
                                          "EVSEMaximumChargeCurrent": rn(3000), "EVSEMaximumVoltage": rn(1250)}})
    yield s, "DC_ChargeLoopRes_dynamic", m20("DC_ChargeLoopRes", {
        "ResponseCode": "OK",
        "EVSEPresentCurrent": rn(4375, -1), "EVSEPresentVoltage": rn(7995, -1),
        "EVSEPowerLimitAchieved": True, "EVSECurrentLimitAchieved": False, "EVSEVoltageLimitAchieved": False,
        "Dynamic_DC_CLResControlMode": {"DepartureTime": 7000, "MinimumSOC": 30, "TargetSOC": 80, "AckMaxDelay": 30,
                                        "EVSEMaximumChargePower": rn(350, 3), "EVSEMinimumChargePower": rn(0),
                                        "EVSEMaximumChargeCurrent": rn(500), "EVSEMaximumVoltage": rn(1000)}})
    yield s, "DC_WeldingDetectionReq", m20("DC_WeldingDetectionReq", {"EVProcessing": "Ongoing"})
    yield s, "DC_WeldingDetectionRes", m20("DC_WeldingDetectionRes", {"ResponseCode": "OK", "EVSEPresentVoltage": rn(25)})


def iso20_ac_messages() -> Iterator[tuple[str, str, dict]]:
    s = "iso20_ac"
    yield s, "AC_ChargeParameterDiscoveryReq", m20("AC_ChargeParameterDiscoveryReq", {
        "AC_CPDReqEnergyTransferMode": {"EVMaximumChargePower": rn(22, 3), "EVMinimumChargePower": rn(1400)}})
    yield s, "AC_ChargeParameterDiscoveryRes", m20("AC_ChargeParameterDiscoveryRes", {
        "ResponseCode": "OK",
        "AC_CPDResEnergyTransferMode": {"EVSEMaximumChargePower": rn(22, 3), "EVSEMinimumChargePower": rn(1400),
                                        "EVSENominalFrequency": rn(50)}})
    yield s, "AC_ChargeLoopReq_scheduled", m20("AC_ChargeLoopReq", {
        "DisplayParameters": {"PresentSOC": 55, "TargetSOC": 90, "ChargingComplete": False},
        "MeterInfoRequested": False,
        "Scheduled_AC_CLReqControlMode": {"EVTargetEnergyRequest": rn(20, 3), "EVMaximumChargePower": rn(11, 3),
                                          "EVMinimumChargePower": rn(1400), "EVPresentActivePower": rn(10950)}})
    yield s, "AC_ChargeLoopRes_scheduled", m20("AC_ChargeLoopRes", {
        "ResponseCode": "OK",
        "MeterInfo": {"MeterID": "METER-0002", "ChargedEnergyReadingWh": 8000, "MeterTimestamp": TIMESTAMP},
        "Receipt": {"TimeAnchor": TIMESTAMP,
                    "EnergyCosts": {"Amount": rn(360, -2), "CostPerUnit": rn(45, -2)},
                    "TaxCosts": [{"TaxRuleID": 1, "Amount": rn(57, -2)}]},
        "EVSETargetFrequency": rn(50),
        "Scheduled_AC_CLResControlMode": {"EVSETargetActivePower": rn(11, 3)}})


# -- DIN SPEC 70121 -----------------------------------------------------------------------------
def din_pv(value: int, multiplier: int, unit: str) -> dict:
    return {"Multiplier": multiplier, "Unit": unit, "Value": value}


DIN_EV_STATUS = {"EVReady": True, "EVCabinConditioning": False, "EVRESSConditioning": False,
                 "EVErrorCode": "NO_ERROR", "EVRESSSOC": 35}
DIN_EVSE_STATUS = {"EVSEIsolationStatus": "Valid", "EVSEStatusCode": "EVSE_Ready",
                   "NotificationMaxDelay": 0, "EVSENotification": "None"}


def din_messages() -> Iterator[tuple[str, str, dict]]:
    s = "din"
    yield s, "SessionSetupReq", {"V2G_Message": {"Header": {"SessionID": bytes(1)},
                                                 "Body": {"SessionSetupReq": {"EVCCID": EVCC_MAC}}}}
    yield s, "SessionSetupRes", din("SessionSetupRes", {"ResponseCode": "OK_NewSessionEstablished",
                                                        "EVSEID": bytes.fromhex("49A89A6360"),
                                                        "DateTimeNow": TIMESTAMP})
    yield s, "ServiceDiscoveryReq", din("ServiceDiscoveryReq", {"ServiceCategory": "EVCharging"})
    yield s, "ServiceDiscoveryRes", din("ServiceDiscoveryRes", {
        "ResponseCode": "OK", "PaymentOptions": {"PaymentOption": ["ExternalPayment"]},
        "ChargeService": {"ServiceTag": {"ServiceID": 1, "ServiceCategory": "EVCharging"},
                          "FreeService": False, "EnergyTransferType": "DC_extended"}})
    yield s, "ServicePaymentSelectionReq", din("ServicePaymentSelectionReq", {
        "SelectedPaymentOption": "ExternalPayment",
        "SelectedServiceList": {"SelectedService": [{"ServiceID": 1}]}})
    yield s, "ServicePaymentSelectionRes", din("ServicePaymentSelectionRes", {"ResponseCode": "OK"})
    yield s, "ContractAuthenticationReq", din("ContractAuthenticationReq", {})
    yield s, "ContractAuthenticationRes", din("ContractAuthenticationRes", {
        "ResponseCode": "OK", "EVSEProcessing": "Finished"})
    yield s, "ChargeParameterDiscoveryReq", din("ChargeParameterDiscoveryReq", {
        "EVRequestedEnergyTransferType": "DC_extended",
        "DC_EVChargeParameter": {"DC_EVStatus": DIN_EV_STATUS,
                                 "EVMaximumCurrentLimit": din_pv(200, 0, "A"),
                                 "EVMaximumPowerLimit": din_pv(80, 3, "W"),
                                 "EVMaximumVoltageLimit": din_pv(450, 0, "V"),
                                 "EVEnergyCapacity": din_pv(80, 3, "Wh"),
                                 "EVEnergyRequest": din_pv(50, 3, "Wh"),
                                 "FullSOC": 100, "BulkSOC": 80}})
    yield s, "ChargeParameterDiscoveryRes", din("ChargeParameterDiscoveryRes", {
        "ResponseCode": "OK", "EVSEProcessing": "Finished",
        "SAScheduleList": {"SAScheduleTuple": [{"SAScheduleTupleID": 1, "PMaxSchedule": {
            "PMaxScheduleID": 1,
            "PMaxScheduleEntry": [{"RelativeTimeInterval": {"start": 0, "duration": 86400}, "PMax": 500}]}}]},
        "DC_EVSEChargeParameter": {"DC_EVSEStatus": DIN_EVSE_STATUS,
                                   "EVSEMaximumCurrentLimit": din_pv(200, 0, "A"),
                                   "EVSEMaximumPowerLimit": din_pv(50, 3, "W"),
                                   "EVSEMaximumVoltageLimit": din_pv(500, 0, "V"),
                                   "EVSEMinimumCurrentLimit": din_pv(0, 0, "A"),
                                   "EVSEMinimumVoltageLimit": din_pv(150, 0, "V"),
                                   "EVSEPeakCurrentRipple": din_pv(2, 0, "A")}})
    yield s, "CableCheckReq", din("CableCheckReq", {"DC_EVStatus": DIN_EV_STATUS})
    yield s, "CableCheckRes", din("CableCheckRes", {"ResponseCode": "OK", "DC_EVSEStatus": DIN_EVSE_STATUS,
                                                    "EVSEProcessing": "Finished"})
    yield s, "PreChargeReq", din("PreChargeReq", {"DC_EVStatus": DIN_EV_STATUS,
                                                  "EVTargetVoltage": din_pv(380, 0, "V"),
                                                  "EVTargetCurrent": din_pv(1, 0, "A")})
    yield s, "PreChargeRes", din("PreChargeRes", {"ResponseCode": "OK", "DC_EVSEStatus": DIN_EVSE_STATUS,
                                                  "EVSEPresentVoltage": din_pv(378, 0, "V")})
    yield s, "PowerDeliveryReq_start", din("PowerDeliveryReq", {
        "ReadyToChargeState": True,
        "DC_EVPowerDeliveryParameter": {"DC_EVStatus": DIN_EV_STATUS, "BulkChargingComplete": False,
                                        "ChargingComplete": False}})
    yield s, "PowerDeliveryRes", din("PowerDeliveryRes", {"ResponseCode": "OK", "DC_EVSEStatus": DIN_EVSE_STATUS})
    yield s, "CurrentDemandReq", din("CurrentDemandReq", {
        "DC_EVStatus": DIN_EV_STATUS, "EVTargetCurrent": din_pv(120, 0, "A"),
        "EVMaximumVoltageLimit": din_pv(450, 0, "V"), "EVMaximumCurrentLimit": din_pv(200, 0, "A"),
        "EVMaximumPowerLimit": din_pv(80, 3, "W"), "BulkChargingComplete": False, "ChargingComplete": False,
        "RemainingTimeToFullSoC": din_pv(1800, 0, "s"), "RemainingTimeToBulkSoC": din_pv(1200, 0, "s"),
        "EVTargetVoltage": din_pv(400, 0, "V")})
    yield s, "CurrentDemandRes", din("CurrentDemandRes", {
        "ResponseCode": "OK", "DC_EVSEStatus": DIN_EVSE_STATUS, "EVSEPresentVoltage": din_pv(399, 0, "V"),
        "EVSEPresentCurrent": din_pv(119, 0, "A"), "EVSECurrentLimitAchieved": False,
        "EVSEVoltageLimitAchieved": False, "EVSEPowerLimitAchieved": False,
        "EVSEMaximumVoltageLimit": din_pv(500, 0, "V"), "EVSEMaximumCurrentLimit": din_pv(200, 0, "A"),
        "EVSEMaximumPowerLimit": din_pv(50, 3, "W")})
    yield s, "PowerDeliveryReq_stop", din("PowerDeliveryReq", {
        "ReadyToChargeState": False,
        "DC_EVPowerDeliveryParameter": {"DC_EVStatus": DIN_EV_STATUS, "ChargingComplete": True}})
    yield s, "WeldingDetectionReq", din("WeldingDetectionReq", {"DC_EVStatus": DIN_EV_STATUS})
    yield s, "WeldingDetectionRes", din("WeldingDetectionRes", {
        "ResponseCode": "OK", "DC_EVSEStatus": DIN_EVSE_STATUS, "EVSEPresentVoltage": din_pv(20, 0, "V")})
    yield s, "SessionStopReq", din("SessionStopReq", {})
    yield s, "SessionStopRes", din("SessionStopRes", {"ResponseCode": "OK"})


def all_messages() -> Iterator[tuple[str, str, dict]]:
    yield from app_messages()
    yield from din_messages()
    yield from iso2_messages()
    yield from iso20_messages()
    yield from iso20_dc_messages()
    yield from iso20_ac_messages()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--keep-going", action="store_true", help="report failures, write the rest")
    args = parser.parse_args(argv)
    reason = reference_available()
    if reason:
        print(f"cannot build the corpus: {reason}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    written, failures = 0, []
    with ReferenceExi() as ref:
        for schema, name, msg in all_messages():
            try:
                exi = ref.encode(schema, msg)
                back = ref.decode(schema, exi)
                if back != msg:
                    raise AssertionError(f"decode(encode(x)) != x:\n  in:  {msg}\n  out: {back}")
            except Exception as exc:  # report every bad message, not just the first
                failures.append(f"{schema}__{name}: {exc}")
                if not args.keep_going:
                    break
                continue
            entry = {"schema": schema, "msg": to_jsonable(msg), "exi_hex": exi.hex()}
            path = args.out / f"{schema}__{name}.json"
            path.write_text(json.dumps(entry, indent=1, sort_keys=False) + "\n", encoding="utf-8")
            written += 1
    print(f"wrote {written} corpus entries to {args.out}")
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
