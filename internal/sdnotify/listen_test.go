package sdnotify

import "testing"

func TestListenEnvironment(t *testing.T) {
	self := 4242
	for _, c := range []struct {
		name            string
		pid, fds, names string
		wantErr         bool
	}{
		{"none", "", "", "", false},
		{"another process's", "1", "2", "a:b", false},
		{"zero", "4242", "0", "", false},
		{"pid not a number", "x", "1", "", true},
		{"count not a number", "4242", "many", "", true},
		{"count negative", "4242", "-1", "", true},
		{"count too big", "4242", "1000000", "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			set, err := listen(c.pid, c.fds, c.names, self)
			if (err != nil) != c.wantErr {
				t.Fatalf("listen(%q, %q, %q) = %v, want error %v", c.pid, c.fds, c.names, err, c.wantErr)
			}
			if set.Len() != 0 {
				t.Fatalf("listen(%q, %q, %q) took %d descriptors, want none", c.pid, c.fds, c.names, set.Len())
			}
		})
	}
}
