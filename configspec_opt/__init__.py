"""configspec-opt: exact configuration selection for edge-cloud speculative decoding.

Importing the package imports nothing heavy: the spec, the metrics and the
CLI's validation run on an edge device without Pyomo, HiGHS or FastAPI.
"""

__version__ = "0.1.0"
