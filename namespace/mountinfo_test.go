package namespace

import "testing"

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		"/run/netns/a":       "/run/netns/a",
		`/tmp/a\040b`:        "/tmp/a b",
		`/tmp/x\011y\012z`:   "/tmp/x\ty\nz",
		`/tmp/back\134slash`: `/tmp/back\slash`,
		`/tmp/short\04`:      `/tmp/short\04`,
		`/tmp/not\999octal`:  `/tmp/not\999octal`,
		`\040`:               " ",
	} {
		if got := UnescapeMountinfo(in); got != want {
			t.Errorf("UnescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}
