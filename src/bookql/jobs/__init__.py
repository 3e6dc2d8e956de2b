"""Queued jobs: crawls and trainings wait in a table until a worker claims and runs them."""
