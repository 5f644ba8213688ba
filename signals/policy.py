"""Who may read signals (which partners: ``partners.access``; which signals: the
definitions' visibility, vendor-only ones to vendor staff)."""

from __future__ import annotations

from enum import StrEnum

from partners.policy import PARTNER_USERS, VENDOR_STAFF, Policy


class SignalsOp(StrEnum):
    READ = "signals"
    READ_DEFINITIONS = "signalDefinitions"
    READ_REPS = "repSignals"


SIGNALS = Policy[SignalsOp](
    {
        SignalsOp.READ: VENDOR_STAFF | PARTNER_USERS,
        SignalsOp.READ_DEFINITIONS: VENDOR_STAFF | PARTNER_USERS,
        # Which reps: a partner rep its own, a partner admin its partner's, vendor staff
        # those of the partners they may see (``signals.reads.rep_signals``).
        SignalsOp.READ_REPS: VENDOR_STAFF | PARTNER_USERS,
    }
)
