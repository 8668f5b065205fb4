# Causeway build targets. `make help` lists them.

# Pinned code-generation tools, installed into .bin/ through the Go module proxy.
BUF_VERSION                  := v1.75.0
PROTOC_GEN_GO_VERSION        := v1.36.12
PROTOC_GEN_CONNECT_GO_VERSION := v1.21.1
# helm renders and lints the chart in deploy/helm (deploy/helm_test.go).
HELM_VERSION                 := v4.3.2

BIN      := $(CURDIR)/.bin
GO       ?= go
# Packages with concurrency run under the race detector.
RACE     ?= -race
DATA     ?= ./data
LISTEN   ?= 127.0.0.1:7070
REGION   ?= local
BENCHTIME ?= 3s
# Rounds of BenchmarkPutRatio (a multiple of 4: every order of its 4 legs equally often).
RATIO_ROUNDS ?= 12
# Schedules of the deterministic simulation in `make test` (seeds 1..N).
SIM_SEEDS ?= 5000
SIM_PKG   := ./causal/internal/sim

.PHONY: help build run demo cluster test sim lint proto tools bench clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"

build: ## build the causeway binary into .bin/
	$(GO) build -buildvcs=auto -o $(BIN)/causeway ./cmd/causeway

run: build ## start one node (data under ./data, Connect API on 127.0.0.1:7070)
	$(BIN)/causeway serve --region $(REGION) --data $(DATA) --listen $(LISTEN)

DEMO_LISTEN ?= 127.0.0.1:8080
demo: build ## three regions and a live dashboard (http://127.0.0.1:8080, DEMO_LISTEN=...): cause a partition, watch the CAP trade-off (Ctrl-C stops it; SCRIPT=partition runs a scenario instead)
	$(BIN)/causeway demo --listen $(DEMO_LISTEN) $(if $(SCRIPT),--script $(SCRIPT))

cluster: build ## start a local 3-region cluster with WAN delays and fault injection (Ctrl-C stops it)
	$(BIN)/causeway cluster --data ./data/cluster

test: lint $(BIN)/helm ## vet, format check and all tests (race detector on), then the simulation
	$(GO) test $(RACE) -count=1 -timeout 15m $$($(GO) list ./... | grep -v '/causal/internal/sim$$')
	@# The simulator is single-threaded by design (virtual time, no goroutines):
	@# the race detector adds nothing there, so it runs without it, with many schedules.
	$(GO) test -count=1 -timeout 10m $(SIM_PKG) -seeds=$(SIM_SEEDS)

sim: ## run the simulation: SIM_SEEDS=N schedules, or SEED=N to replay one with its history
	$(GO) test -count=1 -v $(SIM_PKG) -run TestSimulation $(if $(SEED),-seed=$(SEED),-seeds=$(SIM_SEEDS))

lint: ## gofmt check and go vet
	@unformatted=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go' | grep -v -e '\.pb\.go$$' -e '\.connect\.go$$')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

tools: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-connect-go $(BIN)/helm ## install pinned code generators and helm into .bin/

$(BIN)/buf:
	GOBIN=$(BIN) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(BIN)/protoc-gen-connect-go:
	GOBIN=$(BIN) $(GO) install connectrpc.com/connect/cmd/protoc-gen-connect-go@$(PROTOC_GEN_CONNECT_GO_VERSION)
$(BIN)/helm:
	GOBIN=$(BIN) $(GO) install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)

.PHONY: manifests
manifests: $(BIN)/helm ## render deploy/kubernetes/causeway.yaml from the Helm chart and its example values
	$(BIN)/helm template causeway deploy/helm/causeway --namespace causeway -f deploy/kubernetes/example-values.yaml > deploy/kubernetes/causeway.yaml

proto: tools ## regenerate Go and Connect code from api/causeway/v1/*.proto (offline once tools are installed)
	$(BIN)/buf lint
	$(BIN)/buf generate

bench: ## full-stack and floor benchmarks (Put/Get at 1 and 64 clients), the interleaved Put/floor ratios, fsync pacing and cost, then replication benchmarks
	$(GO) test -run='^$$' -bench=Stack -benchtime=$(BENCHTIME) ./bench/
	$(GO) test -run='^$$' -bench=PutRatio -benchtime=$(RATIO_ROUNDS)x ./bench/
	$(GO) test -run='^$$' -bench=DurablePacing -benchtime=14x ./bench/
	$(GO) test -run='^$$' -bench=Fdatasync -benchtime=3000x ./bench/
	$(GO) test -run='^$$' -bench='Visibility|Apply|Metadata|NodePut' -benchtime=5000x ./replica/

