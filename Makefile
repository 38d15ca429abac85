# fvm — see README.md. `make quickstart` sets up and boots a VM; `make test` runs every gate.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/fvmhq/fvm/cli.Version=$(VERSION)
BIN       := bin/fvm

.PHONY: bench stress fuzz app install app-e2e all build setup quickstart test unit e2e e2e-full e2e-vz check fmt vet staticcheck darwin-check web web-check release release-check clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

setup:
	./scripts/setup.sh

# One command: install dependencies, build fvm, boot a Debian VM and open a shell.
# Linux: builds a Debian image from Debian packages (fvm image build, Linux only)
# and boots it. macOS: builds and signs fvm.app (the vz helper is in it) and
# boots the catalog's Debian from the bundle's CLI. QUICKSTART_OS overrides
# the detected OS (tests print both recipes with make -n).
QUICKSTART_OS ?= $(shell uname -s)
APP_CLI       := bin/fvm.app/Contents/MacOS/fvm
ifeq ($(QUICKSTART_OS),Darwin)
quickstart: setup app
	$(APP_CLI) run debian
else
quickstart: setup build
	$(BIN) image build debian
	$(BIN) run debian-local
endif

# The test command: formatting, vet, static checks, darwin type-check, unit and e2e tests
# (the e2e image is built while the checks run; see scripts/test.sh).
test: setup
	MAKE=$(MAKE) ./scripts/test.sh

check: fmt vet staticcheck darwin-check unit

unit:
	$(GO) test -race ./...

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.7.0 ./...

darwin-check:
	$(GO) run ./scripts/darwincheck -test ./...

# The web console's bundle (resources/web/dist: noVNC, xterm.js and the page's code),
# committed so that a plain `go build` embeds a working console. `make web` rebuilds it
# from resources/web/src and the npm packages pinned in resources/web/package-lock.json;
# `make web-check` (run by `make test`) fails when the committed bundle is stale.
web:
	./scripts/web.sh

web-check:
	./scripts/web.sh --check

# Boots real VMs (TCG where KVM is unusable): builds the Debian image first, then
# drives the tray app's D-Bus menu on a real VM. E2E_RUN=regexp runs some Go e2e tests only.
e2e: build app
	./scripts/e2e.sh

# The whole e2e suite plus its slow tests (FVM_E2E_FULL=1): an arm64 image built under
# qemu-user and booted under TCG, a Debian 12 image with extra packages. Not in `make test`.
e2e-full: build app
	FVM_E2E_FULL=1 E2E_TIMEOUT=150m ./scripts/e2e.sh

# Speed, measured side by side in one run: a table, bench.json and BENCHMARKS.md.
# Boots VMs; not part of `make test`. FVM_BENCH_HOME keeps the built image.
bench: build
	$(GO) run ./scripts/bench -fvm $(BIN)

# Fault injection against bin/fvm (kill -9 of the host during create, import,
# pull, rm, snapshot create and clone; corrupt state; a full disk; 20 racing
# starts, which boot one VM under the heavy lock; FIFOs, oversized files and
# symlinks in place of every state file; in-place rewrites during import;
# SIGTERM to the host in every long operation; fvm run as an unprivileged user,
# probed by another). STRESS_N sets how many kills (default 60). The closing
# note gives the counts.
stress: build
	FVM_BIN=$(CURDIR)/bin/fvm flock /tmp/fvm-heavy.lock $(GO) test -tags stress -count=1 -v -timeout 30m ./scripts/stress/

