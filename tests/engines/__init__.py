"""Engines under test for crossgrad's own tests: a correct base, its mutants
(see ``corpus.py``), a torch-backed engine, a student engine and hostile ones.

Every engine file here is standalone: it can be loaded as
``path/to/file.py:Value`` from any directory.
"""
