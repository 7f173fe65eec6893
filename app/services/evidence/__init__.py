"""Evidence: proof of what a report said, checkable offline.

- `signing`: Ed25519 signing keys, the JWKS that publishes them, DSSE envelopes over
  in-toto Statements;
- `signatures`: signing a report (stored once, with its audit entry);
- `bundles`: the deterministic zip of a report, its signature, VERIFY.md and manifest;
- `verification`: the offline checks of a bundle (`qc-collector verify`).
"""
