# Causeway build targets. `make help` lists them.

# Pinned code-generation tools, installed into .bin/ through the Go module proxy.
BUF_VERSION                  := v1.75.0
PROTOC_GEN_GO_VERSION        := v1.36.12
PROTOC_GEN_CONNECT_GO_VERSION := v1.21.1

BIN      := $(CURDIR)/.bin
GO       ?= go
# Packages with concurrency run under the race detector.
RACE     ?= -race
DATA     ?= ./data
LISTEN   ?= 127.0.0.1:7070
REGION   ?= local
BENCHTIME ?= 3s

.PHONY: help build run test lint proto tools bench clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"

build: ## build the causeway binary into .bin/
	$(GO) build -o $(BIN)/causeway ./cmd/causeway

run: build ## start one node (data under ./data, Connect API on 127.0.0.1:7070)
	$(BIN)/causeway serve --region $(REGION) --data $(DATA) --listen $(LISTEN)

test: lint ## vet, format check and all tests (race detector on)
	$(GO) test $(RACE) -count=1 -timeout 15m ./...

lint: ## gofmt check and go vet
	@unformatted=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go' | grep -v -e '\.pb\.go$$' -e '\.connect\.go$$')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

tools: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-connect-go ## install pinned code generators into .bin/

$(BIN)/buf:
	GOBIN=$(BIN) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(BIN)/protoc-gen-connect-go:
	GOBIN=$(BIN) $(GO) install connectrpc.com/connect/cmd/protoc-gen-connect-go@$(PROTOC_GEN_CONNECT_GO_VERSION)

proto: tools ## regenerate Go and Connect code from api/causeway/v1/*.proto (offline once tools are installed)
	$(BIN)/buf lint
	$(BIN)/buf generate

bench: ## full-stack and floor benchmarks (Put/Get at 1 and 64 clients)
	$(GO) test -run='^$$' -bench=. -benchtime=$(BENCHTIME) ./bench/

clean: ## remove build output (not ./data)
	rm -rf $(BIN)/causeway
