"""coterie's benchmarks, side by side with real Node cote 1.2.0 and nginx.

Run ``python -m bench`` (``make bench``) for the full run, which prints the
table and rewrites ``docs/benchmarks.md`` and ``docs/benchmarks.png``, or
``python -m bench --smoke`` (``make bench-smoke``) for a tiny run of every
scenario. See ``bench/__main__.py`` for the options.
"""
