# Rick and Morty pipeline: build, test, run and deploy. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

ARTIFACTS_DIR ?= $(CURDIR)/.build
ENV ?= default
GO_LAMBDA_BUILD = GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -trimpath -ldflags='-s -w -buildid=' -o $(ARTIFACTS_DIR)/bootstrap
RDS_CA_URL ?= https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem
SERVICES = eval "$$(bash .ci/services.sh --env)"
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Fuzzing: `make fuzz` runs each target for FUZZTIME; `make test` for TEST_FUZZTIME. A coverage-increasing
# input is minimized for at most FUZZMINIMIZETIME (Go's default, 60s, would eat short runs).
FUZZTIME ?= 30s
# make test counts executions instead of timing them: a -fuzztime duration races Go 1.26's fuzz coordinator
# (go.dev/issue/75804, fixed in Go 1.27), which then fails a target with "context deadline exceeded" on a busy machine.
TEST_FUZZTIME ?= 2000x
TEST_FUZZMINIMIZETIME ?= 200x
FUZZMINIMIZETIME ?= 5s
FUZZPKGS ?= ./...

.PHONY: help build build-ExtractFunction build-TransformFunction build-LoadFunction build-ExportFunction build-ExportRangeFunction \
	rds-ca test services run bench lint cfn-lint fuzz reliability deploy validate \
	invoke-extract invoke-transform invoke-load invoke-export clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-26s %s\n", $$1, $$2}'

build-ExtractFunction: ## build the Extract function's bootstrap into $(ARTIFACTS_DIR) (sam build calls it)
	$(GO_LAMBDA_BUILD) ./src/cmd/extract

build-TransformFunction: ## build the Transform function's bootstrap into $(ARTIFACTS_DIR)
	$(GO_LAMBDA_BUILD) ./src/cmd/transform

build-LoadFunction: ## build the Load function's bootstrap (and the RDS CA bundle) into $(ARTIFACTS_DIR)
	$(GO_LAMBDA_BUILD) ./src/cmd/load
	@$(MAKE) --no-print-directory rds-ca

build-ExportFunction: ## build the Export function's bootstrap (and the RDS CA bundle) into $(ARTIFACTS_DIR)
	$(GO_LAMBDA_BUILD) ./src/cmd/export
	@$(MAKE) --no-print-directory rds-ca

build-ExportRangeFunction: ## build the export range worker's bootstrap (and the RDS CA bundle) into $(ARTIFACTS_DIR)
	$(GO_LAMBDA_BUILD) ./src/cmd/exportrange
	@$(MAKE) --no-print-directory rds-ca

rds-ca: ## fetch the RDS CA bundle beside the bootstrap (DB_CA_BUNDLE); warns when offline
	@curl -fsSL --max-time 20 -o $(ARTIFACTS_DIR)/rds-ca-bundle.pem $(RDS_CA_URL) 2>/dev/null \
	  || { rm -f $(ARTIFACTS_DIR)/rds-ca-bundle.pem; echo "warning: could not fetch the RDS CA bundle ($(RDS_CA_URL)); TLS to RDS will verify against system roots only" >&2; }

build: ## build every bootstrap under .build/<Function>/ (what sam build produces)
	@for f in ExtractFunction TransformFunction LoadFunction ExportFunction ExportRangeFunction; do \
	  mkdir -p .build/$$f && $(MAKE) --no-print-directory build-$$f ARTIFACTS_DIR=$(CURDIR)/.build/$$f || exit 1; \
	  ls -l .build/$$f/bootstrap; done

services: ## start (installing when missing) MariaDB and MinIO for the tests
	bash .ci/services.sh

test: ## cfn-lint the template, vet and run every test (race, shuffled) against real MariaDB and MinIO, started when missing; then each fuzz target briefly
	@$(MAKE) --no-print-directory cfn-lint
	$(SERVICES) && export TEST_REQUIRE_SERVERS=1 && go vet ./... && go test -race -shuffle=on -timeout 30m ./...
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(TEST_FUZZTIME) FUZZMINIMIZETIME=$(TEST_FUZZMINIMIZETIME)

run: ## run the whole chain locally (real API when reachable, else the fake API)
	go run ./src/cmd/pipeline run

bench: ## measure crawl, transform, load and export against their baselines, printed as ratios
	export SERVICES_PANDAS=1 && $(SERVICES) && go run ./src/cmd/bench

