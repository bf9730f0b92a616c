"""Mission e-mail: what the mail deploy computes from the estate, DKIM keys and DNS records.

The deploy (`deploys/mail.py`) only moves what this package computes onto the servers, so that
every list and map in the generated configuration can be tested here without a network.
"""
