package daemon

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"syscall"
	"testing"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/namespace"
)

func TestKernelErrors(t *testing.T) {
	v6 := []netip.Prefix{netip.MustParsePrefix("fd00::5/64")}
	v4 := []netip.Prefix{netip.MustParsePrefix("10.0.0.5/24")}
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"IPv6 off", kernelError(fmt.Errorf("TAP eth0: add address fd00::5/64: %w", syscall.EACCES), v6), http.StatusBadRequest},
		{"EACCES without IPv6", kernelError(fmt.Errorf("open: %w", syscall.EACCES), v4), http.StatusInternalServerError},
		{"namespace gone", kernelError(fmt.Errorf("network namespace /run/netns/x: %w", namespace.ErrNotFound), nil), http.StatusNotFound},
		{"pinned namespace gone", kernelError(fmt.Errorf("pin network namespace /proc/9/ns/net: %w", syscall.ENOENT), nil), http.StatusNotFound},
		{"classed already", kernelError(api.Errorf(api.ErrConflict, api.ReasonIfnameInUse, "%w", syscall.EACCES), v6), http.StatusConflict},
		{"other", kernelError(errors.New("no TAP support"), v6), http.StatusInternalServerError},
		{"port 53 taken", startError(fmt.Errorf("DNS server on 10.0.0.1:53: %w", syscall.EADDRINUSE)), http.StatusConflict},
		{"start failed otherwise", startError(errors.New("firewall: no nftables")), http.StatusInternalServerError},
	}
	for _, tt := range tests {
		if got := api.StatusOf(tt.err); got != tt.want {
			t.Errorf("%s: %v has status %d, want %d", tt.name, tt.err, got, tt.want)
		}
	}
}
