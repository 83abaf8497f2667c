"""The Elxega-compatible surface at /v1/workloads, /v1/deployments and /v1/resources."""
