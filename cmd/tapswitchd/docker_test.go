package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPluginSocketName(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"tapswitch", true}, {"dd-1a2b.c_d", true}, {"", false}, {"../x", false}, {"-x", false}, {"a/b", false},
		{strings.Repeat("a", 65), false},
	} {
		_, err := pluginSocket(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("pluginSocket(%q) = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

func TestListenPlugin(t *testing.T) {
	old := pluginDir
	t.Cleanup(func() { pluginDir = old })
	// A directory that does not exist yet, made 0755.
	pluginDir = filepath.Join(t.TempDir(), "plugins")
	path, err := pluginSocket("dd-test")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := listenPlugin(path)
	if err != nil {
		t.Fatalf("listenPlugin: %v", err)
	}
	if fi, err := os.Stat(pluginDir); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("plugin directory: %v %v, want mode 0755", fi.Mode(), err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("plugin socket: %v %v, want a socket with mode 0600", fi.Mode(), err)
	}
	// A live one is refused, and stays.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := listenPlugin(path); err == nil || !strings.Contains(err.Error(), "another process serves") {
		t.Errorf("listenPlugin on a live socket = %v, want a refusal", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the live socket went: %v", err)
	}
	// A stale one (its daemon gone) is replaced.
	ln.Close()
	ln2, err := listenPlugin(path)
	if err != nil {
		t.Fatalf("listenPlugin on a stale socket = %v, want it replaced", err)
	}
	defer ln2.Close()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial the new socket: %v", err)
	}
	c.Close()
}

// TestDockerFlagsNeedDocker: --docker-plugin or --docker-host without
// --docker would be ignored silently; they are refused, naming --docker.
func TestDockerFlagsNeedDocker(t *testing.T) {
	for _, tt := range []struct {
		name string
		o    options
		ok   bool
	}{
		{"none", options{dockerPlugin: defaultPluginName}, true},
		{"docker alone", options{docker: true, dockerPlugin: defaultPluginName}, true},
		{"docker with both", options{docker: true, dockerPlugin: "rv", dockerPluginSet: true, dockerHost: "unix:///x.sock"}, true},
		{"plugin without docker", options{dockerPlugin: "rv", dockerPluginSet: true}, false},
		{"default plugin given without docker", options{dockerPlugin: defaultPluginName, dockerPluginSet: true}, false},
		{"host without docker", options{dockerPlugin: defaultPluginName, dockerHost: "unix:///x.sock"}, false},
	} {
		err := checkDockerFlags(tt.o)
		if tt.ok != (err == nil) {
			t.Errorf("%s: checkDockerFlags = %v, want ok %v", tt.name, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "add --docker") {
			t.Errorf("%s: %q does not say to add --docker", tt.name, err)
		}
	}
}
