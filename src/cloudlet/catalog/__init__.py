"""The catalogue: regions, plans, billing cycles, exchange rates, OS templates, project prices and IP pools."""
