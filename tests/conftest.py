"""Suite-wide settings: Hypothesis profile (bounded examples, no deadline: finite
differences are slow by design)."""

from hypothesis import settings

settings.register_profile("tinygan", max_examples=25, deadline=None, print_blob=True)
settings.load_profile("tinygan")
