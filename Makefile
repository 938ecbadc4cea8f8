# capz-encryption-webhook — kubebuilder-style Makefile.
# Every tool the tests need is installed here from the Go module proxy at a pinned version, into
# ./bin, so `make test` works on a machine that has only Go.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

BIN_NAME    ?= capz-encryption-webhook
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT      ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BUILD_DATE  ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
VERSION_PKG := github.com/capz-encryption-webhook/capz-encryption-webhook/internal/version
LDFLAGS     := -s -w -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Commit=$(COMMIT) -X $(VERSION_PKG).BuildDate=$(BUILD_DATE)
# One definition of the release build, used by `make build` and checked against the Dockerfile.
GO_BUILD    := CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)"

IMG ?= ghcr.io/capz-encryption-webhook/capz-encryption-webhook:$(VERSION)

LOCALBIN ?= $(CURDIR)/bin
$(LOCALBIN):
	mkdir -p $(LOCALBIN)

# Tool versions.
HELM_VERSION           ?= v3.22.0
HELM_DOCS_VERSION      ?= v1.14.2
GOLANGCI_LINT_VERSION  ?= v2.15.0
K8S_VERSION            ?= 1.37.2
ETCD_VERSION           ?= 3.7.0

HELM           ?= $(LOCALBIN)/helm-$(HELM_VERSION)
HELM_DOCS      ?= $(LOCALBIN)/helm-docs-$(HELM_DOCS_VERSION)
GOLANGCI_LINT  ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: fmt
fmt: ## Run gofmt on the tree.
	gofmt -s -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: golangci-lint ## Run golangci-lint (.golangci.yml: vet, staticcheck, revive, errorlint, gocritic, importas, formatting, ...).
	$(GOLANGCI_LINT) run ./...

.PHONY: lint-fix
lint-fix: golangci-lint ## Run golangci-lint and apply its fixes (formatting, imports).
	$(GOLANGCI_LINT) run --fix ./...

.PHONY: run-check
run-check: ## Run the offline check on the sample manifests with the embedded defaults (denials expected).
	go run ./cmd/capz-encryption-webhook check -f config/samples/ || [ $$? -eq 1 ]

##@ Test

.PHONY: test
test: lint test-unit test-e2e ## Everything CI runs: lint, unit tests, end-to-end tests against a real kube-apiserver.

# test-unit also runs the packages whose state is shared between requests and background refreshes
# under the race detector: their concurrency tests only mean something there.
.PHONY: test-unit
test-unit: helm clusterctl ## Unit tests (no control plane; chart tests use helm, test/capzflavors compares its rendering with clusterctl).
	HELM="$(HELM)" CLUSTERCTL="$$(hack/clusterctl.sh)" go test -count=1 $$(go list ./... | grep -vE '/test/(e2e|chartapply)')
	go test -count=1 -race ./internal/azure/... ./internal/admission/... ./internal/skus/... ./internal/policyfile/... ./internal/audit/... ./internal/catalogfile/...

.PHONY: test-e2e
test-e2e: envtest-assets helm ## End-to-end tests against a real kube-apiserver + etcd built from source.
	@mkdir -p $(LOCALBIN); rc=0; \
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" HELM="$(HELM)" go test -count=1 -timeout 40m -v ./test/e2e/... ./test/chartapply/... ./test/capzflavors/... > $(LOCALBIN)/e2e.log 2>&1 || rc=$$?; \
	grep -E '^(--- |ok|FAIL|PASS|panic)|^\s+\S+_test.go:[0-9]+:|setup took|slowest' $(LOCALBIN)/e2e.log || true; \
	if [ $$rc -ne 0 ]; then echo "e2e failed (exit $$rc); full log: $(LOCALBIN)/e2e.log"; tail -50 $(LOCALBIN)/e2e.log; fi; \
	exit $$rc

