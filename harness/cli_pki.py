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
