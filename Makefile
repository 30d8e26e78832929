# The two commands the README opens with. Each sets itself up first.
.PHONY: demo test test-cluster lint bootstrap

bootstrap:
	@scripts/bootstrap

## Train the demo persona from a sample export and chat with it in the terminal.
demo: bootstrap
	.venv/bin/mimical demo

## Run the whole test suite (what CI runs).
test: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/pytest -n 2 --dist loadgroup

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

## Only the tier on a real Kubernetes control plane (built from Go modules on first use).
test-cluster: bootstrap
	.venv/bin/pytest -n 2 --dist loadgroup tests/cluster
