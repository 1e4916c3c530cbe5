package daemon

import (
	"errors"
	"fmt"
	"testing"

	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/ipam"
	vswitch "github.com/tapswitch/tapswitch/switch"
)

// TestReasons checks the class and reason the daemon gives the errors of
// the packages it uses, with the cause kept in the chain.
func TestReasons(t *testing.T) {
	tests := []struct {
		cause  error
		mapped func(error) error
		class  error
		reason api.Reason
	}{
		{vswitch.ErrNoPort, classify, api.ErrNotFound, api.ReasonPortNotFound},
		{vswitch.ErrNoNetwork, classify, api.ErrNotFound, api.ReasonNetworkNotFound},
		{vswitch.ErrPortExists, classify, api.ErrConflict, api.ReasonPortNameInUse},
		{vswitch.ErrNetworkExists, classify, api.ErrConflict, api.ReasonNetworkExists},
		{vswitch.ErrNetworkInUse, classify, api.ErrConflict, ""},
		{ipam.ErrOverlap, ipamError, api.ErrConflict, api.ReasonSubnetOverlap},
		{ipam.ErrPoolExhausted, ipamError, api.ErrConflict, api.ReasonPoolExhausted},
		{ipam.ErrInUse, ipamError, api.ErrConflict, api.ReasonAddressInUse},
		{ipam.ErrFull, ipamError, api.ErrConflict, ""},
		{ipam.ErrReserved, ipamError, api.ErrInvalid, ""},
		{ipam.ErrUnsafeRange, ipamError, api.ErrInvalid, api.ReasonUnsafeRange},
	}
	for _, tt := range tests {
		t.Run(tt.cause.Error(), func(t *testing.T) {
			err := tt.mapped(fmt.Errorf("thing: %w", tt.cause))
			if !errors.Is(err, tt.class) || !errors.Is(err, tt.cause) || api.ReasonOf(err) != tt.reason {
				t.Fatalf("%v: reason %q; want class %v, reason %q, and the cause in the chain", err, api.ReasonOf(err), tt.class, tt.reason)
			}
		})
	}
	if err := noNetwork("nope"); !errors.Is(err, api.ErrNotFound) || api.ReasonOf(err) != api.ReasonNetworkNotFound {
		t.Fatalf("noNetwork(nope) = %v, reason %q; want not found, %s", err, api.ReasonOf(err), api.ReasonNetworkNotFound)
	}
}
