# tapswitch. Targets: build, test, unit, bench, bench-ab, bench-parts, bench-docker, bench-cluster, profile, demo, fuzz, soak, etcd, install, uninstall, clean.

GO      ?= go
BIN     := bin
PREFIX  ?= /usr/local
# Where install puts the CNI plugin; podman, containerd and CRI-O look in
# /opt/cni/bin, Debian's podman in /usr/lib/cni, which gets a link.
CNI_BIN ?= /opt/cni/bin
# Extra flags for the benchmark program, e.g. make bench ARGS="-t 10".
ARGS    ?=
# Go test flags; CI adds nothing, a developer may add -run or -v.
TESTFLAGS ?=
FUZZTIME  ?= 10s

# Tools the tests, the demo and the benchmark run, with the Debian
# package that provides each.
TOOLS := ip:iproute2 ping:iputils-ping iperf3:iperf3 sockperf:sockperf ethtool:ethtool useradd:passwd podman:podman runc:runc /usr/lib/cni/portmap:containernetworking-plugins busybox:busybox-static iptables:iptables nft:nftables prometheus:prometheus tmux:tmux systemd-analyze:systemd tshark:tshark /usr/include/pcap.h:libpcap-dev /usr/sbin/dockerd:docker.io

.PHONY: all build test unit bench profile demo fuzz soak deps etcd install clean

# ETCD_VERSION is the etcd server the cluster tests run, the release of
# the client in go.mod. Debian's etcd-server (3.4) is older than the
# client and its package starts a system etcd on install.
ETCD_VERSION := v3.6.17

all: build

# tapswitchd compiles capture filters with libpcap (cgo, libpcap-dev);
# without its header the daemon is built without cgo and refuses filters.
NOPCAP := $(if $(wildcard /usr/include/pcap.h),,CGO_ENABLED=0)

build:
	@[ -z "$(NOPCAP)" ] || echo "note: libpcap-dev is not installed; tapswitchd is built without capture filters (make deps, as root, installs it)" >&2
	$(NOPCAP) $(GO) build -o $(BIN)/ ./cmd/tapswitchd ./cmd/tapswitch ./cmd/tapswitch-cni

