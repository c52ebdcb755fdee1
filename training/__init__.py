"""Splink pipelines: comparison records, training, evaluation, batch relink, model files.

Imported only by the `idstitch train` / `relink` subcommands, never by the serving path.
The probabilistic models arrive with the visitor-stitching work; nothing lives here yet.
"""
