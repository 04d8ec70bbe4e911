"""`charger-harness pki init`: the test PKI for security profiles 2–3 (see harness.pki)."""

from __future__ import annotations

from pathlib import Path

import typer

pki_app = typer.Typer(help="Test PKI for OCPP security profiles 2–3 (TLS, mutual TLS).", no_args_is_help=True)


@pki_app.command("init")
def init(
    out: Path = typer.Option(Path("fixtures/pki"), "--out", help="Directory for the PEM files."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing PKI in --out."),
    station_id: str = typer.Option("CH-SIM-001", "--station-id", help="Client certificate subject CN (the station id)."),
    operator: str = typer.Option("ChargerHarness Test CSO", "--operator", help="Subject O of the certificates (the CSO)."),
    rsa: bool = typer.Option(False, "--rsa", help="RSA 2048 keys instead of ECDSA P-256."),
) -> None:
    """Generate a test root CA, CSMS server and station client certificates, and negative variants
    (expired, untrusted CA, revoked + CRL). Private keys are written with mode 0600."""
    from .pki import PkiExists, make_test_pki

    try:
        paths = make_test_pki(out, station_id, operator=operator, key_type="rsa" if rsa else "ec", force=force)
    except PkiExists as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"test PKI ({'RSA 2048' if rsa else 'ECDSA P-256'}) written to {paths.dir}:")
    for p in paths.files():
        typer.echo(f"  {p.name}{'  (private key, 0600)' if p.suffix == '.key' else ''}")
    typer.echo("DUT profile: tls: {ca: <pki>/ca.pem, cert: <pki>/csms.pem, key: <pki>/csms.key} "
               "(harness as CSMS), or cert/key station.pem/station.key (harness as station, profile 3)")


@pki_app.command("v2g")
def v2g(
    out: Path = typer.Option(Path("fixtures/pki/v2g"), "--out", help="Directory for the V2G PKI."),
    flavour: str = typer.Option("iso2", "--flavour",
                                help="iso2 (P-256/SHA-256), iso20-ec (P-521/SHA-512) or iso20-ed448."),
    emaid: str = typer.Option("", "--emaid", help="Contract certificate CN (default DECHHC123456786)."),
    evse_id: str = typer.Option("", "--evse-id", help="SECC certificate CN (default DE*CHH*E0001*1)."),
    pcid: str = typer.Option("", "--pcid", help="OEM provisioning certificate CN (PCID)."),
    ocsp_url: str = typer.Option("", "--ocsp-url", help="OCSP URL written into every non-root certificate's AIA."),
    force: bool = typer.Option(False, "--force", help="Renew even if a matching PKI is already there."),
) -> None:
    """ISO 15118 Plug & Charge PKI: V2G root → CPO/CPS Sub-CAs → SECC/CPS leaves, MO root → contract
    (eMAID), OEM root → provisioning leaf; negative variants, per-CA CRLs, manifest.json.
    Idempotent: rerunning with the same options keeps the existing files."""
    from .pki import PkiExists
    from .pki.v2g import DEFAULT_EMAID, DEFAULT_EVSE_ID, DEFAULT_PCID, V2GPkiError, make_v2g_pki

    before = (out / "manifest.json").stat().st_mtime_ns if (out / "manifest.json").exists() else None
    try:
        pki = make_v2g_pki(out, flavour, emaid=emaid or DEFAULT_EMAID, evse_id=evse_id or DEFAULT_EVSE_ID,
                           pcid=pcid or DEFAULT_PCID, ocsp_url=ocsp_url or None, force=force)
    except (PkiExists, V2GPkiError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    kept = before is not None and pki.manifest_path.stat().st_mtime_ns == before
    typer.echo(f"V2G PKI ({pki.flavour}) {'unchanged in' if kept else 'written to'} {pki.dir}: "
               f"eMAID {pki.emaid}, EVSE id {pki.evse_id}, OCSP {pki.ocsp_url}")
    typer.echo(f"  {len(pki.certs)} certificates (.pem/.der, keys .key 0600), {len(pki.crls)} CRLs, "
               f"{len(pki.chains)} chains (*-chain.pem), manifest {pki.manifest_path.name}")
    typer.echo(f"serve OCSP: charger-harness pki ocsp --pki {pki.dir}")


@pki_app.command("ocsp")
def ocsp_serve(
    pki_dir: Path = typer.Option(Path("fixtures/pki/v2g"), "--pki", help="A directory made by `pki v2g`."),
    port: int = typer.Option(-1, "--port", help="Port on 127.0.0.1 (default: the one in the PKI's OCSP URL; 0 = any)."),
    duration: float = typer.Option(0.0, "--duration", help="Stop after this many seconds (0 = until Ctrl-C)."),
) -> None:
    """Serve OCSP (RFC 6960, POST and GET) for every CA of a V2G PKI on 127.0.0.1."""
    import time
    from urllib.parse import urlsplit

    from .pki.ocsp import OcspResponder
    from .pki.v2g import V2GPkiError, load_v2g_pki

    try:
        pki = load_v2g_pki(pki_dir)
    except V2GPkiError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    url = urlsplit(pki.ocsp_url)
    if port < 0:
        port = url.port or 0
    try:
        responder = OcspResponder.for_pki(pki, port=port, path=url.path or "/ocsp").start()
    except OSError as exc:
        typer.echo(f"error: cannot listen on 127.0.0.1:{port}: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"OCSP responder for {pki.dir} at {responder.url} (Ctrl-C to stop)")
    deadline = time.monotonic() + duration if duration > 0 else None
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        responder.stop()
