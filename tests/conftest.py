from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# "ci" is thorough but bounded; "dev" is quick for the edit-test loop.
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
