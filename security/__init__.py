"""Security core: field encryption, blind indexes, audit trail, passwords, TOTP, roles."""
