"""Who may do what with partner groups and program tiers. Partner roles never see groups
(not even their own group names): groups may encode the vendor's internal segmentation.
A group another domain fills (``managed_by``: a pilot's treatment arm) says who is in a
pilot's arm: it is read only by the roles that read pilots (``pilots.policy``: vendor
admins and finance), not by channel managers, who talk to the partners in it."""

from __future__ import annotations

from enum import StrEnum

from partners.policy import FINANCE_OR_ADMIN, VENDOR_ADMIN, VENDOR_STAFF, Policy


class GroupOp(StrEnum):
    READ = "partnerGroups"
    READ_ONE = "partnerGroup"
    CREATE = "partnerGroupCreate"
    UPDATE = "partnerGroupUpdate"
    DELETE = "partnerGroupDelete"
    MEMBERS_ADD = "partnerGroupMembersAdd"
    MEMBERS_REMOVE = "partnerGroupMembersRemove"
    TIER_SET = "partnerTierSet"


GROUPS = Policy[GroupOp](
    {
        GroupOp.READ: VENDOR_STAFF,
        GroupOp.READ_ONE: VENDOR_STAFF,
        GroupOp.CREATE: VENDOR_ADMIN,
        GroupOp.UPDATE: VENDOR_ADMIN,
        GroupOp.DELETE: VENDOR_ADMIN,
        GroupOp.MEMBERS_ADD: VENDOR_ADMIN,
        GroupOp.MEMBERS_REMOVE: VENDOR_ADMIN,
        GroupOp.TIER_SET: VENDOR_ADMIN,
    }
)

MANAGED_GROUP_READERS = FINANCE_OR_ADMIN
