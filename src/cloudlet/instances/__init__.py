"""Instances: virtual servers, the actions that change them, and the SSH keys put into them."""
