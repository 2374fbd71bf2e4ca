"""Leaderboards: one JSON entry per defense under ``leaderboards/<track>/``, validated, verifiable by a
rerun, and rendered to ``leaderboards/README.md`` and ``leaderboards/index.html``.

Modules: ``files`` (safe reading and writing), ``schema`` (structure and ranges), ``validate`` (registries,
directions, weight hashes, duplicates), ``submit``, ``verify``, ``render`` and ``cli``.
"""
