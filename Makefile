# Two commands on a fresh machine: `make serve` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test test-fast check lint protos demo bench model clean

$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)  ## start the service on 127.0.0.1:50051 with ./var/idstitch.duckdb
	$(BIN)/idstitch serve $(ARGS)

test: $(STAMP)  ## the whole suite, slow tests included (Spark's need Java 17+: scripts/ensure_java.sh)
	scripts/ensure_java.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

check: $(STAMP)  ## lint, types, and generated code up to date
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python scripts/gen_protos.py --check

protos: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

demo: $(STAMP)
	$(BIN)/idstitch demo

model: $(STAMP)  ## retrain the bundled visitor model on simulated traffic and the customer model on FEBRL3 (a few minutes)
	mkdir -p var
	$(BIN)/idstitch simulate --persons 20000 --days 30 --seed 1 --out var/simulated.jsonl.gz
	$(BIN)/idstitch train --signals var/simulated.jsonl.gz --out var/model --threshold 0.85
	cp var/model/visitor-model.json var/model/visitor-model.metrics.json linkage/models/
	$(BIN)/python scripts/febrl_records.py febrl3 var/febrl3.csv
	$(BIN)/idstitch train --model customer --records var/febrl3.csv --out var/model
	cp var/model/customer-model.json var/model/customer-model.metrics.json linkage/models/

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_service.py $(ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