# Every Fuzz* function of the repository, found in the sources, one after the other (go test fuzzes
# one target at a time). `make test` runs their seed corpora only, as plain tests.
.PHONY: fuzz
fuzz: ## Run every fuzz target of the repo for FUZZTIME each (default 60s); prints each one's last progress line.
	@for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go | sed 's/^func //'); do \
	    echo "== $$dir $$t (FUZZTIME $${FUZZTIME:-60s})"; \
	    rc=0; out=$$(go test $$dir -run '^$$' -fuzz "^$$t\$$" -fuzztime $${FUZZTIME:-60s} 2>&1) || rc=$$?; \
	    echo "$$out" | grep -E '^fuzz: elapsed' | tail -1; \
	    if [ $$rc -ne 0 ]; then echo "$$out" | tail -40; exit $$rc; fi; \
	  done; \
	done

# Load harness knobs: creates per mode and round, concurrent clients, rounds (every round measures
# every mode once, in turn).
BENCH_CREATES ?= 600
BENCH_CLIENTS ?= 8
BENCH_ROUNDS  ?= 2

.PHONY: bench
bench: envtest-assets helm ## Go benchmarks, then the load harness through a real kube-apiserver (not part of make test).
	go test -run '^$$' -bench . -benchmem ./internal/...
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" HELM="$(HELM)" go run ./test/loadbench \
		-creates $(BENCH_CREATES) -clients $(BENCH_CLIENTS) -rounds $(BENCH_ROUNDS)

# check on a generated 10,000-object flavor-shaped input (hack/checkbench): objects/s and peak RSS
# of the built binary. Not part of make test. CHECKBENCH_BIN compares another build.
CHECKBENCH_OBJECTS ?= 10000
CHECKBENCH_RUNS    ?= 5
CHECKBENCH_BIN     ?= $(LOCALBIN)/$(BIN_NAME)

.PHONY: bench-check
bench-check: build ## Measure check (objects/s, peak RSS) on a generated multi-document input.
	go test -run '^$$' -bench . -benchmem ./internal/streamcheck/
	go run ./hack/checkbench -bin $(CHECKBENCH_BIN) -objects $(CHECKBENCH_OBJECTS) -runs $(CHECKBENCH_RUNS)

##@ Build

.PHONY: build
build: ## Build the binary into ./bin.
	$(GO_BUILD) -o $(LOCALBIN)/$(BIN_NAME) ./cmd/capz-encryption-webhook

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg BUILD_DATE=$(BUILD_DATE) -t $(IMG) .

##@ Data

SKU_SUBSET    ?= ../shared/data/azure-vm-skus-extended.json
SKU_LOCATIONS ?= eastus,eastus2,southcentralus,westcentralus
SKU_EMBEDDED  := internal/skucatalog/data/vm-skus.json
SKU_PROVENANCE := internal/skucatalog/data/vm-skus.provenance.json

.PHONY: sku-catalog-embedded
sku-catalog-embedded: ## Regenerate the embedded VM-size catalog and its per-record provenance from the shared fact file.
	go run ./hack/skucatalog from-facts -in $(SKU_SUBSET) -out $(SKU_EMBEDDED) -provenance-out $(SKU_PROVENANCE)

.PHONY: sku-catalog
sku-catalog: ## Regenerate the embedded catalog from a live subscription (needs Azure credentials, AZURE_SUBSCRIPTION_ID).
	go run ./hack/skucatalog from-azure -subscription "$${AZURE_SUBSCRIPTION_ID:?set AZURE_SUBSCRIPTION_ID}" -locations $(SKU_LOCATIONS) -out $(SKU_EMBEDDED) -provenance-out $(SKU_PROVENANCE)

##@ Dependencies

.PHONY: envtest-assets
envtest-assets: ## Build kube-apiserver, etcd and kubectl from Go modules (cached outside the clone).
	K8S_VERSION=$(K8S_VERSION) ETCD_VERSION=$(ETCD_VERSION) hack/envtest-assets.sh >/dev/null

.PHONY: clusterctl
clusterctl: ## Build clusterctl at go.mod's Cluster API version from Go modules (cached outside the clone).
	hack/clusterctl.sh >/dev/null

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Install golangci-lint into ./bin.
$(GOLANGCI_LINT): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) GOFLAGS=-mod=mod GOWORK=off go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(LOCALBIN)/golangci-lint $(GOLANGCI_LINT)

.PHONY: helm
helm: $(HELM) ## Install helm into ./bin.
$(HELM): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) GOFLAGS=-mod=mod GOWORK=off go install -ldflags "-X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION)" helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(LOCALBIN)/helm $(HELM)

