"""Benchmarks and reproductions of the published studies (runners, protocols, reports)."""
