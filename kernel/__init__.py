"""The BrahmaHub microkernel: small, shared, no domain rules."""
