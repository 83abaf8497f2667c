"""The `cloudlet` command."""
