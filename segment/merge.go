package segment

import "github.com/tapswitch/tapswitch/device"

// MergeRun is the Coalescer's merging for frames that have no virtio net
// header and lie wherever they were received (a tunnel's datagrams): it
// merges the longest run at the start of frames that the Coalescer would
// merge into one super-frame, by the same rules, and writes it straight
// into dst, so that the frames are copied once. It returns how many
// frames it took and the size of what it wrote at dst[offset:]; the
// virtio net header is written at dst[offset-device.VnetHdrLen:offset].
//
// A run is frames of one flow, in order, each allowed to join the one
// before (contiguous, headers equal but where they may differ, a full
// payload but for the last, no FIN, PSH, SYN, RST or URG but for a last
// FIN or PSH), of a kind caps takes super-frames of, that fits in dst. It
// becomes a super-frame with the header the Coalescer writes (GSO type,
// gso_size, NeedsCsum with the pseudo-header sum). When no run of two
// starts frames[0], frames[0] alone is copied, with a header of no GSO.
// A frame of another flow ends the run: MergeRun does not look past it.
//
// valid says that the frames' data is known good, as a virtio net
// header's VnetFlagDataValid says (the kernel verified a checksum that
// covers them): their transport checksums are then not checked, and a
// frame copied alone gets that flag. Otherwise a frame joins a run only
// if its checksums verify, as an unflagged frame joins in Coalesce, and
// a frame alone gets no flag. An IPv4 header checksum is checked either
// way.
//
// frames must not overlap dst. MergeRun allocates nothing.
func MergeRun(dst []byte, offset int, frames [][]byte, valid bool, caps device.Caps) (used, size int) {
	if len(frames) == 0 {
		return 0, 0
	}
	var flag uint8
	if valid {
		flag = device.VnetFlagDataValid
	}
	vh := [device.VnetHdrLen]byte{flag}
	first := frames[0]
	room := len(dst) - offset
	allow := allowed(caps)
	n := 1
	var p pkt
	var it item
	if allow != 0 && len(frames) > 1 && p.parseFrame(first, vh[:], allow) && p.ok && p.flags&(tcpFlagFIN|tcpFlagPSH) == 0 {
		it = p.newItem(0)
		for n < len(frames) {
			f := frames[n]
			if !p.parseFrame(f, vh[:], allow) || !p.ok || p.key != it.key || !it.canJoin(&p, first, f) ||
				it.hdrEnd+it.payload+p.payload > room ||
				!it.verifyFrame(first, flag) || !it.goodFrame(f, flag) {
				break
			}
			ended := it.join(n, &p)
			n++
			if ended {
				break
			}
		}
	}
	if n == 1 {
		clear(dst[offset-device.VnetHdrLen : offset])
		dst[offset-device.VnetHdrLen] = flag
		return 1, copy(dst[offset:], first)
	}
	out := dst[offset:]
	pos := copy(out, first[:it.hdrEnd])
	for _, f := range frames[:n] {
		pos += copy(out[pos:], f[it.hdrEnd:])
	}
	it.complete(dst[:offset+pos], offset)
	return n, pos
}
