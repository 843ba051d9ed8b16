"""Directive handlers, one module per area; each module exposes its ``TABLE``.

See ``portico.config.registry`` for how tables are gathered.
"""