clean: ## remove build output (not ./data)
	rm -rf $(BIN)/causeway

# Fault campaign (`causeway verify`): how long clients run, and extra flags
# (e.g. VERIFY_FLAGS="--seed 42 --faults kill,pause").
DURATION     ?= 60s
VERIFY_FLAGS ?=
.PHONY: verify
verify: build ## fault campaign against a local 3-region cluster (DURATION=60s; report in ./verify-report/)
	$(BIN)/causeway verify --duration $(DURATION) $(VERIFY_FLAGS)

# Linearizable tier benchmarks (bench/linear_test.go): claim and CAS latency
# under the emulated WAN matrix, each as a ratio to its physical floor, then
# 64-client put-if-absent throughput beside a 3-member etcd cluster. One
# invocation, so the rows sit side by side. A time-based benchtime (not Nx)
# suits both kinds of row: about 40 sequential WAN operations per latency
# row, tens of thousands of operations per throughput row.
LINEAR_BENCHTIME ?= 10s
.PHONY: bench-linear
bench-linear: ## linearizable tier: WAN latency vs its floor, throughput vs etcd (installs Debian's etcd-server if missing and possible)
	@command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || { \
	  if ! command -v apt-get >/dev/null 2>&1; then echo "etcd not installed and no apt-get: the etcd rows will be skipped"; \
	  elif [ "$$(id -u)" = 0 ]; then { apt-get update -qq && apt-get install -y -qq etcd-server; } || echo "installing etcd-server failed: the etcd rows will be skipped"; \
	  elif sudo -n true 2>/dev/null; then { sudo -n apt-get update -qq && sudo -n apt-get install -y -qq etcd-server; } || echo "installing etcd-server failed: the etcd rows will be skipped"; \
	  else echo "etcd not installed (apt-get install -y etcd-server needs root): the etcd rows will be skipped"; fi; }
	$(GO) test -run='^$$' -bench=BenchmarkLinear -benchtime=$(LINEAR_BENCHTIME) -timeout 30m ./bench/

# The peer benchmark (bench/peer_test.go): a causeway serve process and a
# single-member etcd process driven in turn by one load generator, Put and
# Get at 1 and 64 clients over Connect/HTTP/1.1, Connect/HTTP/2 and gRPC,
# with server CPU per operation. PEER_SLICE, PEER_ROUNDS, PEER_CLIENTS,
# PEER_OPS and PEER_PPROF=DIR (server CPU profiles) tune it; see bench/doc.go.
.PHONY: bench-peer
bench-peer: build ## causal Put/Get vs a single etcd, same load generator, alternating slices (installs Debian's etcd-server if missing and possible)
	@command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || { \
	  if ! command -v apt-get >/dev/null 2>&1; then echo "etcd not installed and no apt-get: the etcd rows will be skipped"; \
	  elif [ "$$(id -u)" = 0 ]; then { apt-get update -qq && apt-get install -y -qq etcd-server; } || echo "installing etcd-server failed: the etcd rows will be skipped"; \
	  elif sudo -n true 2>/dev/null; then { sudo -n apt-get update -qq && sudo -n apt-get install -y -qq etcd-server; } || echo "installing etcd-server failed: the etcd rows will be skipped"; \
	  else echo "etcd not installed (apt-get install -y etcd-server needs root): the etcd rows will be skipped"; fi; }
	CAUSEWAY_BIN=$(BIN)/causeway $(GO) test -run='^$$' -bench=BenchmarkPeer -benchtime=1x -timeout 30m ./bench/

# The WAN latency benchmark (`causeway bench`, internal/wanbench): causal and
# linearizable tiers beside etcd under an emulated WAN; report, results.json
# and plots into BENCH_OUT. BENCH_FLAGS="--quick" for a one-minute run,
# "--wan aws5" for five regions. etcd-server is installed first when it can
# be (the etcd rows are skipped without it); CI does not need it.
BENCH_OUT   ?= ./bench-report
BENCH_FLAGS ?=
.PHONY: bench-wan
bench-wan: build ## WAN latency benchmark beside etcd (BENCH_FLAGS=--quick; report in ./bench-report)
	@command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then { apt-get update -qq && apt-get install -y -qq etcd-server; } || echo "installing etcd-server failed: the etcd rows will be skipped"; \
	  else echo "etcd not installed (apt-get install -y etcd-server needs root): the etcd rows will be skipped"; fi; }
	$(BIN)/causeway bench --out $(BENCH_OUT) $(BENCH_FLAGS)
