"""Metrics: CPU, memory, disk and network of every running instance, sampled from its node into history."""
