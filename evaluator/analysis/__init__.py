"""Reading finished runs: statistics, comparisons, reports and the leaderboard."""
