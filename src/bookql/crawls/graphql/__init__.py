"""The crawls' GraphQL types and root fields."""
