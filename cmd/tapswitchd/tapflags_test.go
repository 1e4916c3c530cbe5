package main

import (
	"testing"

	"github.com/spf13/pflag"

	"github.com/tapswitch/tapswitch/internal/daemon"
	"github.com/tapswitch/tapswitch/tap"
)

func TestTAPFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		want    daemon.TAPConfig
		wantErr bool
	}{
		{"defaults", nil, daemon.TAPConfig{TxQueueLen: tap.DefaultTxQueueLen}, false},
		{"napi", []string{"--tap-napi"}, daemon.TAPConfig{NAPI: true, TxQueueLen: tap.DefaultTxQueueLen}, false},
		{"napi off", []string{"--tap-napi=false"}, daemon.TAPConfig{TxQueueLen: tap.DefaultTxQueueLen}, false},
		{"txqueuelen", []string{"--tap-txqueuelen", "5000"}, daemon.TAPConfig{TxQueueLen: 5000}, false},
		{"txqueuelen 0", []string{"--tap-txqueuelen", "0"}, daemon.TAPConfig{}, true},
		{"txqueuelen too long", []string{"--tap-txqueuelen", "100001"}, daemon.TAPConfig{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := pflag.NewFlagSet("tapswitchd", pflag.ContinueOnError)
			var o tapOptions
			addTAPFlags(f, &o)
			if err := f.Parse(tc.args); err != nil {
				t.Fatalf("Parse(%q) = %v", tc.args, err)
			}
			err := o.check()
			if (err != nil) != tc.wantErr {
				t.Fatalf("check() after %q = %v, want error %v", tc.args, err, tc.wantErr)
			}
			if err == nil && o.config() != tc.want {
				t.Fatalf("config() after %q = %+v, want %+v", tc.args, o.config(), tc.want)
			}
		})
	}
}
