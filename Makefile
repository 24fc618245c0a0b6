# The README's commands. `make test` is what CI runs.
.PHONY: build run test interop-deps bench vet loadtest

VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

# The binary the README's "Running" section uses, in the current directory.
build:
	go build -ldflags "-X main.version=$(VERSION)" -o callgate ./cmd/callgate

run:
	go run ./cmd/callgate

# Interop tests drive callgate with providers' and platforms' own SDKs from
# npm; without npm they are skipped (CI installs them and requires them).
test: interop-deps
	go test -race ./...

interop-deps:
	@if command -v npm >/dev/null 2>&1; then \
		for d in interop/*/; do npm ci --prefix "$$d" --no-audit --no-fund --loglevel=error; done; \
	else \
		echo "npm not found: interop tests will be skipped"; \
	fi

bench:
	go test -run '^$$' -bench . -benchmem ./...

vet:
	go vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

# The load harness (see BENCHMARKS.md): builds the gateway, runs it on
# loopback with a fake chat app, a slow fake provider and a bare Echo
# ceiling, and prints every scenario's figures. LOADTEST_FLAGS adds flags,
# e.g. LOADTEST_FLAGS='-store postgres -dsn postgres://...'.
loadtest:
	go run ./cmd/loadtest $(LOADTEST_FLAGS)
