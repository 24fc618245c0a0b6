# The README's commands. `make test` is what CI runs.
.PHONY: run test interop-deps bench vet

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
