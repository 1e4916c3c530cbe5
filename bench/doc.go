// Command bench measures tapswitch side by side with the Linux bridge,
// and with Open vSwitch when it is installed, in one run on one machine.
//
// Numbers from different runs are not comparable: on small VMs the same
// setup varies by tens of percent from one pass to the next. What bench
// reports is each system's figures from the same run and their ratio to
// the kernel bridge's.
//
// # What it measures
//
// Each system joins two fresh network namespaces, eth0 10.90.0.1/24 in one
// and 10.90.0.2/24 in the other:
//
//   - bridge: a kernel bridge and two veth pairs, as docker0 does it.
//   - tapswitch: a private tapswitchd (temporary socket and state
//     directory) and `tapswitch attach` for each namespace.
//   - ovs: Open vSwitch's userspace datapath with userspace TSO and tap
//     ports, run from a temporary directory so a system Open vSwitch is
//     left alone. Skipped, with a note, unless openvswitch-switch is
//     installed.
//
// On each, in this order, with a pause between tests (-rows names the
// tests to run, by the name in brackets; all by default):
//
//   - TCP 1 stream and TCP 4 streams (tcp1, tcp4): iperf3 throughput as
//     received.
//   - TCP 1 stream, sender TSO/GSO off (tcp1-notso): the same with
//     `ethtool -K eth0 tso off gso off` in the sender's namespace (the
//     veth's end for the bridge, the TAP for tapswitch and Open
//     vSwitch), checked with `ethtool -k` before the client starts and
//     turned back on, and checked, after it; a switch gets one frame per
//     segment, as from a sender behind an MSS-limited path. Skipped,
//     with a note, without ethtool.
//   - UDP 64 B delivered (udp64): iperf3 with 64-byte payloads and no
//     rate limit; packets per second that reached the server, not that
//     were sent. This is the per-frame cost, where offloads cannot help.
//   - UDP 64 B, 8 flows (udp64x8): the same from 8 parallel flows
//     (iperf3 -P 8), summed, which spread over queues and workers.
//   - UDP 1400 B delivered (udp1400): 1400-byte payloads, no rate limit;
//     packets per second and payload bit/s that reached the server, two
//     rows of one run.
//   - UDP RTT avg and p99 (rtt): sockperf ping-pong round trips, one
//     message in flight.
//   - UDP RTT avg and p99 under load (rtt-loaded): the same while iperf3
//     sends 64-byte datagrams at 20,000 a second between the same two
//     namespaces, on ports of its own, starting a second before sockperf
//     and ending a second after: a request/response exchange that shares
//     the path with a neighbour's traffic that does not fill it (a
//     seventh of the bridge's 64 B rate on a 2-CPU VM), in the bursts
//     iperf3's 1 ms pacing makes. The detail of the avg row has what the
//     load delivered (load_offered_pps, load_delivered_pps,
//     load_lost_percent), and a note says when it fell short on a
//     system. The CPU table counts the load's iperf3 among others.
//     Both RTT tests are skipped, with a note, without sockperf.
//
// The table has one column per system, a ratio to the bridge per system
// and, when Open vSwitch ran, a ratio to Open vSwitch per tapswitch
// system; on latency rows lower is better and the ratio says so.
// -bracket runs the bridge again at the end and divides by the mean of
// both bridge passes, and the report warns when they differ by more
// than 20%.
//
// # Variants
//
// -variant NAME=ARGS, repeatable, adds the system "tapswitch NAME": the
// same tapswitchd (-tapswitchd) started with the extra flags ARGS (split
// at spaces; empty for its defaults). Variants take the place of the
// plain tapswitch system. Their flags are checked against the daemon's
// --help before anything is set up. Like an A/B run's builds, the
// variants run mirrored between the two bridge passes (variants imply
// -bracket): bridge, v1, ..., vn, [ovs,] vn, ..., v1, bridge, so each
// has two passes whose mean cancels a drift linear in time. The main
// table and the chart show each variant's mean with its ratios to the
// bridge and to Open vSwitch; a further table holds every variant
// against the first, test by test, judged like A/B's new against base:
// variant/first, the bridge's drift, the two variants' repeat spread,
// others and a verdict. The JSON has them under "variants". With
// -profile, every variant's pass is profiled like any system's, so the
// profile table shows, for example, UDP 64 B by kind of work for each
// variant:
//
//	sudo make bench-parts ARGS="-profile -rows udp64"
//
// make bench-parts runs the dataplane's parts this way: before
// (--batch 1 --coalesce=false --busy-poll off), +batch (--coalesce=false
// --busy-poll off), +coalesce (--busy-poll off), +poll (the defaults:
// adaptive polling), and +napi (--tap-napi) when the daemon has that flag.
//
// # A/B of two builds
//
// -base-tapswitchd and -base-tapswitch (make bench-ab BASE=<revision>)
// add tapswitch-base, the same tests on another build of tapswitch, to
// show whether a change made any row worse. The two builds run in the
// same session, interleaved as base, new, ..., new, base (ABBA) between
// the two bridge passes (A/B implies -bracket): bridge, tapswitch-base,
// tapswitch, [ovs,] tapswitch, tapswitch-base, bridge. A drift of the
// machine that is linear in time thus cancels out of the mean of each
// build's two passes, and neither build always runs first or last. Each
// pass starts its own daemon, with its own socket, state directory and
// namespaces, and removes them afterwards, as every pass does.
//
// The main table shows each build's mean and its ratio to the bridge. A
// second table shows each build's passes; new/base, the mean of new's
// over the mean of base's; the bridge's drift, its two passes, the
// larger over the smaller, minus 1 (the -bracket figure); the repeat
// spread, the same for each build's own two passes, the larger of the
// two, since two bridge passes can agree by chance; and others, the most
// CPU other processes took in a pass of either build. A row where new is
// worse than base (the larger mean over the smaller, minus 1) by more
// than the larger of drift and spread reads WORSE beyond drift; within
// it, the difference is no evidence of a change. Where others took over
// 10% of a CPU the table says so: a neighbour's burst lowers whichever
// pass it lands on, which interleaving cannot cancel. The JSON has the
// comparison under "ab", with each build's binaries and the git revision
// stamped in them.
//
// # Where the CPU went
//
// A second table splits the machine's CPU time in each test, read from
// /proc over the middle of the client's run (a second, or a fifth of a
// short run, left out at each end): the client (sender) and the server
// (receiver), the switch's own process (tapswitchd, ovs-vswitchd; none
// for the bridge, which forwards in softirq context), the machine's
// irq+softirq time, every other user process together (others), idle
// time, steal when there is any, and busy: all but idle, iowait and
// steal. Shares are percent of one CPU, so two CPUs make 200%: the
// processes' of the wall time, the machine's of the ticks /proc/stat
// counted, which a VM under load undercounts. The last two columns divide
// CPU time by the traffic's rate, for the switch's process and for the
// whole busy machine: CPU-seconds per GB received (TCP), CPU-microseconds
// per frame the sender sent, dropped ones included (UDP; the JSON
// also has it per frame delivered), or per round trip (RTT). The busy figure is the one to compare across systems:
// it counts each path's cost wherever it runs, but also whatever else ran
// on the machine, which others shows. Unless the kernel accounts
// IRQ time apart (CONFIG_IRQ_TIME_ACCOUNTING), softirq time also counts in
// the process it interrupted, so the columns overlap; the table says so
// when the kernel's config shows it. The JSON has every figure in each
// test's detail, under keys starting with cpu_.
//
// # Where the CPU went by kind of work
//
// -profile (make profile) adds a third table. In every throughput test
// (all but the round trips), over the same window as the second table, perf
// samples every CPU (perf record -a -g -e cpu-clock -F 999), and perf
// report sorts the samples by command and function. The function
// decides the kind of work, the first of these whose pattern it matches:
//
//   - idle: the idle loop (default_idle, safe_halt, cpuidle, do_idle,
//     ...), and every sample of the idle task, swapper, whatever it ran.
//   - copy: copying data (copy_to_iter, copy_from_iter, copy_user,
//     rep_mov, memcpy, check_object_size, ...).
//   - wake+sched: waking tasks and switching between them (__schedule,
//     try_to_wake_up, enqueue_task, update_curr, ep_poll, __wake_up, ...).
//   - alloc: allocating and freeing memory and socket buffers
//     (kmem_cache, kmalloc, kfree, alloc_skb, skb_release, folio, ...).
//   - syscall: entering and leaving system calls (entry_SYSCALL,
//     do_syscall, __x64_sys, vfs_read, vfs_write, fdget, ...).
//   - tap: the TAP driver (tun_).
//   - stack+other: the rest of the kernel, the network stack mostly.
//   - user: every user-space function, in one.
//
// perfreport.go has the full patterns. Each kind is CPU time per unit of
// traffic, like the second table's busy per unit: milliseconds per GB
// received (TCP) or microseconds per frame delivered (UDP; per
// frame delivered, not sent as the second table has it), and busy is
// their sum. The CPU time is the kind's share of the samples times the
// time the samples stand for, perf's event count, over the window: not
// the share times the number of CPUs, since a VM may sample an idle CPU
// far less often than 999 times a second (prof_cpus shows how many CPUs'
// worth was sampled). The last columns split the busy samples by thread:
// iperf3 (both ends), the switch's own threads, and others, in percent
// of one CPU, with idle. The JSON has the figures under keys starting
// with prof_: prof_<kind>_ms_per_gb or prof_<kind>_us_per_delivered_frame
// for kind busy, copy, sched, alloc, syscall, tap, stack and user;
// prof_switch_copy_<unit>, the part of copy in the switch's own threads;
// prof_idle_pct, prof_comm_iperf3_pct, prof_comm_switch_pct,
// prof_comm_others_pct, prof_swapper_busy_pct (the idle task's work
// outside the idle loop, switching to and from idle and the interrupts
// it took, counted idle), prof_cpus and prof_window_s. The perf data stays
// beside the JSON, in bench/results/<UTC time>-perf/<system>-<metric
// key>.data (bridge-pass2-... for -bracket's second bridge pass,
// tapswitch-NAME-... for a variant), for
// perf report -i. perf record is stopped and waited for
// whenever a test fails or the run is interrupted. Without perf (Debian:
// apt-get install -y linux-perf) the run says so and goes on without
// profiles; a failure to profile or summarise leaves the figures out and
// never fails a test.
//
// The column switch copy is the part of copy in the switch's own threads:
// its reads and writes of frames from and to TAPs and sockets. Linux
// copies every byte a process reads or writes there (neither a TAP nor a
// UDP socket reads without a copy, and a page sent without one,
// MSG_ZEROCOPY, is copied anyway when it is delivered to a socket on the
// same machine), so a switch in user space cannot do without them, and
// the kernel's own path makes none. Under the table, "copy ceiling"
// turns that into a bound for each TCP test: if a switch's path cost the
// bridge's work per GB (both TCP stacks, iperf3's copies, the links) plus
// its own copies and nothing else, with every CPU busy, it would reach
// the machine's CPUs / (bridge busy + switch copy), and no more. Over the
// bridge's rate, a ceiling under 1x says the switch cannot reach the
// bridge on this machine, however little else it costs.
//
// # The scale suite
//
// -scale runs, instead of the comparison, what one daemon does with many
// namespaces, on 100 fresh namespaces and one private tapswitchd:
//
//   - attach and detach: each namespace attached (an address from
//     10.91.0.0/16), then detached, one API call at a time, each timed;
//     median, p90 and max against the stated 20 ms median. One CLI attach
//     is timed end to end, next to an API attach in the same state.
//   - memory: 64 ports attached, then broadcasts of EtherType 0x88b5
//     from 8191 random source MACs sent from one of them (AF_PACKET,
//     paced by the port's rx counter) until the table holds its limit;
//     the daemon's VmRSS and VmHWM against the stated 64 MiB.
//   - 4 pairs at once: four iperf3 TCP tests between eight namespaces,
//     all started together, summed, on the bridge and on tapswitch.
//   - a pair among many: TCP single stream between two namespaces with
//     only them attached, then with 64 attached and the table full;
//     their ratio against the stated 90%, and what an idle port was sent
//     meanwhile, which shows whether the pair's traffic was flooded.
//     -bracket measures the two-port case again afterwards and divides
//     by the mean of both.
//
// The targets are reported, met or missed, never asserted. Results go to
// the JSON's "scale" section.
//
// # Docker containers (-docker)
//
// -docker (make bench-docker) measures between two Docker containers
// instead of two bare namespaces: two on a network of Docker's own
// bridge driver (its Linux bridge named dbxbr0, 10.151.1.0/24) next to
// two on a tapswitch network (10.151.2.0/24), both networks of one
// dockerd, so the only difference is the network driver. The run starts
// that dockerd itself, private to the run (its own data root, exec root,
// pid file, API socket and containerd namespace, with --iptables=false
// --ip6tables=false --ip-forward=false --bridge=none: the host's dockerd,
// firewall, sysctls and bridges are left alone), imports an image of
// busybox-static alone with docker import (no registry is needed), and
// starts a tapswitchd of its own (own socket and state directory) with
// --docker --docker-plugin db-<random>, the plugin name being the run's
// own as /run/docker/plugins is shared by every dockerd. The containers
// only sleep: iperf3 and sockperf of the host run in their network
// namespaces (nsenter --net=/proc/PID/ns/net), the server in one and the
// client in the other.
//
// Before anything is measured, the tapswitch pair is checked to really
// cross tapswitch: eth0 in both containers is a TAP (it has tun_flags),
// and pings between them move both tapswitch ports' counters both ways;
// the bridge pair's eth0 are veths of dbxbr0. Rows are TCP 1 stream,
// TCP 4 streams and UDP RTT avg and p99, as above, in -rounds rounds (3
// by default) of bridge then tapswitch; the table shows each bridge pass,
// the mean of tapswitch's and its ratio to the mean of the bridge's, and
// after it tapswitch's ports with their counters. The notes say the
// containers' MTU and whether bridged frames pass iptables
// (br_netfilter), as they do on a Docker host by default. -only bridge
// measures the bridge half alone, with a tapswitchd built without the
// driver; when one half cannot be set up, the other is still measured
// and the run fails with the reason. At the end, on failure and on
// SIGINT or SIGTERM, everything is removed: containers, networks, image,
// tapswitchd and its plugin socket, dockerd (stopped by its pid) with
// whatever it left mounted under its directory, and the directory. A
// container's TAP found in the host's namespace once the container and
// tapswitchd are gone is deleted too, and reported as an error.
//
// # Across two hosts (-cluster)
//
// -cluster (make bench-cluster) measures between two containers on two
// hosts across a VXLAN overlay instead of two namespaces on one switch.
// A host is a network namespace (tsx-PID-h1, tsx-PID-h2) whose link ul0,
// MTU 1500, is a veth to a Linux bridge in a namespace of its own
// (tsx-PID-u), the underlay 10.233.0.0/24 (host 1 .1, host 2 .2); a
// container is a further namespace (tsx-PID-a on host 1, tsx-PID-b on
// host 2) with eth0 at 10.243.0.11/24 and 10.243.0.12/24 and the
// overlay's MTU, 1450. Where br_netfilter is loaded, its hooks are off
// in the underlay's and the hosts' namespaces (bridge-nf-call-iptables,
// -ip6tables, -arptables = 0, per namespace): the underlay stands for a
// network, and on the hosts only the kernel's path has bridges, which
// would otherwise pay for hooks the others never pass. The systems keep
// the names of the comparison,
// so the ratios, tables and chart read the same:
//
//   - bridge: the kernel's path, the yardstick: on each host a vxlan
//     device (VNI 4243, dstport 4789, local the host's underlay address,
//     nolearning, with a default fdb entry to the other host) and the
//     container's veth in one Linux bridge.
//   - tapswitch: a private tapswitchd on each host, run in the host's
//     namespace, the two a cluster as users run tapswitch between
//     tapswitch hosts: one etcd (a single member, its data directory
//     under a temporary directory) runs in the underlay's namespace,
//     listening only on a third underlay address, 10.233.0.10:2379,
//     on the underlay bridge; each daemon has --cluster
//     etcd=http://10.233.0.10:2379, --advertise (its underlay address)
//     and --cluster-host h1 or h2, and no --vxlan-peer. The network
//     tsxnet is created once, on host 1, with --scope cluster --vni 4243
//     --subnet 10.243.0.0/24; the pass waits until host 2 lists it,
//     attaches each container with an explicit --ip, and waits until
//     each host's `tapswitch peers` shows the other as a cluster host
//     with the other container's MAC published behind it (each wait
//     30 s at most, then the pass fails saying what was missing). etcd
//     is found as the cluster tests find it: -etcd, $TAPSWITCH_ETCD,
//     $GOBIN/etcd, $(go env GOPATH)/bin/etcd (where make etcd builds
//     it), PATH. Without one, tapswitch is skipped with a note saying
//     to run make etcd, or, named in -only, the run fails saying so;
//     make bench-cluster builds it first.
//   - tapswitch static (with -cluster-static): the daemons with
//     --advertise and --vxlan-peer of the other host and no store, as
//     toward a foreign VTEP such as a Linux vxlan device, and the network
//     created on each host. Its passes are mirrored with tapswitch's,
//     so the two compare in one run; the data path takes frames from
//     cluster hosts as known checksummed and a static peer's not.
//   - ovs: Open vSwitch's userspace datapath on each host, two
//     ovs-vswitchd (each in its host's namespace, with its own database
//     and run directory): the bridge brphy holds ul0 and the host's
//     underlay address, which userspace tunnelling sends through, and
//     brint the vxlan port to the other host (key 4243) and the
//     container's TAP. Userspace TSO stays off: Open vSwitch 3.1 does not
//     carry TCP super-frames into a tunnel (with it on, TCP stalls).
//
// The rows are TCP 1 stream, TCP 4 streams and UDP 64 B unless -rows
// names others; the clients run in container A. Passes are mirrored:
// bridge, tapswitch, [ovs,] tapswitch, bridge (-cluster implies
// -bracket), so tapswitch's mean and the kernel's are taken about the
// same middle of the run; -variant works as in the comparison. The CPU
// table's switch column sums both hosts' processes (tapswitchd,
// ovs-vswitchd); the peers of each tapswitchd, with the packets the
// tunnel carried, are in the JSON's listings; etcd's CPU counts among
// the others. Every pass makes its five namespaces afresh and removes
// them, with the daemons, etcd and its directory, at its end, on
// failure and on SIGINT or SIGTERM. Results go to
// bench/results/cluster-<UTC time>.json.
//
// # Running it
//
// As root, from the repository root, after building the binaries:
//
//	make build
//	sudo go run ./bench                      # all available systems, 5 s per test
//	sudo go run ./bench -only bridge,ovs -t 10 -bracket
//	sudo go run ./bench -demo                # TCP 1 stream only, 3 s, with ports and fdb
//	sudo go run ./bench -rows udp64,rtt-loaded -t 3
//	sudo go run ./bench -variant 'q1=--queues 1' -variant default= -only bridge,tapswitch
//	sudo go run ./bench -profile             # also where the CPU went by kind of work (perf)
//	sudo go run ./bench -scale               # the scale suite, about a minute
//	sudo go run ./bench -base-tapswitchd old/tapswitchd -base-tapswitch old/tapswitch
//	sudo make bench-ab BASE=main NEW=dataplane  # A/B of two revisions, built in a temporary clone
//	sudo make bench-docker                   # two Docker containers: Docker's bridge driver and tapswitch's
//	sudo go run ./bench -docker -only bridge -rounds 1
//	sudo make bench-cluster ARGS="-t 5"      # two hosts across VXLAN: the kernel's, tapswitch's and Open vSwitch's
//	sudo go run ./bench -cluster -only bridge,ovs -t 3
//	sudo go run ./bench -cluster -cluster-static -only bridge,tapswitch  # tapswitch on etcd and with static peers
//
// Needs ip (iproute2), iperf3 and ping; sockperf, ethtool,
// openvswitch-switch and, for -profile, linux-perf are optional; -docker also needs docker.io,
// busybox-static, nsenter (util-linux) and sockperf. Results also go to
// bench/results/<UTC time>.json (-json to choose the file): every raw
// value with its unit, the ratios, tool versions and the machine. -demo
// writes JSON only when -json is given. Beside the JSON, the same name
// with .svg is a chart of the comparison: a panel per row of the table,
// a bar per system from zero, labelled with its value and its ratio to
// the bridge; a bar that is the mean of several passes (the bridge's,
// with -bracket) has a mark across it for each. -chart FILE draws the
// chart of an earlier results file.
//
// While it runs, stderr gets a line as each test begins: which pass of
// which system, which test, the time spent and about how much is left
// (estimated from the tests done). Lines are appended, never redrawn,
// so a log or CI job reads as a terminal does.
//
// Everything bench creates carries its pid in its name (tsb-PID-a,
// tsb-PID-b, tsbPIDbr, tsb-PID-s042, ...) and is removed after each
// system, on failure, and on SIGINT or SIGTERM.
package main
