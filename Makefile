# Switchboard build. `make build` puts the hub and every built-in plugin in bin/.
GO        ?= go
BIN       := bin
PLUGINS   := zalo whatsapp hubspot postgrescrm claude
TESTPLUGINS := testchannel testcrm testllm
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/switchboard-hub/switchboard/hub/version.Version=$(VERSION)

.PHONY: build run test proto lint clean

build:
	@mkdir -p $(BIN)/plugins
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/switchboard ./cmd/switchboard
	@for p in $(PLUGINS); do \
		if [ -d plugins/$$p ]; then $(GO) build -o $(BIN)/plugins/$$p ./plugins/$$p || exit 1; fi; \
	done
	@for p in $(TESTPLUGINS); do \
		$(GO) build -o $(BIN)/plugins/$$p ./plugins/sdk/testplugins/$$p || exit 1; \
	done

# The sandbox: the hub with fakes of Zalo, WhatsApp, HubSpot and Anthropic,
# playing sample conversations, then running until Ctrl-C (docs/getting-started.md).
run: build
	$(BIN)/switchboard sandbox

test:
	bash .ci/run

# Regenerates plugins/sdk/pluginv1 from the .proto. Needs protoc
# (apt-get install protobuf-compiler) and the Go generators:
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
#   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
proto:
	protoc -I plugins/sdk/proto \
		--go_out=paths=source_relative:plugins/sdk/pluginv1 \
		--go-grpc_out=paths=source_relative:plugins/sdk/pluginv1 \
		switchboard/plugin/v1/plugin.proto
	mv plugins/sdk/pluginv1/switchboard/plugin/v1/*.go plugins/sdk/pluginv1/
	rm -rf plugins/sdk/pluginv1/switchboard

lint:
	gofmt -l . | grep -v '^$$' && exit 1 || true
	$(GO) vet ./...
	staticcheck ./...

clean:
	rm -rf $(BIN)
