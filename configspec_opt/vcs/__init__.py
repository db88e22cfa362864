"""Specs in version control: lock files, the CI check, diffs between revisions, formatting.

Nothing here imports the solver at module level, so `configspec check` (hash
mode) and `configspec fmt` work on the edge install without Pyomo.
"""
