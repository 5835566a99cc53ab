# simproof — see README.md. Targets a newcomer needs: `make demo`, `make test`.
SHELL := /bin/bash
GO ?= go
export PATH := $(PATH):/usr/local/go/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/simproof/simproof/internal/version.Version=$(VERSION)
BIN := bin
# Fuzz budgets are execution counts, not durations: with a duration, Go 1.26's
# fuzz coordinator can report "context deadline exceeded" at the deadline with
# no crasher (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 50000x

.PHONY: all build demo demo-netns test test-deps vet unit fuzz-short fuzz cross clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/simproofd ./cmd/simproof ./cmd/simproof-emulator

# The whole job on simulated modems and emulated providers: no root, no
# hardware, no credentials.
demo: build
	$(BIN)/simproof demo

# The same on a network bench in namespaces (root): traffic over wwan0, not eth0.
demo-netns: build
	scripts/netns-demo.sh

# Installs what the tests need (as root, with apt-get), then runs every test.
test: test-deps vet unit fuzz-short cross

test-deps:
	@scripts/install-test-deps.sh

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 20m ./...

# Short coverage-guided runs of each fuzz target; `make fuzz` runs longer.
FUZZ_TARGETS := $(shell grep -rl --include='*_test.go' '^func Fuzz' . | xargs -r grep -H '^func Fuzz' | sed -E 's|^\./(.*)/[^/]+_test.go:func (Fuzz[A-Za-z0-9_]+).*|\1:\2|' | sort -u)

fuzz-short:
	@for t in $(FUZZ_TARGETS); do \
		pkg=./$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$pkg $$fn for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz="^$$fn$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=200x $$pkg || exit 1; \
	done

fuzz:
	$(MAKE) fuzz-short FUZZTIME=500000x

cross:
	@for t in linux/amd64 linux/arm64 linux/arm:7 linux/mips linux/mipsle; do \
		os=$${t%%/*}; rest=$${t#*/}; arch=$${rest%%:*}; arm=$${rest#*:}; \
		[ "$$arm" = "$$rest" ] && arm=; \
		out=$(BIN)/$$os-$$arch$${arm:+v$$arm}; \
		echo "build $$out"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$$arm GOMIPS=softfloat \
			$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$out/ ./cmd/simproofd ./cmd/simproof || exit 1; \
	done

# Every cross-built binary's size (stripped: -s -w).
.PHONY: packages cross-sizes
cross-sizes: cross
	@scripts/packaging/sizes.sh $(BIN)

# .deb, .rpm and .apk for amd64, arm64 and armv7 into dist/ (packaging/README.md).
packages: cross
	@scripts/packaging/build.sh

clean:
	rm -rf $(BIN) dist

# Measurements on a namespace bench with a userspace delay line (root, about
# five minutes): writes BENCHMARKS.md. See bench/doc.go.
.PHONY: bench
bench:
	@if [ "$$(id -u)" != 0 ]; then echo "make bench needs root (network namespaces, AF_PACKET): sudo make bench" >&2; exit 2; fi
	@command -v curl >/dev/null || apt-get install -y curl
	$(GO) run ./bench -out BENCHMARKS.md
