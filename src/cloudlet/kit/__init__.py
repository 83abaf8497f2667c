"""Building blocks that know no domain: database, errors, clock, ids, pagination, rate limits."""
