"""Accounts: users, roles, passwords (argon2id), JWT access and refresh tokens, throttling."""
