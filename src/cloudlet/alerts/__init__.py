"""Alert rules over what Cloudlet samples, and the alerts a scheduled evaluation opens and resolves."""
