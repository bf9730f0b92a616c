"""Reports for auditors and operators, built from records and written as HTML, CSV or PDF."""
