package fdset

import (
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func pipeFDs(t *testing.T) (int, int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	return p[0], p[1]
}

func isOpen(fd int) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil
}

func TestSet(t *testing.T) {
	var s Set
	r1, w1 := pipeFDs(t)
	r2, w2 := pipeFDs(t)
	s.Add("tap/a", r1, w1)
	s.Add("api", r2)
	s.Add("tap/a", w2)
	if got, want := s.Names(), []string{"tap/a", "api"}; !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	if s.Len() != 4 {
		t.Fatalf("Len() = %d, want 4", s.Len())
	}
	if got := s.Take("tap/a"); !slices.Equal(got, []int{r1, w1, w2}) {
		t.Fatalf("Take(tap/a) = %v, want %v in the order added", got, []int{r1, w1, w2})
	}
	if got := s.Take("tap/a"); got != nil {
		t.Fatalf("second Take(tap/a) = %v, want nil", got)
	}
	if got := s.TakeOne("missing"); got != -1 {
		t.Fatalf("TakeOne(missing) = %d, want -1", got)
	}
	if names := s.Close(); !slices.Equal(names, []string{"api"}) {
		t.Fatalf("Close() = %v, want [api]", names)
	}
	if isOpen(r2) {
		t.Error("a descriptor left in the set is open after Close")
	}
	for _, fd := range []int{r1, w1, w2} {
		if !isOpen(fd) {
			t.Errorf("descriptor %d, taken, was closed by Close", fd)
		}
		unix.Close(fd)
	}
	var nilSet *Set
	if nilSet.Take("x") != nil || nilSet.Len() != 0 || nilSet.Names() != nil || nilSet.Close() != nil {
		t.Error("a nil *Set is not empty")
	}
}

func TestTakeOneClosesExtras(t *testing.T) {
	var s Set
	r, w := pipeFDs(t)
	s.Add("api", r, w)
	if got := s.TakeOne("api"); got != r {
		t.Fatalf("TakeOne(api) = %d, want %d", got, r)
	}
	if isOpen(w) {
		t.Error("the extra descriptor under a single-descriptor name is still open")
	}
	unix.Close(r)
}
