"""The five API dialects. Each translates its shapes to the same service calls and holds no rule."""
