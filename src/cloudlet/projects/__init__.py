"""Projects (Shardlyn's organizations): members, roles, per-member permissions, invitations."""
