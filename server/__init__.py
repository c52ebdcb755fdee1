"""The gRPC edge of idstitch: servicers, proto <-> domain conversion, config and the CLI.

Imports no Splink: the serving path never waits on a SQL engine's planner.
"""
