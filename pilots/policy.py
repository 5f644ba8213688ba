"""Who may do what with pilots. Partner roles may do nothing and read nothing: a partner
never learns that it is in a pilot, let alone in which arm."""

from __future__ import annotations

from enum import StrEnum

from partners.policy import FINANCE_OR_ADMIN, VENDOR_ADMIN, Policy


class PilotOp(StrEnum):
    READ = "pilots"
    REPORT = "pilotReport"
    CREATE = "pilotCreate"
    START = "pilotStart"
    EXTEND = "pilotExtend"
    END = "pilotEnd"


PILOTS = Policy[PilotOp](
    {
        PilotOp.READ: FINANCE_OR_ADMIN,
        PilotOp.REPORT: FINANCE_OR_ADMIN,
        PilotOp.CREATE: VENDOR_ADMIN,
        PilotOp.START: VENDOR_ADMIN,
        PilotOp.EXTEND: VENDOR_ADMIN,
        PilotOp.END: VENDOR_ADMIN,
    }
)
