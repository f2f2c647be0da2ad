"""Where the integration keeps its objects on ``app.state``."""

STATE_KEY = "pooltender"
"""``app.state.pooltender``: the running :class:`~pooltender.Databases` (set in the lifespan)."""

FACTORY_KEY = "pooltender_factory"
"""``app.state.pooltender_factory``: what builds the databases at each start (the test kit
swaps it)."""
