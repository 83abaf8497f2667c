"""The audit log: every mutating request, who made it and what came of it."""
