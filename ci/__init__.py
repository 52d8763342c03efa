"""The platform repo's own CI and developer scripts, importable as `ci.*`.

Run one from the repo root as a module (`uv run python -m ci.docs`), or through the
bootstrap (`python3 ci/dev.py run python -m ci.release 0.2.0`); `ci/dev.py` itself runs
as a script and imports only the standard library.
"""
