# Communiqué — the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
BIN     := bin/communique
DATA    ?= communique-data
ADDR    ?= 127.0.0.1:8080
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: build run test test-go test-short lint bench bench-load fuzz clean web web-check test-web

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/communique

# Builds and starts one server on the embedded store in ./$(DATA), with the
# demo summit (Seoul 2013); prints an invitation link for each role: open
# one in a browser. The web client is embedded (web/dist), so no Node here.
run: build
	./$(BIN) serve --data $(DATA) --addr $(ADDR) --demo

# The whole suite: the Go tests with the race detector, then the web
# client's unit and browser tests.
test: test-go test-web

test-go: lint
	$(GO) test -race -count=1 -timeout 30m ./...

# --- the browser client (web/) ---
# web/dist is committed, so `go build` needs no Node; `make web` rebuilds it
# from web/src with the locked packages (npm ci) and esbuild.
WEB_STAMP := web/node_modules/.installed

$(WEB_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $@

web: $(WEB_STAMP)
	cd web && node build.mjs

# CI: rebuilds the bundle and fails if the committed one differs.
web-check: web
	@if [ -n "$$(git status --porcelain -- web/dist)" ]; then \
		git status --short -- web/dist; \
		echo "web/dist is stale: run 'make web' and commit web/dist"; exit 1; \
	fi

# Unit tests (OT, protocol state machine) and browser tests (Debian's
# chromium driven by playwright-core against a real communique serve).
# The binary is built once here for every browser test file.
test-web: $(WEB_STAMP)
	$(GO) build -o bin/communique-webtest ./cmd/communique
	COMMUNIQUE_BIN=$(CURDIR)/bin/communique-webtest node --test web/test/unit/*.test.mjs web/test/e2e/*.test.mjs

test-short:
	$(GO) test -short -count=1 ./...

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# Benchmarks of the hot paths; figures go to docs/benchmarks.md.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./ot/ ./server/...

# The load generator's summit scenario against a server it starts as a child
# process (20 drafters × 5 ops/s, 200 followers, 20 s); BENCH_FLAGS adds or
# overrides flags, e.g. BENCH_FLAGS='--followers 2000 --json'. See
# docs/benchmarks.md for every scenario.
BENCH_FLAGS ?=
bench-load: build
	./$(BIN) bench --scenario summit $(BENCH_FLAGS)

# A short run of every fuzz target (go test -fuzz takes one target at a time).
FUZZTIME ?= 20s
fuzz:
	for f in $$($(GO) test -list '^Fuzz' ./ot/ | grep ^Fuzz); do \
		$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) ./ot/ || exit 1; \
	done

clean:
	rm -rf bin
