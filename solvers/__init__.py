"""Optimisation back end: the fleet MILP in HiGHS (direct, or through Pyomo) and its loops.

Importing the package imports nothing heavy: highspy loads with the default
backend (`highs_model`), Pyomo only with the `pyomo` backend and the
diagnosis, so `configspec check` and `validate` start fast.  The spec,
metrics and profiler never import it.
"""