##@ Chart

CHART_DIR         ?= charts/capz-encryption-webhook
CHART_NAMESPACE   ?= capz-encryption-webhook-system
KUSTOMIZE_VERSION ?= v5.8.1
KUSTOMIZE         ?= $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
KUBECTL           ?= kubectl
# The chart tests (run by test-unit) build config/ with kustomize to compare it with the chart; they
# read its path from the environment, as they read HELM. Exported, and added as a prerequisite of
# test-unit here, so that the recipe above stays as it is.
export KUSTOMIZE
test-unit: kustomize
# test-e2e runs test/chartapply, which also builds config/default.
test-e2e: kustomize

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Install kustomize into ./bin.
$(KUSTOMIZE): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) GOFLAGS=-mod=mod GOWORK=off go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	mv $(LOCALBIN)/kustomize $(KUSTOMIZE)

.PHONY: test-chart
test-chart: helm kustomize helm-docs ## Chart, config/ and Dockerfile tests only (helm lint/template, schema, kustomize agreement, values tables).
	HELM="$(HELM)" go test -count=1 ./test/chart/...

.PHONY: test-chart-apply
test-chart-apply: envtest-assets helm kustomize ## Server-side dry run of the chart (every scenario) and config/default against a real kube-apiserver (also part of test-e2e).
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" HELM="$(HELM)" go test -count=1 -timeout 20m -v ./test/chartapply/...

.PHONY: chart-config
chart-config: helm ## Regenerate the chart's CEL matchCondition template from Go, then config/webhook/manifests.yaml, config/rbac/role.yaml and config/manager/manager.yaml from the chart.
	HELM="$(HELM)" go test -count=1 ./test/chart/ -run '^TestCELConditionTemplateGenerated$$' -args -update
	HELM="$(HELM)" go test -count=1 ./test/chart/ -run '^TestConfigGeneratedFromChart$$' -args -update

.PHONY: helm-lint
helm-lint: helm ## helm lint --strict the chart.
	$(HELM) lint --strict --kube-version $(K8S_VERSION) $(CHART_DIR)

.PHONY: helm-template
helm-template: helm ## Print the chart rendered with its default values.
	$(HELM) template capz-encryption-webhook $(CHART_DIR) --namespace $(CHART_NAMESPACE) --kube-version $(K8S_VERSION)

DIST          ?= dist
CHART_VERSION := $(shell sed -n 's/^version: *//p' $(CHART_DIR)/Chart.yaml)

.PHONY: helm-package
helm-package: helm ## Lint and package the chart into ./dist as an OCI-pushable .tgz (helm push prints below).
	$(HELM) lint --strict --kube-version $(K8S_VERSION) $(CHART_DIR)
	$(HELM) package $(CHART_DIR) --destination $(DIST)
	@echo "push it with: helm push $(DIST)/capz-encryption-webhook-$(CHART_VERSION).tgz oci://<registry>/<repository>"

# The values tables (the chart's README.md and the project README) are generated from values.yaml by
# helm-docs; test/chart (run by test-unit) fails when they drift, and reads helm-docs from HELM_DOCS.
export HELM_DOCS
test-unit: helm-docs

.PHONY: chart-docs
chart-docs: helm-docs ## Regenerate the chart's README.md and the README's values table from values.yaml (helm-docs).
	HELM="$(HELM)" go test -count=1 ./test/chart/ -run '^TestValuesTables$$' -args -update

.PHONY: helm-docs
helm-docs: $(HELM_DOCS) ## Install helm-docs into ./bin.
$(HELM_DOCS): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) GOFLAGS=-mod=mod GOWORK=off go install github.com/norwoodj/helm-docs/cmd/helm-docs@$(HELM_DOCS_VERSION)
	mv $(LOCALBIN)/helm-docs $(HELM_DOCS)

.PHONY: deploy
deploy: kustomize ## Install config/default (kustomize) into the cluster of the current kubeconfig context.
	$(KUSTOMIZE) build config/default | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: kustomize ## Remove what `make deploy` installed.
	$(KUSTOMIZE) build config/default | $(KUBECTL) delete --ignore-not-found -f -
