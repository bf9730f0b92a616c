"""DKIM and SPF on the lab: mail from one mission domain to another passes both where received.

The lab resolver serves the records `unops mail dns` prints, so the receiving server checks the
signature and the sender's servers as a receiver on the internet would.
"""

from __future__ import annotations

import email
import email.policy

import pytest
from test_mail_support import User, deploy_twice, message, submit, token, users, wait_for_message

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def people(lab: object) -> dict[str, User]:
    deploy_twice()
    return users()


def test_mail_between_mission_domains_passes_dkim_and_spf(people: dict[str, User]) -> None:
    """Sent from mail1's user to mail2's (another domain), mail2 records dkim=pass and spf=pass."""
    sender, recipient = people["mail1"], people["mail2"]
    assert sender.address.partition("@")[2] != recipient.address.partition("@")[2]
    subject = token()
    submit("mail1", sender, message(sender.address, recipient.address, subject))
    raw = wait_for_message("mail2", recipient, subject)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["DKIM-Signature"] is not None, "mail1 did not sign the message"
    assert f"d={sender.address.partition('@')[2]}" in str(parsed["DKIM-Signature"])
    results = " ".join(str(v) for v in parsed.get_all("Authentication-Results", []))
    assert "dkim=pass" in results, results
    assert "spf=pass" in results, results
    assert "dmarc=pass" in results, results
