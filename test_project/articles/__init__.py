"""Demo app of the test project.

It is both the thing a visitor plays with and the set of endpoints the test
suite sends through ``/api/v1/batch/`` to prove a sub-request answers exactly
like the same request sent directly.
"""
