"""``python -m verifier`` is the ``verifier`` command."""

from verifier.cli import main

if __name__ == "__main__":
    main()
