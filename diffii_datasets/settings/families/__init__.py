"""The registered dataset families: one module each, declaring ``FAMILY`` (a :class:`~..base.Family`).

Adding a family is a module here, its name in :data:`FAMILY_MODULES`, and a card template
in ``hub_cards/<name>.md``.
"""

FAMILY_MODULES = ("cub", "aircraft", "cars", "pet", "cub_lt", "flower_lt")
"""The family modules, in the order the settings are listed (few-shot first, as the paper's tables)."""
