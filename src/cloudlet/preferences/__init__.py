"""A user's console preferences (default region, time zone, locale, notifications) and the settings view that
shows them with the organization's SSH keys."""
