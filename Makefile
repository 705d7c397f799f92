# The two set-up commands of the README are `make run` and `make test`; everything they need is
# built here from a clean clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test bench image image-test verify-units clean

$(STAMP): pyproject.toml tools/setup-host.sh
	bash tools/setup-host.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[kiosk,test,pi]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m appliance.devrun

test: $(STAMP)
	$(BIN)/python -m tools.runtests

bench: $(STAMP)
	$(BIN)/python -m bench

image:
	bash image/build.sh

image-test:
	bash image/boot-test.sh

verify-units:
	bash image/lint.sh

clean:
	rm -rf $(VENV) build .pytest_cache