fuzz: ## run every fuzz target for FUZZTIME each (default 30s); FUZZPKGS narrows the packages
	@list=$$(go test -list '^Fuzz' $(FUZZPKGS)) || { echo "$$list"; exit 1; }; \
	targets=$$(echo "$$list" | awk '/^Fuzz/{f[++n]=$$1} /^ok/{for(i=1;i<=n;i++)print $$2, f[i]; n=0}'); \
	test -n "$$targets" || { echo "fuzz: no fuzz target in $(FUZZPKGS)"; exit 1; }; \
	while read -r pkg fn; do \
	  echo "== $$pkg $$fn ($(FUZZTIME))"; \
	  for try in 1 2 3; do \
	    out=$$(go test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) $$pkg 2>&1); rc=$$?; \
	    echo "$$out"; [ $$rc = 0 ] && break; \
	    if grep -q 'context deadline exceeded' <<< "$$out" && ! grep -q 'Failing input written' <<< "$$out"; then \
	      echo "fuzz: $$fn hit Go's coordinator deadline race (go.dev/issue/75804), no input failed: running it again"; \
	    else exit 1; fi; \
	  done; [ $$rc = 0 ] || exit 1; \
	done <<< "$$targets"

reliability: ## run the fault, duplicate, hostile-input and secrets suite and print its table
	$(SERVICES) && export TEST_REQUIRE_SERVERS=1 RELIABILITY_FULL=1 && go test -count=1 -timeout 60m -v -run 'Reliability' ./src/internal/reliability/...

lint: ## gofmt, go vet, staticcheck and cfn-lint
	@test -z "$$(gofmt -l src)" || { gofmt -l src; echo "gofmt: files above need formatting"; exit 1; }
	go vet ./...
	go run $(STATICCHECK) ./...
	@$(MAKE) --no-print-directory cfn-lint

cfn-lint: ## check template.yaml with cfn-lint and its SAM translator (what sam validate --lint runs): any error or warning fails
	@command -v cfn-lint >/dev/null 2>&1 || { echo "cfn-lint: not installed (pip install cfn-lint); make lint and make test need it" >&2; exit 1; }
	@rc=0; cfn-lint template.yaml || rc=$$?; \
	if [ $$rc -ne 0 ] && [ $$rc -ne 8 ]; then echo "cfn-lint: template.yaml has errors or warnings (exit $$rc)" >&2; exit 1; fi; \
	echo "cfn-lint: template.yaml has no error or warning"

validate: ## validate template.yaml with SAM (lint = true in samconfig.toml)
	sam validate --config-env $(ENV)

deploy: ## build and deploy with SAM (ENV=dev|prod selects the samconfig environment)
	sam build --config-env $(ENV) && sam deploy --config-env $(ENV)

# make invoke-*: `sam local invoke` where SAM and Docker work (the function then reaches the local stack served by
# `pipeline serve --s3-addr 0.0.0.0:9090 --mysql-addr 0.0.0.0:3307` as host.docker.internal, see events/env.json);
# `pipeline invoke` otherwise, which runs the same bootstrap without Docker against the local stack itself.
HAVE_SAM = command -v sam >/dev/null 2>&1 && docker info >/dev/null 2>&1
LOCAL_INVOKE = if $(HAVE_SAM); then \
	  echo "sam local invoke $(1): the local stack must be served: go run ./src/cmd/pipeline serve --s3-addr 0.0.0.0:9090 --mysql-addr 0.0.0.0:3307" >&2; \
	  sam build --cached && sam local invoke $(1) -e $(2) --env-vars events/env.json; \
	else go run ./src/cmd/pipeline invoke $(1) --event $(2) --env-vars events/env.json; fi

invoke-extract: ## invoke ExtractFunction with events/extract-schedule.json (SAM with Docker, else pipeline invoke)
	@$(call LOCAL_INVOKE,ExtractFunction,events/extract-schedule.json)

invoke-transform: ## invoke TransformFunction with events/transform-s3-put.json (raw/character/page-0001.json)
	@$(call LOCAL_INVOKE,TransformFunction,events/transform-s3-put.json)

invoke-load: ## invoke LoadFunction with events/load-sqs-batch.json (two processed/ CSVs and S3's test event)
	@$(call LOCAL_INVOKE,LoadFunction,events/load-sqs-batch.json)

invoke-export: ## invoke ExportFunction with events/export-schedule.json
	@$(call LOCAL_INVOKE,ExportFunction,events/export-schedule.json)

clean: ## remove build output and the local stack's data
	rm -rf .build .local
