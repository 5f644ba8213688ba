"""Incentive rules in GraphQL: rules, versions, dry runs, approvals, firings, templates
(vendor side) and the explanations and recommendations addressed to a partner."""
