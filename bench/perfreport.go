package main

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// perf report has no machine-readable output that every version
// shares, so its --stdio table is read by the columns its header draws:
//
//	# Overhead  Command          Shared Object      Symbol
//	# ........  ...............  .................  ..........................
//	#
//	    96.64%  swapper          [kernel.kallsyms]  [k] pv_native_safe_halt
//	     0.10%  memfd:sealed-91  memfd:sealed-9117… [.] 0x00000000000c3055
//
// Each column is as wide as its widest entry, so a command, a shared
// object ("… (deleted)") or a C++ symbol may hold spaces and still sits
// exactly under its dots; columns added with -n or more sort keys are
// found by name. A line that does not fit the columns is split at runs
// of two or more spaces instead, the separator perf puts between them.

// A perfEntry is one line of the report: the share of the samples that
// hit one symbol in one command.
type perfEntry struct {
	percent float64
	comm    string
	dso     string
	// space is the letter perf puts in brackets before the symbol: 'k'
	// for the kernel, '.' for user space ('g', 'u' and 'H' for guests
	// and hypervisors, which a host profile does not have).
	space  byte
	symbol string
}

// A perfReport is what parsePerfReport reads.
type perfReport struct {
	// event is the event sampled, from "# Samples: 6K of event 'cpu-clock'".
	event string
	// eventCount is the "Event count (approx.)" of the header: for
	// cpu-clock, the nanoseconds of CPU time the samples stand for.
	eventCount float64
	entries    []perfEntry
	// skipped counts the lines that were not comments, blank or entries.
	skipped int
}

var errNoPerfEntries = errors.New("perf report: no samples")

// perfColumn is one column of the table, as its header draws it.
type perfColumn struct {
	name  string
	start int // byte offset in the line
}

// The columns the summary needs, by the names perf's header gives them.
const (
	perfColOverhead = "Overhead"
	perfColComm     = "Command"
	perfColDSO      = "Shared Object"
	perfColSymbol   = "Symbol"
)

// parsePerfReport reads the output of
//
//	perf report --no-children --sort comm,dso,sym --stdio -g none
//
// An error means no entry could be read; lines that cannot be are
// counted in skipped.
func parsePerfReport(data []byte) (perfReport, error) {
	var r perfReport
	var cols []perfColumn
	var prev string // the comment line before this one: the header, once the dots come
	for line := range strings.Lines(string(data)) {
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "#") {
			if v, ok := strings.CutPrefix(line, "# Event count (approx.):"); ok {
				if n, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && n > 0 && !math.IsInf(n, 0) {
					r.eventCount = n
				}
			}
			if _, ev, ok := strings.Cut(line, " of event '"); ok && strings.HasPrefix(line, "# Samples:") && r.event == "" {
				r.event = strings.TrimSuffix(ev, "'")
			}
			if c := perfColumns(prev, line); c != nil {
				cols = c
			}
			prev = line
			continue
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		e, ok := parsePerfLine(line, cols)
		if !ok {
			r.skipped++
			continue
		}
		r.entries = append(r.entries, e)
	}
	if len(r.entries) == 0 {
		return r, errNoPerfEntries
	}
	return r, nil
}

// perfColumns returns the columns that dots, a line of runs of dots
// under header, draws, or nil when dots is not such a line or lacks a
// column the summary needs.
func perfColumns(header, dots string) []perfColumn {
	if !strings.HasPrefix(header, "#") || !strings.Contains(dots, ".") || strings.Trim(dots, "#. ") != "" {
		return nil
	}
	var cols []perfColumn
	for i := 1; i < len(dots); i++ {
		if dots[i] == '.' && dots[i-1] != '.' {
			cols = append(cols, perfColumn{start: i})
		}
	}
	for i := range cols {
		end := len(header)
		if i+1 < len(cols) {
			end = min(end, cols[i+1].start)
		}
		if cols[i].start < end {
			cols[i].name = strings.TrimSpace(header[cols[i].start:end])
		}
	}
	for _, name := range []string{perfColOverhead, perfColComm, perfColDSO, perfColSymbol} {
		if perfColumnIndex(cols, name) < 0 {
			return nil
		}
	}
	return cols
}

