"""Drift watch: what a running fleet reports, set against the profiles its lock was solved on.

`observations` reads and validates reports (the same rules for `POST
/v1/observations` and `configspec observe`), `compare` tests them against
the lock's expectations and marks drifted pools, `replan` proposes a new
decision as a diff against the lock.  Nothing here writes a lock or a spec:
a proposal is for a person to review.  The store keeps the counters
(`configspec_opt.store.observations`); docs/drift.md says what is tested and why.
"""
