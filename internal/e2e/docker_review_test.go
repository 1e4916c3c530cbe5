package e2e

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// What a user tries besides the session, against a real dockerd.

// TestDockerConnectPublished: a container with -p connected to a second
// tapswitch network (docker network connect) joins it; its published
// port keeps serving while Docker moves it between its endpoints, after
// docker network disconnect, and across docker stop and start with both
// networks.
func TestDockerConnectPublished(t *testing.T) {
	e := newDockerDriver(t)
	dk := e.dk
	// Docker publishes on the endpoint of its gateway, the first network
	// by name: connecting rv-a moves the ports from rv-b's endpoint.
	dk.MustDocker("network", "create", "-d", e.plugin, "--subnet", "10.134.91.0/24", "rv-b")
	dk.MustDocker("network", "create", "-d", e.plugin, "--subnet", "10.134.90.0/24", "rv-a")
	hp := freeHostPort(t, 18190)
	dk.RunDetached("rv-web", []string{"--network", "rv-b", "-p", "127.0.0.1:" + strconv.Itoa(hp) + ":80"}, HTTPServer...)
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(when string) {
		t.Helper()
		resp, err := client.Get("http://127.0.0.1:" + strconv.Itoa(hp) + "/")
		if err != nil {
			t.Fatalf("%s: GET the published port: %v\n%s", when, err, e.mustCLI("ports"))
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != dockerPage {
			t.Fatalf("%s: GET the published port = %q, want the page", when, b)
		}
	}
	// publishing counts the container's ports that publish the host port.
	publishing := func(when string) {
		t.Helper()
		n := 0
		for _, p := range e.ports() {
			for _, m := range p.Publish {
				if strings.Contains(m, ":"+strconv.Itoa(hp)+":80") {
					n++
				}
			}
		}
		if n != 1 {
			t.Fatalf("%s: %d ports publish host port %d, want 1\n%s", when, n, hp, e.mustCLI("ports"))
		}
	}
	get("on one network")
	publishing("on one network")
	if out, err := dk.Docker("network", "connect", "rv-a", "rv-web"); err != nil {
		t.Fatalf("docker network connect of a container with -p: %v\n%s", err, out)
	}
	get("connected to a second network")
	publishing("connected to a second network")
	dk.MustDocker("network", "disconnect", "rv-a", "rv-web")
	get("disconnected from the second network")
	publishing("disconnected from the second network")
	dk.MustDocker("network", "connect", "rv-a", "rv-web")
	dk.MustDocker("stop", "-t", "1", "rv-web")
	if out, err := dk.Docker("start", "rv-web"); err != nil {
		t.Fatalf("docker start of a container with -p on two networks: %v\n%s", err, out)
	}
	get("started again on two networks")
	publishing("started again on two networks")
	dk.MustDocker("rm", "-f", "rv-web")
	dk.MustDocker("network", "rm", "rv-a", "rv-b")
}

// TestDockerIPTaken: with tapswitch's IPAM, docker run --ip of a running
// container's address is refused, and the refusal leaves the address the
// running container's: a second try is refused too.
func TestDockerIPTaken(t *testing.T) {
	e := newDockerDriver(t)
	dk := e.dk
	dk.MustDocker("network", "create", "-d", e.plugin, "--ipam-driver", e.plugin, "--subnet", "10.134.92.0/24", "rv-c")
	dk.RunDetached("rv-one", []string{"--network", "rv-c", "--ip", "10.134.92.10"})
	for i, mac := range []string{"02:00:00:86:92:01", "02:00:00:86:92:02"} {
		out, err := dk.Docker("run", "--rm", "--network", "rv-c", "--ip", "10.134.92.10", "--mac-address", mac, dockerImage, "true")
		if err == nil || !strings.Contains(out, "already in use") || !strings.Contains(out, "--ip") {
			t.Fatalf("try %d: docker run --ip of rv-one's address = %v\n%s\nwant a refusal saying it is in use and naming --ip\n%s", i+1, err, out, e.mustCLI("ports"))
		}
	}
	_, port := e.endpoint("rv-one", "rv-c")
	if got := e.port(port).IPs; len(got) != 1 || got[0] != "10.134.92.10/24" {
		t.Errorf("rv-one's port has %v, want 10.134.92.10/24", got)
	}
	dk.MustDocker("rm", "-f", "rv-one")
	dk.MustDocker("network", "rm", "rv-c")
}