func perfColumnIndex(cols []perfColumn, name string) int {
	for i, c := range cols {
		if c.name == name {
			return i
		}
	}
	return -1
}

// parsePerfLine reads one entry, by cols when the line fits them.
func parsePerfLine(line string, cols []perfColumn) (perfEntry, bool) {
	if f, ok := cutPerfColumns(line, cols); ok {
		if e, ok := perfEntryOf(f[perfColumnIndex(cols, perfColOverhead)], f[perfColumnIndex(cols, perfColComm)],
			f[perfColumnIndex(cols, perfColDSO)], f[perfColumnIndex(cols, perfColSymbol)]); ok {
			return e, true
		}
	}
	// Without columns: the overhead first, the symbol the first field
	// after it that starts like one, the command and the shared object
	// the two fields before the symbol.
	f := splitPerfFields(line)
	for i := 3; i < len(f); i++ {
		if _, _, ok := cutPerfSymbol(f[i]); ok {
			return perfEntryOf(f[0], f[i-2], f[i-1], f[i])
		}
	}
	return perfEntry{}, false
}

// cutPerfColumns cuts line at the columns' starts, each of which must
// follow a space: an entry wider than its column would have shifted
// the rest of the line.
func cutPerfColumns(line string, cols []perfColumn) ([]string, bool) {
	if len(cols) == 0 {
		return nil, false
	}
	f := make([]string, len(cols))
	from := 0
	for i := 1; i < len(cols); i++ {
		at := cols[i].start
		if at <= from || at > len(line) || line[at-1] != ' ' {
			return nil, false
		}
		f[i-1] = strings.TrimSpace(line[from:at])
		from = at
	}
	f[len(f)-1] = strings.TrimSpace(line[from:])
	return f, true
}

// splitPerfFields splits line at runs of two or more spaces.
func splitPerfFields(line string) []string {
	var f []string
	for _, s := range strings.Split(strings.TrimSpace(line), "  ") {
		if s = strings.TrimSpace(s); s != "" {
			f = append(f, s)
		}
	}
	return f
}

// perfEntryOf makes an entry of its fields as the report prints them.
func perfEntryOf(overhead, comm, dso, symbol string) (perfEntry, bool) {
	pct, ok := strings.CutSuffix(overhead, "%")
	if !ok {
		return perfEntry{}, false
	}
	p, err := strconv.ParseFloat(pct, 64)
	// ParseFloat takes "NaN" and "Inf"; perf prints neither.
	if err != nil || p < 0 || math.IsNaN(p) || math.IsInf(p, 0) {
		return perfEntry{}, false
	}
	space, sym, ok := cutPerfSymbol(symbol)
	if !ok || comm == "" {
		return perfEntry{}, false
	}
	return perfEntry{percent: p, comm: comm, dso: dso, space: space, symbol: sym}, true
}

// cutPerfSymbol splits "[k] name" into 'k' and "name". The name ends at
// two spaces, where a column the header did not name would start: a
// demangled C++ name has single spaces only.
func cutPerfSymbol(s string) (space byte, name string, ok bool) {
	if len(s) < 5 || s[0] != '[' || s[2] != ']' || s[3] != ' ' {
		return 0, "", false
	}
	name, _, _ = strings.Cut(s[4:], "  ")
	name = strings.TrimSpace(name)
	return s[1], name, name != ""
}

func (e perfEntry) String() string {
	return fmt.Sprintf("%.2f%% %s %s [%c] %s", e.percent, e.comm, e.dso, e.space, e.symbol)
}

// A perfKind is a kind of work, told by the symbol a sample hit.
type perfKind struct {
	// key names the Detail keys, prof_<key>_<unit>.
	key string
	// title heads the table's column.
	title string
	// parts are what a kernel symbol of the kind contains; the first
	// kind with a match wins.
	parts []string
}

