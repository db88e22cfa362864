"""Optimisation back end: the Pyomo formulation and its HiGHS adapter.

Importing this package imports Pyomo; the spec, metrics and profiler never do.
"""