# Seeded fuzzers of the parsers, a few seconds each: of what comes from outside
# (images, sizes, streams) and of every file fvm reads back from its own state
# (specs and runtime records, drivers' facts and saved-state metadata, warm
# snapshot metadata, image entries, pid files, vz plans, known_hosts lines).
# A count, not a duration: a duration's deadline can fail a target that found
# nothing (Go's fuzz coordinator race, golang/go#75804; seen here on FuzzSnapshotInfo).
FUZZ_TIME ?= 1000x
fuzz:
	$(GO) test -run XXX -fuzz ^FuzzQCOW2Header$$ -fuzztime $(FUZZ_TIME) ./core/image/
	$(GO) test -run XXX -fuzz ^FuzzLookup$$ -fuzztime $(FUZZ_TIME) ./core/image/
	$(GO) test -run XXX -fuzz ^FuzzSpecJSON$$ -fuzztime $(FUZZ_TIME) ./core/vm/
	$(GO) test -run XXX -fuzz ^FuzzNames$$ -fuzztime $(FUZZ_TIME) ./core/vm/
	$(GO) test -run XXX -fuzz ^FuzzParseSize$$ -fuzztime $(FUZZ_TIME) ./core/vm/
	$(GO) test -run XXX -fuzz ^FuzzParsePortForward$$ -fuzztime $(FUZZ_TIME) ./core/vm/
	$(GO) test -run XXX -fuzz ^FuzzRead$$ -fuzztime $(FUZZ_TIME) ./core/api/stream/
	$(GO) test -run XXX -fuzz ^FuzzStripQueries$$ -fuzztime $(FUZZ_TIME) ./core/console/
	$(GO) test -run XXX -fuzz ^FuzzControlRequest$$ -fuzztime $(FUZZ_TIME) ./core/driver/vz/
	$(GO) test -run XXX -fuzz ^FuzzDecodePPM$$ -fuzztime $(FUZZ_TIME) ./core/driver/qemu/
	$(GO) test -run XXX -fuzz ^FuzzStateFiles$$ -fuzztime $(FUZZ_TIME) ./core/store/
	$(GO) test -run XXX -fuzz ^FuzzFacts$$ -fuzztime $(FUZZ_TIME) ./core/driver/qemu/
	$(GO) test -run XXX -fuzz ^FuzzFacts$$ -fuzztime $(FUZZ_TIME) ./core/driver/vz/
	$(GO) test -run XXX -fuzz ^FuzzLoadPlan$$ -fuzztime $(FUZZ_TIME) ./core/driver/vz/helper/
	$(GO) test -run XXX -fuzz ^FuzzSnapshotInfo$$ -fuzztime $(FUZZ_TIME) ./core/warm/
	$(GO) test -run XXX -fuzz ^FuzzRegistryEntry$$ -fuzztime $(FUZZ_TIME) ./core/image/
	$(GO) test -run XXX -fuzz ^FuzzPIDFile$$ -fuzztime $(FUZZ_TIME) ./core/proc/
	$(GO) test -run XXX -fuzz ^FuzzKnownHostsLine$$ -fuzztime $(FUZZ_TIME) ./core/sshx/
	$(GO) test -run XXX -fuzz ^FuzzContextsFile$$ -fuzztime $(FUZZ_TIME) ./core/remote/
	$(GO) test -run XXX -fuzz ^FuzzRecord$$ -fuzztime $(FUZZ_TIME) ./core/driver/libvirt/
	$(GO) test -run XXX -fuzz ^FuzzStartReport$$ -fuzztime $(FUZZ_TIME) ./core/daemon/

# The vz backend on a Mac (macOS 13+): builds and signs bin/fvm.app, boots a
# Debian VM on vz and checks it end to end (scripts/e2e-vz.sh). Elsewhere it
# skips with the reason.
e2e-vz:
	MAKE=$(MAKE) ./scripts/e2e-vz.sh

# The host app: bin/fvm-app (tray, Linux) or bin/fvm.app (signed menu-bar bundle, macOS).
app:
	VERSION=$(VERSION) ./scripts/build-app.sh build

install:
	VERSION=$(VERSION) ./scripts/build-app.sh install

# Drives the tray's exported D-Bus menu under Xvfb.
app-e2e: app build
	FVM_APP_E2E=1 FVM_APP_BIN=$(CURDIR)/bin/fvm-app $(GO) test -count=1 -v ./app/e2e/

# Release files in $(RELEASE_OUT) (scripts/release): the CLI for darwin and
# linux, arm64 and amd64, as reproducible .tar.gz archives; the source archive
# the Homebrew formula builds; on a Mac fvm.app for both architectures, signed
# and zipped for the cask; SHA256SUMS; the formula and the cask (resources/homebrew)
# rendered with those sums. Then it checks them: the sums, `fvm version` from
# this host's archive, the sums inside the formula and cask, ruby -c of both.
RELEASE_OUT ?= dist
release:
	$(GO) run ./scripts/release -out $(RELEASE_OUT) -version $(VERSION)

# make release into a temporary directory, for make test.
release-check:
	@tmp=$$(mktemp -d /tmp/fvm-release.XXXXXX) && trap 'rm -rf "$$tmp"' EXIT && \
		$(GO) run ./scripts/release -out "$$tmp" -version $(VERSION)

clean:
	rm -rf bin dist