// Keys of the kinds that are not told by kernel symbols.
const (
	kindIdle  = "idle"
	kindStack = "stack"
	kindUser  = "user"
)

// kindCopy is the key of the kernel's copies, whose part in the
// switch's threads the profile also tells apart (prof_switch_copy_*).
const kindCopy = "copy"

// perfKinds are the kernel's kinds of work, in the order a symbol is
// matched. The patterns are deliberately loose (sched matches anything
// of the scheduler's): a sample is told by the function it hit, not by
// who called it, so the copy of a frame into a socket counts as copy
// whether the TAP, veth or TCP asked for it.
var perfKinds = []perfKind{
	{kindIdle, "idle", []string{"default_idle", "safe_halt", "cpuidle", "do_idle", "acpi_idle", "intel_idle",
		"poll_idle", "haltpoll", "mwait", "cpu_idle"}},
	{kindCopy, "copy", []string{"copy_to_iter", "copy_from_iter", "copy_user", "rep_mov", "memcpy", "memmove",
		"check_object_size", "simple_copy", "copy_page", "virt_addr_valid"}},
	{"sched", "wake+sched", []string{"finish_task_switch", "__schedule", "schedule", "pick_", "update_curr",
		"enqueue", "dequeue", "try_to_wake", "select_task", "sched", "_raw_spin_unlock_irq", "ttwu", "switch_to",
		"__switch", "set_next", "put_prev", "update_load", "psi_", "hrtick", "ep_poll", "__wake_up", "autoremove"}},
	{"alloc", "alloc", []string{"kmem_cache", "kmalloc", "kfree", "alloc_pages", "free_pages", "free_frozen",
		"__free", "skb_release", "page_frag", "build_skb", "alloc_skb", "skb_free", "rmqueue", "free_unref",
		"get_page", "put_page", "folio", "slab", "skb_attempt_defer", "napi_skb_cache", "memcg", "refill_stock",
		"obj_cgroup", "consume_skb"}},
	{"syscall", "syscall", []string{"entry_SYSCALL", "do_syscall", "syscall_exit", "syscall_return",
		"exit_to_user", "__x64_sys", "fdget", "fput", "rw_verify", "vfs_read", "vfs_write", "ksys_", "__fget",
		"srso", "__x86_return"}},
	{"tap", "tap", []string{"tun_"}},
}

// profKinds are the kinds of busy work in the table's order: the
// kernel's but idle, then the rest of the kernel (mostly the network
// stack), then user space.
var profKinds = append(slices.Clone(perfKinds[1:]),
	perfKind{key: kindStack, title: "stack+other"},
	perfKind{key: kindUser, title: "user"})

// idleComm is the idle task's name. All its samples count as idle,
// including its work outside the idle functions: switching to and from
// idle (finish_task_switch, tick_nohz_idle_*), the IPIs and interrupts
// it took. prof_swapper_busy_pct says how much that was: on a 2-CPU
// cloud VM, under a tenth of a CPU for TCP and 13% of one for the
// bridge's UDP 64 B, where the ends keep waking each other.
const idleComm = "swapper"

// kindOf returns the key of the kind of work e is.
func kindOf(e perfEntry) string {
	switch {
	case isIdleComm(e.comm):
		return kindIdle
	case e.space == '.':
		return kindUser
	case e.space != 'k':
		return kindStack
	}
	return kernelKindOf(e.symbol)
}

// isIdleComm reports whether comm is the idle task's; some kernels
// number it per CPU.
func isIdleComm(comm string) bool {
	return comm == idleComm || strings.HasPrefix(comm, idleComm+"/")
}

// kernelKindOf is the kind of a kernel symbol, ignoring the command.
func kernelKindOf(symbol string) string {
	for _, k := range perfKinds {
		for _, p := range k.parts {
			if strings.Contains(symbol, p) {
				return k.key
			}
		}
	}
	return kindStack
}
