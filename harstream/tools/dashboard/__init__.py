"""The live terminal dashboard: a receiver thread, a pure state, and pure rich views of it."""
