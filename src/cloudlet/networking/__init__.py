"""Public addresses: allocating them out of a region's IP pools, releasing them, and their reverse DNS."""
