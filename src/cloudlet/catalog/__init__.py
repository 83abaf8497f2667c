"""The catalogue: regions, plan categories, plans, billing cycles and OS templates."""
