"""The GraphQL layer: each domain's types, queries, mutations and subscriptions, composed
into one schema by ``schema.root`` (kept out of this file, so that a process importing
one part, such as ``schema.context`` for the services or ``schema.instants`` for the
parsing of instants, does not build the whole schema: a command line's start-up)."""
