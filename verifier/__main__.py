"""``python -m verifier`` is the ``verifier`` command.

``python -m`` puts the current folder first on sys.path: a user's ``engine.py``,
``reports/`` or ``properties.py`` there must not stand in for crossgrad's own
packages, so they are pinned to crossgrad's folder before anything else is imported
(the current folder moves to the end, where the user's modules are still found).
"""

from verifier.loader import own_packages_first

own_packages_first()

from verifier.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
