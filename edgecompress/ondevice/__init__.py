"""What runs on the target: `runner.py`, one file importable with only numpy and an interpreter.

It lives in a package of its own because `python runner.py` puts its directory first on sys.path: next to
edgecompress's `io.py` or `select/` it would shadow the standard library's modules of those names.
"""
