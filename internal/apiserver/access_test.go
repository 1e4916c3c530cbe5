package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/privtest"
)

func TestAllows(t *testing.T) {
	group := Access{GID: 900, Group: "tsw"}
	tests := []struct {
		name   string
		access Access
		peer   Peer
		want   bool
	}{
		{"root, root only", RootOnly, Peer{UID: 0, GID: 0}, true},
		{"root with another group", group, Peer{UID: 0, GID: 5}, true},
		{"user, root only", RootOnly, Peer{UID: 1000, GID: 1000}, false},
		{"user in root's group, root only", RootOnly, Peer{UID: 1000, GID: 0, Groups: []uint32{0}}, false},
		{"member by primary group", group, Peer{UID: 1000, GID: 900}, true},
		{"member by supplementary group", group, Peer{UID: 1000, GID: 100, Groups: []uint32{27, 900}}, true},
		{"not a member", group, Peer{UID: 1000, GID: 100, Groups: []uint32{27, 901}}, false},
		{"group 0", Access{GID: 0, Group: "root"}, Peer{UID: 1000, GID: 100, Groups: []uint32{0}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.access.Allows(tt.peer); got != tt.want {
				t.Fatalf("%+v.Allows(%+v) = %v, want %v", tt.access, tt.peer, got, tt.want)
			}
		})
	}
}

func TestGuard(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	tests := []struct {
		name   string
		access Access
		peer   *peerResult // nil: no credentials recorded
		status int
		msg    string
		reason api.Reason
	}{
		{"root", RootOnly, &peerResult{peer: Peer{UID: 0}}, http.StatusTeapot, "", ""},
		{"member", Access{GID: 900, Group: "tsw"}, &peerResult{peer: Peer{UID: 1000, Groups: []uint32{900}}}, http.StatusTeapot, "", ""},
		{"not a member", Access{GID: 900, Group: "tsw"}, &peerResult{peer: Peer{UID: 1000, GID: 1000}}, http.StatusForbidden,
			"permission denied: tapswitchd's socket is for root and group tsw", api.ReasonNotInGroup},
		{"group without a name", Access{GID: 900}, &peerResult{peer: Peer{UID: 1000, GID: 1000}}, http.StatusForbidden, "for root and group 900", api.ReasonNotInGroup},
		{"user, root only", RootOnly, &peerResult{peer: Peer{UID: 1000, GID: 1000}}, http.StatusForbidden,
			"permission denied: tapswitchd's socket is for root only", api.ReasonRootOnly},
		{"credentials unreadable", RootOnly, &peerResult{err: errors.New("SO_PEERCRED: boom")}, http.StatusForbidden, "cannot read the credentials", ""},
		{"no credentials", RootOnly, nil, http.StatusForbidden, "cannot read the credentials", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/v1/ports", nil)
			if tt.peer != nil {
				r = r.WithContext(context.WithValue(r.Context(), peerKey{}, *tt.peer))
			}
			w := httptest.NewRecorder()
			tt.access.Guard(ok, nil).ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Fatalf("Guard: status %d, want %d", w.Code, tt.status)
			}
			if tt.msg == "" {
				return
			}
			var e api.Error
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || !strings.Contains(e.Message, tt.msg) || e.Reason != tt.reason {
				t.Fatalf("Guard: body %q, want an Error containing %q with reason %q", w.Body.String(), tt.msg, tt.reason)
			}
		})
	}
}

// unixPair returns both ends of a connection over a Unix socket in a
// temporary directory.
func unixPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return server, client
}

func TestPeerOfSelf(t *testing.T) {
	server, _ := unixPair(t)
	p, err := PeerOf(server)
	if err != nil {
		t.Fatalf("PeerOf() = %v", err)
	}
	if p.PID != os.Getpid() || p.UID != uint32(os.Geteuid()) || p.GID != uint32(os.Getegid()) {
		t.Fatalf("PeerOf() = %+v, want pid %d uid %d gid %d", p, os.Getpid(), os.Geteuid(), os.Getegid())
	}
	groups, err := os.Getgroups()
	if err != nil {
		t.Fatal(err)
	}
	if !sameGroups(p.Groups, groups) {
		t.Fatalf("PeerOf() groups = %v, want %v", p.Groups, groups)
	}
	if _, err := PeerOf(fakeConn{}); err == nil {
		t.Fatal("PeerOf(not a socket) = nil error")
	}
}

func sameGroups(got []uint32, want []int) bool {
	var w []uint32
	for _, g := range want {
		w = append(w, uint32(g))
	}
	g := slices.Clone(got)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(slices.Compact(g), slices.Compact(w))
}

type fakeConn struct{ net.Conn }

// helperEnv names the socket TestPeerHelper dials; it runs only when set.
const helperEnv = "TAPSWITCH_TEST_PEER_SOCKET"

// TestPeerHelper is not a test: TestPeerManyGroups runs the test binary
// as a process with other credentials, and this connects from it.
func TestPeerHelper(t *testing.T) {
	sock := os.Getenv(helperEnv)
	if sock == "" {
		return
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, c)
}

// TestPeerManyGroups checks the supplementary groups of a peer with more
// than fit the first buffer PeerOf tries.
func TestPeerManyGroups(t *testing.T) {
	privtest.Require(t, "start a process with other groups")
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var groups []uint32
	var want []int
	for g := 70000; g < 70100; g++ {
		groups = append(groups, uint32(g))
		want = append(want, g)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPeerHelper$")
	cmd.Env = append(os.Environ(), helperEnv+"="+ln.Addr().String())
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 0, Gid: 70500, Groups: groups}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := PeerOf(c)
	if err != nil {
		t.Fatalf("PeerOf() = %v", err)
	}
	if p.PID != cmd.Process.Pid || p.GID != 70500 || !sameGroups(p.Groups, want) {
		t.Fatalf("PeerOf() = %+v, want pid %d, gid 70500 and groups 70000 to 70099", p, cmd.Process.Pid)
	}
	if !(Access{GID: 70099}).Allows(Peer{UID: 1, GID: p.GID, Groups: p.Groups}) {
		t.Fatalf("a peer with groups %v not allowed for group 70099", p.Groups)
	}
}

// TestServerWithGuard runs the handler behind Guard on a real socket, as
// tapswitchd does: the test, as whoever runs it, is let in only when it
// is root or in the group.
func TestServerWithGuard(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	access := Access{GID: os.Getegid()}
	srv := &http.Server{Handler: access.Guard(NewHandler(&fakeBackend{}, nil), nil), ConnContext: ConnContext}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	if _, err := api.NewClient(sock).Ports(context.Background()); err != nil {
		t.Fatalf("Ports() as uid %d gid %d = %v, want it allowed", os.Geteuid(), os.Getegid(), err)
	}
}
