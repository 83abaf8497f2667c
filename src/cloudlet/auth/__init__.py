"""Accounts and sessions: users, passwords, refresh-token families, MFA, resets, OAuth, bootstrap."""
