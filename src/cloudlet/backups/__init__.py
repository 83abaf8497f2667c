"""Snapshots (on the guest's node) and backups (in the backup store) of instances."""
