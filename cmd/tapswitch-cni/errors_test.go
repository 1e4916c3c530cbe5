package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/tapswitch/tapswitch/api"
)

// TestCNIErrorReasons: the daemon's refusals of what a runtime or an
// IPAM plugin gave get the CNI code that says which.
func TestCNIErrorReasons(t *testing.T) {
	conf := &netConf{Network: "front", Socket: "/run/tapswitch/tapswitch.sock"}
	tests := []struct {
		reason api.Reason
		want   uint
		text   string
	}{
		{api.ReasonHostNetns, types.ErrInvalidEnvironmentVariables, "CNI_NETNS is the host's own"},
		{api.ReasonUnsafeRange, types.ErrInvalidNetworkConfig, `"ipam"`},
		{api.ReasonAddressInUse, types.ErrInternal, "attach"},
	}
	for _, tt := range tests {
		err := cniError(conf, "attach /proc/1/ns/net (eth0)", &api.DaemonError{Status: http.StatusBadRequest, Message: "refused", Reason: tt.reason})
		if err.Code != tt.want || !strings.Contains(err.Msg, tt.text) {
			t.Errorf("cniError(reason %s) = code %d %q, want code %d containing %q", tt.reason, err.Code, err.Msg, tt.want, tt.text)
		}
	}
}
