"""The unops exporter: probes the estate's services as a client sees them, for Prometheus.

One collector per source (mail and web availability, the directory, the access points over
SNMPv3, the backup records, the end-to-end mail flow), each on the exporter's own registry;
`unops exporter serve` exposes them on `/metrics`.
"""
