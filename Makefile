.PHONY: setup run test lint
setup:
	@bash scripts/setup.sh

# The main job on the embedded default.
run: setup
	.venv/bin/lifeveil demo

# The whole test suite.
test: setup
	.venv/bin/python -m pytest -q

lint: setup
	.venv/bin/ruff check src tests
