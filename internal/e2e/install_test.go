package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/internal/privtest"
)

// requireTools skips t, or fails it when privileged tests are required,
// unless every tool is on PATH. The install test needs no root.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	cannot := t.Skipf
	if privtest.Required() {
		cannot = t.Fatalf
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			cannot("needs %s: %v", tool, err)
		}
	}
}

// installed lists the files and links under dir, relative to it.
func installed(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out = append(out, "/"+rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// manPage matches the names of the pages gen-man writes: the program's
// and one per subcommand.
var manPage = regexp.MustCompile(`^/usr/local/share/man/man8/tapswitchd?(-[a-z]+)*\.8$`)

// TestInstall runs make install with a DESTDIR, as a packager does, and
// checks what it puts where: the binaries, the unit (which
// systemd-analyze verifies, with the installed tapswitchd and man pages),
// the completions (which bash loads, and which complete a subcommand
// through the installed tapswitch), the man pages (which man reads); then
// make uninstall, which must leave DESTDIR empty.
func TestInstall(t *testing.T) {
	requireTools(t, "make", "go", "systemd-analyze", "bash")
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dest, bin := t.TempDir(), t.TempDir()
	makeArgs := []string{"-C", root, "--no-print-directory", "DESTDIR=" + dest, "BIN=" + bin, "CNI_BIN=/opt/cni/bin", "PREFIX=/usr/local"}
	// Empty directories the staging tree had before, one beside where
	// install writes: uninstall must leave them.
	kept := []string{"var/empty/sshd", "usr/local/share/man/man1"}
	for _, d := range kept {
		if err := os.MkdirAll(filepath.Join(dest, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("make", append([]string{"install"}, makeArgs...)...).CombinedOutput(); err != nil {
		t.Fatalf("make install DESTDIR=%s: %v\n%s", dest, err, out)
	}

	files := installed(t, dest)
	t.Logf("installed: %s", strings.Join(files, " "))
	want := []string{
		"/opt/cni/bin/tapswitch-cni",
		"/usr/local/bin/tapswitch",
		"/usr/local/bin/tapswitchd",
		"/usr/local/lib/systemd/system/tapswitchd.service",
		"/usr/local/share/bash-completion/completions/tapswitch",
		"/usr/local/share/bash-completion/completions/tapswitchd",
		"/usr/local/share/fish/vendor_completions.d/tapswitch.fish",
		"/usr/local/share/fish/vendor_completions.d/tapswitchd.fish",
		"/usr/local/share/zsh/site-functions/_tapswitch",
		"/usr/local/share/zsh/site-functions/_tapswitchd",
	}
	var pages []string
	for _, f := range files {
		switch {
		case manPage.MatchString(f):
			pages = append(pages, filepath.Base(f))
		case !slices.Contains(want, f):
			t.Errorf("make install put %s, which is not one of the files it should install", f)
		}
	}
	for _, f := range want {
		if !slices.Contains(files, f) {
			t.Errorf("make install did not put %s", f)
		}
	}
	for _, p := range []string{"tapswitchd.8", "tapswitch.8", "tapswitch-attach.8", "tapswitch-network-create.8", "tapswitch-status.8"} {
		if !slices.Contains(pages, p) {
			t.Errorf("make install put the man pages %v, want %s among them", pages, p)
		}
	}
	for _, p := range pages {
		if strings.Contains(p, "gen-man") || strings.Contains(p, "-help") || strings.HasPrefix(p, "tapswitchd-") {
			t.Errorf("man page %s is of a hidden or built-in command", p)
		}
	}

	// systemd reads units where make install puts them.
	paths, err := exec.Command("systemd-analyze", "unit-paths").Output()
	if err != nil {
		t.Fatalf("systemd-analyze unit-paths: %v", err)
	}
	if !slices.Contains(strings.Fields(string(paths)), "/usr/local/lib/systemd/system") {
		t.Errorf("systemd-analyze unit-paths lists no /usr/local/lib/systemd/system:\n%s", paths)
	}
	unitFile := filepath.Join(dest, "usr/local/lib/systemd/system/tapswitchd.service")
	unitText, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(unitText, []byte("\nExecStart=/usr/local/bin/tapswitchd ")) {
		t.Errorf("the installed unit's ExecStart= does not run /usr/local/bin/tapswitchd")
	}
	mandir := filepath.Join(dest, "usr/local/share/man")
	verify := func(exe string) (string, error) {
		// The unit as installed, but run from DESTDIR: verify checks
		// that ExecStart='s program is there and executable, and runs
		// man for each page of Documentation=.
		dir := t.TempDir()
		text := strings.Replace(string(unitText), "\nExecStart=/usr/local/bin/tapswitchd ", "\nExecStart="+exe+" ", 1)
		path := filepath.Join(dir, "tapswitchd.service")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("systemd-analyze", "verify", path)
		cmd.Env = append(os.Environ(), "MANPATH="+mandir, "SYSTEMD_LOG_COLOR=0")
		if _, err := exec.LookPath("man"); err != nil {
			cmd.Args = slices.Insert(cmd.Args, 2, "--man=no")
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := verify(filepath.Join(dest, "usr/local/bin/tapswitchd"))
	t.Logf("systemd-analyze verify tapswitchd.service: %v\n%s", err, out)
	if err != nil {
		t.Errorf("systemd-analyze verify tapswitchd.service: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		// systemd before 254 does not know the setting; the unit
		// says so and it is harmless there.
		if line != "" && !strings.Contains(line, "Unknown key 'FileDescriptorStorePreserve'") {
			t.Errorf("systemd-analyze verify tapswitchd.service says: %s", line)
		}
	}
	// The check has teeth: a unit whose program is missing fails.
	if out, err := verify(filepath.Join(dest, "usr/local/bin/missing")); err == nil {
		t.Errorf("systemd-analyze verify of a unit running a missing program passed:\n%s", out)
	}

	// man reads a page (or groff formats it, or at least it has the header).
	page := filepath.Join(mandir, "man8/tapswitchd.8")
	var text []byte
	switch {
	case hasTool("man"):
		text, err = exec.Command("man", "-l", "-P", "cat", page).Output()
	case hasTool("groff"):
		text, err = exec.Command("groff", "-man", "-Tutf8", page).Output()
	default:
		text, err = os.ReadFile(page)
	}
	if err != nil {
		t.Fatalf("read %s: %v", page, err)
	}
	for _, w := range []string{"TAPSWITCHD", "8", "--state-dir"} {
		if !bytes.Contains(text, []byte(w)) {
			t.Errorf("man page %s reads\n%s\nwithout %q", page, text, w)
		}
	}

	// bash loads the completion, and it completes through the
	// installed program.
	bashComp := filepath.Join(dest, "usr/local/share/bash-completion/completions/tapswitch")
	// Files in that directory are loaded by bash-completion, whose
	// _get_comp_words_by_ref the script calls; where the package is not
	// installed, a stand-in that does what it does for a plain word.
	script := `if [ -r /usr/share/bash-completion/bash_completion ]; then source /usr/share/bash-completion/bash_completion; else
		_get_comp_words_by_ref() { cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; }; fi
	source "$1" && complete -p tapswitch && COMP_WORDS=(tapswitch netw) COMP_CWORD=1 COMP_LINE="tapswitch netw" COMP_POINT=14 && __start_tapswitch && printf 'reply:%s\n' "${COMPREPLY[@]}"`
	cmd := exec.Command("bash", "-c", script, "bash", bashComp)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Join(dest, "usr/local/bin")+":"+os.Getenv("PATH"))
	bout, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(bout), "-F __start_tapswitch tapswitch") || !strings.Contains(string(bout), "reply:network") {
		t.Errorf("bash with %s: %v; want it registered for tapswitch and completing netw to network:\n%s", bashComp, err, bout)
	}
	// zsh and fish check the syntax of theirs where installed.
	for _, c := range []struct{ shell, file string }{
		{"zsh", "usr/local/share/zsh/site-functions/_tapswitch"},
		{"fish", "usr/local/share/fish/vendor_completions.d/tapswitch.fish"},
	} {
		if hasTool(c.shell) {
			if out, err := exec.Command(c.shell, "-n", filepath.Join(dest, c.file)).CombinedOutput(); err != nil {
				t.Errorf("%s -n %s: %v\n%s", c.shell, c.file, err, out)
			}
		}
	}

	if out, err := exec.Command("make", append([]string{"uninstall"}, makeArgs...)...).CombinedOutput(); err != nil {
		t.Fatalf("make uninstall DESTDIR=%s: %v\n%s", dest, err, out)
	}
	if left := installed(t, dest); len(left) != 0 {
		t.Errorf("make uninstall left %v in DESTDIR", left)
	}
	// The directories that were there before stay, even empty; those
	// install made go.
	for _, d := range kept {
		if fi, err := os.Stat(filepath.Join(dest, d)); err != nil || !fi.IsDir() {
			t.Errorf("make uninstall removed %s, which was there before make install (%v)", d, err)
		}
	}
	for _, d := range []string{"usr/local/bin", "usr/local/lib", "opt"} {
		if _, err := os.Stat(filepath.Join(dest, d)); err == nil {
			t.Errorf("make uninstall left the directory %s that make install made", d)
		}
	}
}

func hasTool(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}