# deps installs missing tools with apt-get when run as root on Debian or
# Ubuntu, and otherwise names the packages to install.
deps:
	@missing=""; for tp in $(TOOLS); do t=$${tp%%:*}; p=$${tp#*:}; \
		command -v $$t >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	else \
		echo "missing tools; install these packages (as root):$$missing" >&2; exit 1; \
	fi

# test runs every test: unit tests, then the integration tests, which
# need root (they skip without it unless TAPSWITCH_REQUIRE_PRIVILEGED=1).
test:
	@$(MAKE) --no-print-directory deps || { [ "$$(id -u)" != 0 ] && \
		echo "continuing without them: the integration tests need root and skip without it"; }
	@command -v cnitool >/dev/null || [ -x "$$($(GO) env GOPATH)/bin/cnitool" ] || \
		$(GO) install github.com/containernetworking/cni/cnitool@v1.3.1
	@$(MAKE) --no-print-directory etcd
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m $(TESTFLAGS) ./...

# etcd builds the etcd server the cluster tests run into GOBIN (or
# GOPATH/bin) unless that release is there or on PATH. The server's module cannot be built
# with go install (its go.mod has replace directives), so it is built
# from a throwaway module that requires it.
etcd:
	@bin="$$($(GO) env GOBIN)"; bin="$${bin:-$$($(GO) env GOPATH | cut -d: -f1)/bin}"; \
	for e in "$$bin/etcd" "$$(command -v etcd)"; do \
		[ -x "$$e" ] && "$$e" --version 2>/dev/null | grep -q "^etcd Version: $(ETCD_VERSION:v%=%)$$" && exit 0; done; \
	echo "building etcd $(ETCD_VERSION) into $$bin"; \
	tmp=$$(mktemp -d) || exit 1; trap 'rm -rf $$tmp' EXIT; \
	(cd $$tmp && $(GO) mod init tapswitch-etcd >/dev/null 2>&1 && \
		$(GO) get go.etcd.io/etcd/server/v3@$(ETCD_VERSION) >/dev/null 2>&1 && \
		$(GO) build -o "$$bin/etcd" go.etcd.io/etcd/server/v3)

# unit runs the tests that need no privileges or tools.
unit:
	$(GO) test -race -count=1 $(TESTFLAGS) $$($(GO) list ./... | grep -v /internal/e2e)

# bench compares tapswitch with the Linux bridge (and Open vSwitch when
# installed) in one run, then measures scale (attach/detach time, memory,
# many ports, several pairs) and runs the Go benchmarks of the hot path.
# Results go to bench/results/ as JSON, one file per run.
bench: deps build
	$(GO) run ./bench -bracket -tapswitchd $(BIN)/tapswitchd -tapswitch $(BIN)/tapswitch $(ARGS)
	$(GO) run ./bench -scale -tapswitchd $(BIN)/tapswitchd -tapswitch $(BIN)/tapswitch $(ARGS)
	$(GO) test -run '^$$' -bench . -benchmem -cpu 1,2 ./fdb ./switch ./segment

# bench-ab runs the comparison with two builds of tapswitch, passes
# interleaved, and adds new/base per test next to the bridge's drift:
# BASE, a git revision, against this tree or against NEW, another one.
# Revisions are built in a temporary clone sharing this repository's
# objects (a worktree would do, but Go stamps no revision there), so
# the work tree and bin/ are left alone. E.g.
#   make bench-ab BASE=HEAD ARGS="-t 10"; make bench-ab BASE=main NEW=dataplane
.PHONY: bench-ab
bench-ab: $(if $(BASE),deps)
	@test -n "$(BASE)" || { echo "usage: make bench-ab BASE=<revision> [NEW=<revision>] [ARGS=...]" >&2; exit 2; }
	@tmp=$$(mktemp -d /tmp/tapswitch-ab.XXXXXX) || exit 1; trap 'rm -rf $$tmp' EXIT; trap 'exit 130' INT TERM; \
	build() { src=.; if [ -n "$$2" ]; then src=$$tmp/$$1-src; \
		rev=$$(git rev-parse --verify -q "$$2^{commit}") || { echo "bench-ab: $$2 names no commit" >&2; return 1; }; \
		git clone -q --shared --no-checkout . $$src && git -C $$src checkout -q --detach $$rev || return 1; fi; \
		(cd $$src && $(GO) build -buildvcs=auto -o $$tmp/$$1/ ./cmd/tapswitchd ./cmd/tapswitch); }; \
	build base "$(BASE)" && build new "$(NEW)" && \
	$(GO) run ./bench -tapswitchd $$tmp/new/tapswitchd -tapswitch $$tmp/new/tapswitch \
		-base-tapswitchd $$tmp/base/tapswitchd -base-tapswitch $$tmp/base/tapswitch $(ARGS)

# bench-parts runs the comparison with tapswitch in one variant per
# part of the dataplane, passes mirrored between the bridge's two, and
# holds each against the first: before (one frame at a time, no
# coalescing, no polling), +batch, +coalesce, +poll (adaptive busy
# polling on top: the defaults), and +napi (IFF_NAPI TAPs on top of the
# defaults) when the daemon has --tap-napi. With ARGS="-profile -rows
# udp64", the perf profile of 64 B UDP by kind of work, for every variant.
PARTS := -variant 'before=--batch 1 --coalesce=false --busy-poll off' \
	-variant '+batch=--coalesce=false --busy-poll off' \
	-variant '+coalesce=--busy-poll off' \
	-variant '+poll='
.PHONY: bench-parts
bench-parts: TOOLS += $(if $(findstring -profile,$(ARGS)),perf:linux-perf)
bench-parts: deps build
	@napi=; if $(BIN)/tapswitchd --help 2>&1 | grep -q -- '--tap-napi'; then napi="-variant +napi=--tap-napi"; fi; \
	echo "$(GO) run ./bench -tapswitchd $(BIN)/tapswitchd -tapswitch $(BIN)/tapswitch $(PARTS) $$napi $(ARGS)"; \
	$(GO) run ./bench -tapswitchd $(BIN)/tapswitchd -tapswitch $(BIN)/tapswitch $(PARTS) $$napi $(ARGS)

# bench-docker compares two Docker containers on a network of Docker's
# bridge driver with two on a tapswitch network, of one private dockerd
# the run starts and removes (its own data root and socket; the host's
# dockerd, firewall and bridges are left alone), passes interleaved.
# Needs Debian's docker.io and busybox-static (the image is imported
# from it; no registry). E.g. make bench-docker ARGS="-t 10 -rounds 3"
.PHONY: bench-docker
bench-docker: TOOLS += /usr/bin/docker:docker.io dockerd:docker.io nsenter:util-linux
bench-docker: deps build
	$(GO) run ./bench -docker -tapswitchd $(BIN)/tapswitchd -tapswitch $(BIN)/tapswitch $(ARGS)

# bench-cluster compares the paths between two containers on two hosts
# across VXLAN, in one run: a host is a network namespace on an underlay
# bridge, a container a namespace behind it. The kernel's vxlan device
# and bridge are the yardstick; then tapswitchd on each host, the hosts
# a cluster on one etcd (started on the underlay for each pass, hence
# the etcd prerequisite) with a --scope cluster network made once, and
# Open vSwitch's userspace datapath with a vxlan port when installed.
# Passes bridge, tapswitch, [ovs,] tapswitch, bridge; rows TCP 1 and 4
# streams and UDP 64 B unless ARGS has -rows. ARGS="-cluster-static"
# adds "tapswitch static", the daemons with --vxlan-peer and no store.
# E.g. make bench-cluster ARGS="-t 5"
.PHONY: bench-cluster
bench-cluster: deps build etcd
	$(GO) run ./bench -cluster -tapswitchd $(BIN)/tapswitchd -tapswitch $(BIN)/tapswitch $(ARGS)

# profile runs the comparison with a system-wide perf profile of each
# throughput test and adds where the CPU went by kind of work (copy,
# scheduling, allocation, ...); the perf data goes beside the JSON.
# Its deps also install perf (Debian's linux-perf; on Ubuntu install
# linux-tools-generic first).
profile: TOOLS += perf:linux-perf
profile: deps build
	$(GO) run ./bench -profile -tapswitchd $(BIN)/tapswitchd -tapswitch $(BIN)/tapswitch $(ARGS)

# demo starts a daemon, attaches two namespaces and runs iperf3 through
# tapswitch and through a kernel bridge, then cleans up.
demo: deps build
	$(GO) run ./bench -demo -tapswitchd $(BIN)/tapswitchd -tapswitch $(BIN)/tapswitch

# fuzz runs every fuzz target for FUZZTIME each: a duration (10s) or a
# count of executions (50000x, which CI uses). Targets are found in
# the sources, so no test binary (nor the integration tests' set-up) runs
# just to list them.
fuzz:
	@grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u | while read -r dir; do \
		for f in $$(grep -h '^func Fuzz' $$dir/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
			echo "fuzz $$dir $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$dir || exit 1; \
		done; done

# soak runs the fault tests at full size: 1,000 attach/detach cycles
# under traffic, and the restart tests with longer transfers.
soak:
	@$(MAKE) --no-print-directory deps
	TAPSWITCH_SOAK=1 $(GO) test -race -count=1 -timeout 90m -v -run 'Churn|Restart|MACFlood|Fairness' ./internal/e2e

# install puts the binaries, the systemd unit, the shell completions and
# the manual pages under PREFIX (staged under DESTDIR when set), with the
# unit's ExecStart= naming the installed tapswitchd. systemd reads units
# in /usr/local/lib/systemd/system and /usr/lib/systemd/system; for
# another PREFIX, set UNITDIR=/etc/systemd/system. The completion and man
# directories are those bash-completion, zsh, fish and man search under
# /usr/local/share and /usr/share.
DESTDIR     ?=
BINDIR      ?= $(PREFIX)/bin
UNITDIR     ?= $(PREFIX)/lib/systemd/system
MANDIR      ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
PROGRAMS    := tapswitchd tapswitch

.PHONY: uninstall
install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(CNI_BIN) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 0755 $(addprefix $(BIN)/,$(PROGRAMS)) $(DESTDIR)$(BINDIR)/
	install -m 0755 $(BIN)/tapswitch-cni $(DESTDIR)$(CNI_BIN)/
	if [ -d $(DESTDIR)/usr/lib/cni ] && [ "$$(realpath -m $(DESTDIR)$(CNI_BIN))" != "$$(realpath -m $(DESTDIR)/usr/lib/cni)" ]; then \
		ln -sf $$(realpath -m $(CNI_BIN))/tapswitch-cni $(DESTDIR)/usr/lib/cni/tapswitch-cni; fi
	sed 's|/usr/local/bin/tapswitchd|$(BINDIR)/tapswitchd|' contrib/tapswitchd.service >$(DESTDIR)$(UNITDIR)/tapswitchd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/tapswitchd.service
	@set -e; for p in $(PROGRAMS); do \
		echo "completions and manual pages of $$p"; \
		$(BIN)/$$p completion bash >$(DESTDIR)$(BASHCOMPDIR)/$$p; \
		$(BIN)/$$p completion zsh >$(DESTDIR)$(ZSHCOMPDIR)/_$$p; \
		$(BIN)/$$p completion fish >$(DESTDIR)$(FISHCOMPDIR)/$$p.fish; \
		chmod 0644 $(DESTDIR)$(BASHCOMPDIR)/$$p $(DESTDIR)$(ZSHCOMPDIR)/_$$p $(DESTDIR)$(FISHCOMPDIR)/$$p.fish; \
		$(BIN)/$$p gen-man $(DESTDIR)$(MANDIR)/man8; done
	@[ -n "$(DESTDIR)" ] || echo "to run it as a service: systemctl daemon-reload && systemctl enable --now tapswitchd"

# uninstall removes what install put, the manual pages by the names the
# binaries give them; under DESTDIR it also removes the directories
# install writes into, and their parents, where they are left empty.
# Nothing else is touched: other empty directories stay.
uninstall: build
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(PROGRAMS)) $(DESTDIR)$(CNI_BIN)/tapswitch-cni \
		$(DESTDIR)$(UNITDIR)/tapswitchd.service
	if [ -L $(DESTDIR)/usr/lib/cni/tapswitch-cni ] && \
		[ "$$(readlink $(DESTDIR)/usr/lib/cni/tapswitch-cni)" = "$$(realpath -m $(CNI_BIN))/tapswitch-cni" ]; then \
		rm -f $(DESTDIR)/usr/lib/cni/tapswitch-cni; fi
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; for p in $(PROGRAMS); do \
		rm -f $(DESTDIR)$(BASHCOMPDIR)/$$p $(DESTDIR)$(ZSHCOMPDIR)/_$$p $(DESTDIR)$(FISHCOMPDIR)/$$p.fish; \
		$(BIN)/$$p gen-man $$tmp; done; \
	for f in $$tmp/*.8; do rm -f $(DESTDIR)$(MANDIR)/man8/$${f##*/}; done
	@if [ -n "$(DESTDIR)" ]; then for d in $(BINDIR) $(CNI_BIN) $(UNITDIR) $(MANDIR)/man8 $(BASHCOMPDIR) $(ZSHCOMPDIR) $(FISHCOMPDIR); do \
		while [ -n "$$d" ] && [ "$$d" != / ] && [ "$$d" != . ] && rmdir "$(DESTDIR)$$d" 2>/dev/null; do d=$$(dirname "$$d"); done; done; \
	elif [ -e /etc/systemd/system/multi-user.target.wants/tapswitchd.service ] || \
		[ -L /etc/systemd/system/multi-user.target.wants/tapswitchd.service ]; then \
		echo "tapswitchd is still enabled: systemctl disable --now tapswitchd" >&2; fi

clean:
	rm -rf $(BIN)
