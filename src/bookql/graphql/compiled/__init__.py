"""The compiled query path: validated query documents become plans, run in one thread hop.

``planner`` turns a document and operation into a plan once (cached), ``executor`` runs
it for a request with the standard path's per-request checks, ``node`` dispatches
``node(id:)`` by type, and ``rows`` builds response objects from rows. The domains compile
their own fields; ``bookql.server.compiled`` assembles them. Whatever a plan does not cover is
left to Strawberry's executor, the reference.
"""
