package publish

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// idleFor is how long ago data last went either way on c, as the kernel
// keeps it in TCP_INFO: the lesser of the times since data was last
// received (tcpi_last_data_recv) and last sent (tcpi_last_data_sent),
// both counted from the connection's start when none has been.
func idleFor(c *net.TCPConn) (time.Duration, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var info *unix.TCPInfo
	var serr error
	if err := rc.Control(func(fd uintptr) {
		info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, serr
	}
	ms := min(info.Last_data_recv, info.Last_data_sent)
	return time.Duration(ms) * time.Millisecond, nil
}
