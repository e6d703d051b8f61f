"""Helpers the tests share, imported as ``support.<module>``: pytest puts tests/ on ``sys.path``
(tests/conftest.py sits in a folder without ``__init__.py``), as it does for the test modules.

Fixtures stay in the conftest files; what is here is plain code that more than one test module
(or a conftest) needs.
"""
