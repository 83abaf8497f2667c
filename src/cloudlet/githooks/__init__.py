"""Inbound git webhooks: the tokens a project gives GitHub or GitLab, and the pushes they verify, recorded as
git.push events for git deploy."""
