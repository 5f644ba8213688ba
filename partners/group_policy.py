"""Who may do what with partner groups and program tiers. Partner roles never see groups
(not even their own group names): groups may encode the vendor's internal segmentation."""

from __future__ import annotations

from enum import StrEnum

from partners.policy import VENDOR_ADMIN, VENDOR_STAFF, Policy


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
