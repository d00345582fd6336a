"""Template tags that include the browser client (batch_requests/static/batch_requests/batch.js)."""
