"""ISO 15118 (V2G) communication: link, transport and application layers for the harness."""
