"""The signal feed in GraphQL: ``signals`` and ``signalDefinitions``."""
