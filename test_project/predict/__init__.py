"""Demo of dynamic batching: ``POST /api/v1/predict/`` scores items in shared batches."""
