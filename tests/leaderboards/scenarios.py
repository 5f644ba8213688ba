"""Leaderboard scenarios: the board query."""

from __future__ import annotations

BOARD = """
query($id: ID!, $first: Int, $after: String) {
  leaderboard(contestId: $id, first: $first, after: $after) {
    totalCount version frozen status
    pageInfo { hasNextPage endCursor }
    edges { node { rank score gapToAbove participant { id name isYou } } }
  }
}"""
