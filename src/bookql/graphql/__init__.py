"""The GraphQL toolkit under the domains: relay ids and pages, limits, error codes, the
compiled query engine, per-user stream slots. It knows no domain; the server assembles them."""
