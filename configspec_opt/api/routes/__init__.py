"""One router per resource: health, spec operations, profiles, jobs, results."""
