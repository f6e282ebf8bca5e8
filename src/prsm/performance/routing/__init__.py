"""Routing: nodes, their registry, the scoring strategies and the load balancer."""
