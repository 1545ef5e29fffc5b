"""Suite-wide settings.

Under CI (`CI` set, as `.ci/run` runs) hypothesis is derandomized: every run tries the same
examples, so a green commit stays green and a red one is reproducible. Local runs keep random
exploration (and hypothesis' example database), which is where new counterexamples come from.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
