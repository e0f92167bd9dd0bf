# tinderbox: `make help` lists the targets.
SHELL := bash
.DEFAULT_GOAL := help

GO          ?= go
BIN         ?= bin/tinderbox
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT      ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS     := -s -w -X github.com/tinderbox-boot/tinderbox/internal/version.Version=$(VERSION) \
               -X github.com/tinderbox-boot/tinderbox/internal/version.Commit=$(COMMIT)
# staticcheck is pinned: a new release may add checks that fail the build.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
RUN_CONFIG  ?= deploy/dev/tinderbox.yaml
FUZZTIME    ?= 20s
# Packages whose tests once flaked under load: `make test` runs them twice
# (-count=2) to catch a flake before it lands, and the rest once.
TWICE       := internal/tftp internal/profiles
# Every native fuzz test, as package:Target.
FUZZ        := internal/proxydhcp:FuzzDecide internal/tftp:FuzzRequest internal/render:FuzzMerge internal/render:FuzzRenderDocuments \
               internal/cache:FuzzNewKey internal/factory:FuzzNormalizeVersion internal/config:FuzzParseByteSize \
               pkg/machine:FuzzParseMAC pkg/machine:FuzzParseUUID internal/boot:FuzzNetbootScript \
               internal/talosevents:FuzzDecodeRequest internal/kmsglog:FuzzParse internal/secrets:FuzzParse

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build bin/tinderbox with version and commit stamped in
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/tinderbox

.PHONY: run
run: ## serve the example profiles in profiles/ (installs iPXE if missing; asks for sudo for ports 67/69)
	scripts/deps.sh run
	$(MAKE) build
	IFACE="$(IFACE)" scripts/run.sh $(BIN) $(RUN_CONFIG)

.PHONY: demo
demo: ## PXE-boot a QEMU VM through tinderbox in network namespaces, its web UI live on this host (root; Ctrl-C ends it)
	scripts/deps.sh e2e
	scripts/demo.sh

.PHONY: demo-test
demo-test: ## make demo watched in headless Chromium: the VM's machine at pending, installing, installed, ready (screenshots in .run/demo-screenshots; root)
	scripts/deps.sh e2e
	TINDERBOX_DEMO_TEST=1 $(GO) test -count=1 -v -run '^TestDemoBrowser$$' ./cmd/tinderbox

.PHONY: man
man: build ## man pages for every command into bin/man/ (generated from the commands, not committed)
	rm -rf bin/man
	$(BIN) docs man bin/man

.PHONY: test
test: ## unit and integration tests with the race detector (TWICE packages twice), then go vet and staticcheck
	scripts/deps.sh test
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v $(foreach p,$(TWICE),-e '/$(p)$$'))
	$(GO) test -race -count=2 $(addprefix ./,$(TWICE))
	$(MAKE) lint

.PHONY: lint
lint: ## gofmt, go vet (Linux, and darwin for portability) and staticcheck (pinned)
	@unformatted="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt -w these files:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	# darwin: a developer's laptop builds and vets; Windows is no target
	# (renameio's atomic writes are POSIX-only).
	GOOS=darwin $(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

.PHONY: chaos
chaos: ## kill -9 tinderbox 20 times during a loopback boot storm; check state, restores and served bodies after each restart (about a minute)
	scripts/chaos.sh

.PHONY: e2e
e2e: ## real firmware (QEMU SeaBIOS+iPXE and OVMF) PXE-boots a kernel through tinderbox in network namespaces, then make demo in headless Chromium (root)
	scripts/deps.sh e2e
	scripts/e2e-dhcp.sh
	scripts/e2e/boot.sh
	$(MAKE) demo-test
	$(MAKE) ui-screenshots

.PHONY: fuzz
fuzz: ## run every fuzz test for FUZZTIME (default 20s) each
	@set -e; for f in $(FUZZ); do \
		echo "fuzz: $${f%%:*} $${f##*:}"; \
		$(GO) test -run '^$$' -fuzz "^$${f##*:}$$" -fuzztime $(FUZZTIME) ./$${f%%:*}; \
	done

.PHONY: bench
bench: ## Go benchmarks with allocations, the 500-node Talos report storm, then the bench scripts: profile scale, TFTP (vs dnsmasq), proxyDHCP (vs dnsmasq), cache and boot HTTP (vs nginx), binding (on vs off), the 5000-node boot storm on bolt and on two replicas over a three-member etcd (root)
	$(GO) test -run '^$$' -bench . -benchmem ./internal/... ./pkg/...
	$(GO) test -run '^$$' -bench BenchmarkReports500 -benchtime 1x ./cmd/tinderbox
	scripts/bench-scale.sh
	scripts/bench-tftp.sh
	scripts/bench-dhcp.sh
	scripts/bench-cache.sh
	scripts/bench-http.sh
	scripts/bench-binding.sh
	scripts/bench-storm.sh

.PHONY: bench-boot
bench-boot: ## boot stages of QEMU VMs (SeaBIOS, or FIRMWARE=ovmf for UEFI, TCG) to config fetched, through tinderbox and through dnsmasq + nginx, paired rounds (root; minutes, not part of bench or CI)
	scripts/bench-boot.sh

.PHONY: capture-dhcp
capture-dhcp: ## re-record the DHCP packets of real firmware for the golden tests (root)
	scripts/capture-dhcp.sh

# The architectures make package and make image build for.
ARCHES      ?= amd64 arm64

.PHONY: cross
cross: ## cross-compile static binaries for ARCHES (default amd64 arm64) into bin/linux-ARCH/tinderbox
	@set -e; for a in $(ARCHES); do \
		echo "CGO_ENABLED=0 GOOS=linux GOARCH=$$a $(GO) build -o bin/linux-$$a/tinderbox"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$a $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/linux-$$a/tinderbox ./cmd/tinderbox; \
	done

.PHONY: package
package: cross ## build a .deb per ARCHES (nfpm, pinned) into bin/: binary, systemd unit, default config, example profiles, man pages, arm64 iPXE
	VERSION=$(VERSION) COMMIT=$(COMMIT) scripts/package.sh $(foreach a,$(ARCHES),bin/linux-$(a)/tinderbox)

.PHONY: image
image: cross ## build the multi-arch OCI image (ARCHES) with buildah (no daemon): manifest list tinderbox:VERSION, bin/tinderbox-image.tar
	VERSION=$(VERSION) scripts/image.sh $(foreach a,$(ARCHES),bin/linux-$(a)/tinderbox)

.PHONY: deploy-check
deploy-check: cross ## .debs (lintian; amd64 in a scratch Debian booted with systemd-nspawn), the multi-arch image (arm64 under qemu-user), the Containerfile; manifest and dashboard tests (root)
	scripts/deps.sh deploy
	VERSION=$(VERSION) COMMIT=$(COMMIT) scripts/deploy-check.sh all
	$(GO) test -count=1 ./deploy/...

.PHONY: firstscreen
firstscreen: ## README's first screen as written in a fresh Debian 12 root (debootstrap): its set-up line, then make run answers /readyz (root)
	scripts/firstscreen-check.sh

.PHONY: ui-screenshots
ui-screenshots: ## screenshots of every web UI page, desktop and phone, into results/ui/ (needs chromium)
	scripts/ui-screenshots.sh results/ui
