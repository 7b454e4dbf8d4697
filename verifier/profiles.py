"""Hypothesis settings profiles for crossgrad's property suites.

Three profiles, chosen with ``pytest --hypothesis-profile=NAME``:

==========  ==============  =====================================================
profile     max_examples    for
==========  ==============  =====================================================
``ci``      100             CI: derandomized (the same examples on every run, so a
                            red build is never luck), no deadline (shared runners
                            are slow and jittery), no example database (nothing
                            to carry between CI machines), the reproduction blob
                            printed on failure
``dev``     100             day-to-day: random examples, a local database that
                            replays past failures first, no deadline
``thorough`` 1000           before a release or after touching an op
==========  ==============  =====================================================

No profile sets a deadline: an engine under test may be slow for reasons that
say nothing about its correctness (pure-Python scalar graphs, a cold SymPy cache on
the first example), and a ``DeadlineExceeded`` would hide the finding that
matters. ``--verifier-examples N`` overrides ``max_examples`` of whichever profile
is loaded.

The profiles are registered when the pytest plugin is imported, which pytest does
before Hypothesis's own plugin loads ``--hypothesis-profile``.

Example:
    >>> from hypothesis import settings
    >>> register_profiles()
    >>> settings.get_profile("ci").derandomize
    True
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

__all__ = ["PROFILES", "register_profiles"]

PROFILES: dict[str, dict] = {
    "ci": dict(
        max_examples=100,
        derandomize=True,
        deadline=None,
        database=None,
        print_blob=True,
        # Shared runners are slow; a slow example is not a failing one.
        suppress_health_check=[HealthCheck.too_slow],
    ),
    "dev": dict(max_examples=100, deadline=None),
    "thorough": dict(
        max_examples=1000,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    ),
}


def register_profiles() -> None:
    """Register the ``ci``, ``dev`` and ``thorough`` profiles (idempotent).

    Registering does not load a profile: Hypothesis's ``default`` stays active
    unless ``--hypothesis-profile`` (or :func:`hypothesis.settings.load_profile`)
    asks for one of these.
    """
    for name, options in PROFILES.items():
        settings.register_profile(name, **options)
