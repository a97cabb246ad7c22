# nxcloud-cdr developer commands. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.13 from pyenv if it is there (it is installed but not selected), else PATH.
PYTHON313 ?= $(shell PYENV_VERSION=3.13.0 pyenv which python3.13 2>/dev/null || command -v python3.13)
VENV := .venv
PY := $(VENV)/bin/python
SAM := .venv-sam/bin/sam
export SAM_CLI_TELEMETRY := 0
# sam validate wants a region, any region; deploys use the user's own (profile or
# AWS_DEFAULT_REGION), so it is not exported.
CHECK_REGION := AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1}
# sam build runs the python3.13 it finds on PATH: the project's virtualenv gives it.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help deps lint test test-fast build bench deploy deploy-guided events clean local monitoring lake nxcloud invoke upgrade

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(VENV)/.installed: requirements-dev.txt layers/shared/requirements.txt
	@test -n "$(PYTHON313)" || { echo "Python 3.13 not found (pyenv install 3.13.0)"; exit 1; }
	test -x $(PY) || $(PYTHON313) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

.venv-sam/.installed: requirements-sam.txt
	test -x .venv-sam/bin/python || $(PYTHON313) -m venv .venv-sam
	.venv-sam/bin/python -m pip install -q --upgrade pip
	.venv-sam/bin/python -m pip install -q -r requirements-sam.txt
	touch $@

# What Lambda's python3.13 runtime has: the interpreter and boto3, nothing else.
.venv-lambda/.installed: requirements-lambda.txt
	test -x .venv-lambda/bin/python || $(PYTHON313) -m venv .venv-lambda
	.venv-lambda/bin/python -m pip install -q -r requirements-lambda.txt
	touch $@

.venv-checkov/.installed: requirements-checkov.txt
	test -x .venv-checkov/bin/python || $(PYTHON313) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install -q -r requirements-checkov.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

deps: $(VENV)/.installed .venv-sam/.installed .venv-lambda/.installed .venv-checkov/.installed node_modules/.installed  ## Install everything (virtualenvs, aws-sam-cli, checkov, DynamoDB Local)

lint: deps  ## ruff, mypy, cfn-lint, sam validate --lint, checkov
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy layers/shared/nxcloud_cdr functions devtools tools tests bench
	$(VENV)/bin/cfn-lint template.yaml monitoring.yaml lake.yaml
	$(CHECK_REGION) $(SAM) validate --lint
	# Every finding is fixed or skipped in the template with its reason (Metadata: checkov).
	.venv-checkov/bin/checkov -f template.yaml -f monitoring.yaml -f lake.yaml --framework cloudformation --compact --quiet --skip-download

test: deps lint  ## Everything CI runs: lint, unit, DynamoDB Local and sam build tests
	$(PY) -m pytest

test-fast: deps  ## Unit tests only (no Java, no sam build)
	$(PY) -m pytest tests/unit

build: $(VENV)/.installed .venv-sam/.installed  ## sam build (into .aws-sam/)
	$(SAM) build

# A plain assignment: an ENV exported in the shell must not pick the stack (`make deploy
# ENV=prod` on the command line still does).
ENV = dev
# The environments are samconfig.toml's [<env>.deploy.parameters] sections (its
# [default...] ones are sam's fallback, no environment). An unknown ENV stops make before
# anything runs (sam would say only "Missing option --stack-name", after the build).
DEPLOY_ENVS = $(shell sed -n 's/^\[\([A-Za-z0-9_-]*\)\.deploy\.parameters\].*/\1/p' samconfig.toml | grep -vx default)
comma := ,
space := $() $()
ifneq ($(filter deploy deploy-guided upgrade,$(MAKECMDGOALS)),)
ifneq ($(words $(ENV)) $(filter $(ENV),$(DEPLOY_ENVS)),1 $(ENV))
$(error unknown environment ENV=$(ENV): samconfig.toml has $(subst $(space),$(comma)$(space),$(strip $(DEPLOY_ENVS))))
endif
endif
deploy: build  ## Deploy to AWS with samconfig.toml's ENV settings (ENV=dev by default; ENV=prod)
	$(SAM) deploy --config-env $(ENV) $(SAM_ARGS)

upgrade: build  ## Deploy over a stack of an earlier version, one index per deployment (ENV=dev; UPGRADE_ARGS=--dry-run)
	$(PY) -m devtools.upgrade --config-env $(ENV) $(UPGRADE_ARGS)

deploy-guided: build  ## The same, asking for every setting (the defaults deploy the dev stack)
	$(SAM) deploy --guided --config-env $(ENV) $(SAM_ARGS)

monitoring: $(VENV)/.installed  ## Regenerate monitoring.yaml (alarms, dashboard) and its nested application in template.yaml
	$(PY) -m devtools.monitoring

lake: $(VENV)/.installed  ## Regenerate lake.yaml's view of calls from sql/calls.sql (devtools/lake_template.py)
	$(PY) -m devtools.lake_template

local: deps  ## Run the product locally: push API on :3000, DynamoDB Local, stand-in NXCLOUD (Ctrl-C stops)
	$(PY) -m devtools.local_stack $(LOCAL_ARGS)

nxcloud: deps  ## Only the stand-in NXCLOUD CDR API on :8089
	$(PY) -m devtools.fake_nxcloud

invoke: $(VENV)/.installed  ## Run a function of a running `make local` on an event (FN=PnsCallResultFunction EVENT=events/pns-call-result.json)
	@test -n "$(FN)" -a -n "$(EVENT)" || { echo "usage: make invoke FN=<function> EVENT=<event file>" >&2; exit 2; }
	@$(PY) -m devtools.invoke $(FN) $(EVENT)

bench: deps  ## Performance and cost figures, each beside its baseline (BENCH_ARGS=--quick, --help)
	rm -rf .aws-sam && $(SAM) build >/dev/null
	$(PY) -m bench --build-dir .aws-sam/build $(BENCH_ARGS)

events: deps  ## Regenerate events/ from events/payloads/
	$(PY) -m devtools.events

clean:  ## Remove build output and virtualenvs
	rm -rf .aws-sam .venv .venv-sam .venv-lambda .venv-checkov node_modules .pytest_cache .mypy_cache .ruff_cache
