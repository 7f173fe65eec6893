# Two commands on a fresh machine: `make serve` and `make test`. Each bootstraps .venv
# from pyproject.toml the first time (and again whenever pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv serve test generate check-generated bench profile soak lint lock clean fuzz-long client

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev,embedded]'
	touch $(STAMP)

venv: $(STAMP)

## Start the service on the embedded PostgreSQL at http://127.0.0.1:9090 (PORT to change).
serve: venv
	CONSOLE_INSECURE_COOKIES=true $(BIN)/qc-collector serve

## Every gate through tox (tox.ini's env_list; one: `.venv/bin/tox -e <gate>`), then one
## line that sums them: `N passed, N failed[, N skipped]`.
test: venv
	$(BIN)/python tools/test_all.py

## Regenerate generated/ from openapi/ after editing the spec.
generate: venv
	$(BIN)/python tools/codegen.py

check-generated: venv
	$(BIN)/python tools/codegen.py --check

## A Python client generated (openapi-python-client) from the served /openapi.json into
## var/client/qcc_client (git-ignored); URL=<base url> generates from a running server.
client: venv
	$(BIN)/python tools/make_client.py $(if $(URL),--url $(URL))

## The fuzz gate at 1,000 examples per operation (fixed seed + one random seed; FUZZ_SEED=<n>
## replays one).
fuzz-long: venv
	FUZZ_EXAMPLES=1000 $(BIN)/python tools/fuzz.py

## Performance figures against same-run baselines (not part of `make test`).
bench: venv
	$(BIN)/python -m bench.run $(if $(WORKERS),--workers $(WORKERS)) $(BENCH_ARGS)

## Where each microsecond of ingest, list, 304 and timeline goes (py-spy under wrk).
profile: venv
	$(BIN)/python -m bench.profile

## The runtime image's dependencies, pinned with hashes (the Dockerfile installs only
## these, with --require-hashes): run after changing [project] dependencies.
lock: venv
	$(BIN)/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --no-header --output-file requirements.lock

## Mixed load for SOAK_SECONDS (default 600): 5xx count and API worker RSS growth after
## the first minute, as a table (not part of `make test`).
soak: venv
	$(BIN)/python -m bench.soak

clean:
	rm -rf .tox .pytest_cache .mypy_cache .ruff_cache
