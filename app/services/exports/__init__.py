"""Exports: a tenant's reports as one gzip file (CSV or NDJSON), made by the worker.

- `rules`: what an export request may ask, and its creation (row + job, one transaction);
- `job`: the worker's job that streams the rows into the store, and file expiry;
- `store`: the ExportStore interface and its local-disk implementation (the seam where
  object storage plugs in);
- `signed_urls`: the download-URL key, signed expiring links and the download behind them;
- `views`: what GET /exports and GET /exports/{id} show, with their validators.
"""
