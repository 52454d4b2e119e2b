//go:build linux

package cfmessageport_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/cfmessageport/wire"
	"github.com/machport/machport/internal/emu"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A hostile datagram as the emulation's channels carry messages (internal/emu/wire.go): a
// 32-byte header, the reply right's 32-byte record, 32 bytes per descriptor, then the inline body;
// fds travel beside it. Every field is written as given, so a case can lie about any of them.
type datagram struct {
	magic   uint32
	version uint16
	flags   uint16
	id      int32
	bodyLen uint32
	ndesc   uint16
	nfds    uint16
	bodyFD  int16
	reply   wireRecord
	descs   []wireRecord
	body    []byte
}

type wireRecord struct {
	kind, typ, dealloc, partsLess1 uint8
	fd, counterFD                  int16
	size                           uint32
	id                             [16]byte // or a moved receive right's token
}

// Record kinds and right types of the emulation's wire format.
const (
	recNone, recPort, recMemory, recReceive = 0, 1, 2, 3
	recLane                                 = 5
	typeReceive, typeSend, typeSendOnce     = 16, 17, 18
)

var noRecord = wireRecord{fd: -1, counterFD: -1}

// request is a well-formed datagram: a CF request with body, no reply right, no fds.
func request(body []byte) *datagram {
	return &datagram{magic: 0x4d50454d, version: 1, bodyLen: uint32(len(body)), bodyFD: -1, reply: noRecord, body: body}
}

func (d *datagram) encode() []byte {
	b := make([]byte, 64+32*len(d.descs))
	le := binary.LittleEndian
	le.PutUint32(b[0:], d.magic)
	le.PutUint16(b[4:], d.version)
	le.PutUint16(b[6:], d.flags)
	le.PutUint32(b[12:], uint32(d.id))
	le.PutUint32(b[16:], d.bodyLen)
	le.PutUint16(b[20:], d.ndesc)
	le.PutUint16(b[22:], d.nfds)
	le.PutUint16(b[24:], uint16(d.bodyFD))
	put := func(b []byte, r wireRecord) {
		b[0], b[1], b[2], b[3] = r.kind, r.typ, r.dealloc, r.partsLess1
		le.PutUint16(b[4:], uint16(r.fd))
		le.PutUint16(b[6:], uint16(r.counterFD))
		le.PutUint32(b[8:], r.size)
		copy(b[16:], r.id[:])
	}
	put(b[32:], d.reply)
	for i, r := range d.descs {
		put(b[64+32*i:], r)
	}
	return append(b, d.body...)
}

// cfBody is the body of a valid CF request (inline data), or of an out-of-line one's header when
// ool is set.
func cfBody(t *testing.T, data []byte) []byte {
	var m mach.Message
	require.NoError(t, (&wire.Packet{MsgID: 1, ConvID: 99, Data: data}).Encode(&m, mach.Port{}, mach.Port{}))
	return m.Body
}

// hostileFDs makes the fds a case sends; the test closes its copies after sending.
type hostileFDs struct {
	t   *testing.T
	fds []int
}

func (h *hostileFDs) add(fd int) int16 { h.fds = append(h.fds, fd); return int16(len(h.fds) - 1) }

func (h *hostileFDs) pipeWriteEnd() int16 {
	var p [2]int
	require.NoError(h.t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	unix.Close(p[0])
	return h.add(p[1])
}

// socket returns one end of a new socketpair; keep, when set, receives the other end for the
// case to use, else it is closed.
func (h *hostileFDs) socket(keep *int) int16 {
	p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	require.NoError(h.t, err)
	if keep != nil {
		*keep = p[1]
	} else {
		unix.Close(p[1])
	}
	return h.add(p[0])
}

// memfd returns a memfd of size bytes with the given seals (none when seals is 0).
func (h *hostileFDs) memfd(size int64, seals int) int16 {
	flags := unix.MFD_CLOEXEC
	if seals != 0 {
		flags |= unix.MFD_ALLOW_SEALING
	}
	fd, err := unix.MemfdCreate("hostile", flags)
	require.NoError(h.t, err)
	require.NoError(h.t, unix.Ftruncate(fd, size))
	if seals != 0 {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals)
		require.NoError(h.t, err)
	}
	return h.add(fd)
}

const sealed = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE

func memoryRecord(fd int16, size uint32) wireRecord {
	return wireRecord{kind: recMemory, fd: fd, counterFD: -1, size: size}
}

func sendOnceRecord(fd int16) wireRecord {
	return wireRecord{kind: recPort, typ: typeSendOnce, fd: fd, counterFD: -1, id: [16]byte{0xee, 1}}
}

// laneRecord is a send-once right as a token on a lane: key and token, and the lane's write end
// when fd is not -1.
func laneRecord(fd int16, key, token uint64) wireRecord {
	r := wireRecord{kind: recLane, typ: typeSendOnce, fd: fd, counterFD: -1}
	binary.LittleEndian.PutUint64(r.id[0:], key)
	binary.LittleEndian.PutUint64(r.id[8:], token)
	return r
}

// hostileCase is one kind of datagram a peer holding a send right can write.
type hostileCase struct {
	name string
	// build returns the datagram's bytes; fds it adds travel with it.
	build func(t *testing.T, fds *hostileFDs) []byte
	// served is set for the cases that are valid requests with a hostile reply right: served,
	// not dropped.
	served bool
}

func hostileCases() []hostileCase {
	valid := func(t *testing.T) *datagram { return request(cfBody(t, []byte("hostile"))) }
	oolHeader := func(t *testing.T, size int) *datagram {
		// CF's out-of-line request: the header with byteslen, and one memory descriptor.
		var m mach.Message
		require.NoError(t, (&wire.Packet{MsgID: 1, ConvID: 99, Data: make([]byte, size)}).Encode(&m, mach.Port{}, mach.Port{}))
		return request(m.Body)
	}
	with := func(f func(t *testing.T, fds *hostileFDs, d *datagram)) func(t *testing.T, fds *hostileFDs) []byte {
		return func(t *testing.T, fds *hostileFDs) []byte {
			d := valid(t)
			f(t, fds, d)
			d.nfds = uint16(len(fds.fds))
			return d.encode()
		}
	}
	raw := func(b []byte) func(*testing.T, *hostileFDs) []byte {
		return func(*testing.T, *hostileFDs) []byte { return b }
	}
	return []hostileCase{
		// The header.
		{name: "empty datagram", build: raw(nil)},
		{name: "one byte", build: raw([]byte{0x4d})},
		{name: "truncated header", build: func(t *testing.T, _ *hostileFDs) []byte { return valid(t).encode()[:20] }},
		{name: "header without the reply record", build: func(t *testing.T, _ *hostileFDs) []byte { return valid(t).encode()[:32] }},
		{name: "text, not a message", build: raw([]byte(strings.Repeat("GET / HTTP/1.1\r\n", 8)))},
		{name: "bad magic", build: with(func(_ *testing.T, _ *hostileFDs, d *datagram) { d.magic = 0x01020304 })},
		{name: "unknown version", build: with(func(_ *testing.T, _ *hostileFDs, d *datagram) { d.version = 7 })},
		{name: "unknown flags", build: with(func(_ *testing.T, _ *hostileFDs, d *datagram) { d.flags = 0x80 })},
		{name: "body length longer than sent", build: with(func(_ *testing.T, _ *hostileFDs, d *datagram) { d.bodyLen += 100 })},
		{name: "body length shorter than sent", build: with(func(_ *testing.T, _ *hostileFDs, d *datagram) { d.bodyLen -= 4 })},
		{name: "body length 4 GiB", build: with(func(_ *testing.T, _ *hostileFDs, d *datagram) { d.bodyLen = 0xffffffff })},
		{name: "descriptor count beyond the data", build: with(func(_ *testing.T, _ *hostileFDs, d *datagram) { d.ndesc = 5 })},
		{name: "descriptor count over the limit", build: with(func(_ *testing.T, _ *hostileFDs, d *datagram) { d.ndesc = 0xffff })},
		// fds and their count.
		{name: "fd count says 3, one carried", build: func(t *testing.T, fds *hostileFDs) []byte {
			d := valid(t)
			fds.pipeWriteEnd()
			d.nfds = 3
			return d.encode()
		}},
		{name: "fds nothing refers to", build: with(func(_ *testing.T, fds *hostileFDs, _ *datagram) { fds.pipeWriteEnd(); fds.pipeWriteEnd() })},
		{name: "253 fds", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			for range 253 {
				fds.pipeWriteEnd()
			}
		})},
		{name: "253 fds, every one claimed by a record", build: with(func(t *testing.T, fds *hostileFDs, d *datagram) {
			for range 253 {
				d.descs = append(d.descs, memoryRecord(fds.memfd(4096, sealed), 4096))
			}
			d.ndesc = uint16(len(d.descs))
		})},
		// A body in a memfd.
		{name: "body memfd flag for a small body", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			d.flags, d.bodyFD, d.body = 1, fds.memfd(4096, sealed), nil
		})},
		{name: "body memfd not sealed", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			d.flags, d.bodyLen, d.bodyFD, d.body = 1, 1<<20, fds.memfd(1<<20, 0), nil
		})},
		{name: "body memfd that can shrink", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			d.flags, d.bodyLen, d.bodyFD, d.body = 1, 1<<20, fds.memfd(1<<20, unix.F_SEAL_WRITE|unix.F_SEAL_GROW), nil
		})},
		{name: "body memfd smaller than the body", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			d.flags, d.bodyLen, d.bodyFD, d.body = 1, 1<<20, fds.memfd(4096, sealed), nil
		})},
		{name: "body fd index out of range", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			fds.memfd(1<<20, sealed)
			d.flags, d.bodyLen, d.bodyFD, d.body = 1, 1<<20, 5, nil
		})},
		{name: "body fd is a socket", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			d.flags, d.bodyLen, d.bodyFD, d.body = 1, 1<<20, fds.socket(nil), nil
		})},
		{name: "a 65 MiB body, larger than any request", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			d.flags, d.bodyLen, d.bodyFD, d.body = 1, 65<<20, fds.memfd(65<<20, sealed), nil
		})},
		{name: "a well-formed 8000-byte inline body", build: func(t *testing.T, _ *hostileFDs) []byte {
			return request(bytes.Repeat([]byte{1}, 8000)).encode()
		}},
		// The reply right's record.
		{name: "reply record of memory", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			d.reply = memoryRecord(fds.memfd(4096, sealed), 4096)
		})},
		{name: "empty reply record with an fd", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			d.reply = wireRecord{fd: fds.pipeWriteEnd(), counterFD: -1}
		})},
		{name: "send-once reply right with a counter", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			d.reply = sendOnceRecord(fds.socket(nil))
			d.reply.counterFD = fds.memfd(4096, sealed)
		})},
		{name: "reply right of type 99", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			d.reply = sendOnceRecord(fds.socket(nil))
			d.reply.typ = 99
		})},
		{name: "reply right fd index negative", build: with(func(_ *testing.T, _ *hostileFDs, d *datagram) {
			d.reply = sendOnceRecord(-7)
		})},
		{name: "reply right that is a pipe", served: true, build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			d.reply = sendOnceRecord(fds.pipeWriteEnd())
		})},
		{name: "reply right whose reader is gone", served: true, build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			d.reply = sendOnceRecord(fds.socket(nil))
		})},
		{name: "reply right that is a memfd", served: true, build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			d.reply = sendOnceRecord(fds.memfd(4096, sealed))
		})},
		// Reply rights as lane tokens (a lane key at 16, the token at 24; see internal/emu/lane.go).
		{name: "lane reply right whose lane this process does not know", served: true, build: with(func(_ *testing.T, _ *hostileFDs, d *datagram) {
			d.reply = laneRecord(-1, 0x1234, 0x5678)
		})},
		{name: "lane reply right that brings a pipe as its lane", served: true, build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			d.reply = laneRecord(fds.pipeWriteEnd(), 0x1234, 0x5678)
		})},
		{name: "lane reply right with token 0", build: with(func(_ *testing.T, _ *hostileFDs, d *datagram) {
			d.reply = laneRecord(-1, 0x1234, 0)
		})},
		{name: "lane record of a send right", build: with(func(_ *testing.T, _ *hostileFDs, d *datagram) {
			d.reply = laneRecord(-1, 0x1234, 0x5678)
			d.reply.typ = typeSend
		})},
		{name: "a lane token on a send right's channel", build: func(t *testing.T, _ *hostileFDs) []byte {
			d := valid(t)
			d.flags = 2
			return binary.LittleEndian.AppendUint64(d.encode(), 0x5678)
		}},
		// Descriptors.
		{name: "record of unknown kind", build: with(func(_ *testing.T, _ *hostileFDs, d *datagram) {
			d.descs, d.ndesc = []wireRecord{{kind: 9, fd: -1, counterFD: -1}}, 1
		})},
		{name: "empty descriptor record", build: with(func(_ *testing.T, _ *hostileFDs, d *datagram) {
			d.descs, d.ndesc = []wireRecord{noRecord}, 1
		})},
		{name: "send right without its counter", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			d.descs, d.ndesc = []wireRecord{{kind: recPort, typ: typeSend, fd: fds.socket(nil), counterFD: -1}}, 1
		})},
		{name: "send right with a counter that is not sealed", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			d.descs = []wireRecord{{kind: recPort, typ: typeSend, fd: fds.socket(nil), counterFD: fds.memfd(4096, 0), id: [16]byte{7}}}
			d.ndesc = 1
		})},
		{name: "two records sharing one fd", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			fd := fds.memfd(4096, sealed)
			d.descs, d.ndesc = []wireRecord{memoryRecord(fd, 4096), memoryRecord(fd, 4096)}, 2
		})},
		{name: "record fd index out of range", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			fds.memfd(4096, sealed)
			d.descs, d.ndesc = []wireRecord{memoryRecord(40, 4096)}, 1
		})},
		{name: "memory beyond its memfd", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			d.descs, d.ndesc = []wireRecord{memoryRecord(fds.memfd(4096, sealed), 1<<30)}, 1
		})},
		{name: "nearly 4 GiB of memory in a small memfd", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			d.descs, d.ndesc = []wireRecord{memoryRecord(fds.memfd(4096, sealed), 0xfffff001)}, 1
		})},
		{name: "memory parts beyond the fds", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			r := memoryRecord(fds.memfd(8<<20, sealed), 24<<20)
			r.partsLess1 = 2
			d.descs, d.ndesc = []wireRecord{r}, 1
		})},
		{name: "memory in 256 parts", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			r := memoryRecord(fds.memfd(1<<20, sealed), 1<<20)
			r.partsLess1 = 255
			d.descs, d.ndesc = []wireRecord{r}, 1
		})},
		{name: "memory fd is a socket", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			d.descs, d.ndesc = []wireRecord{memoryRecord(fds.socket(nil), 4096)}, 1
		})},
		{name: "memory fd is a pipe", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			d.descs, d.ndesc = []wireRecord{memoryRecord(fds.pipeWriteEnd(), 4096)}, 1
		})},
		{name: "memory memfd not sealed", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			d.descs, d.ndesc = []wireRecord{memoryRecord(fds.memfd(1<<20, 0), 1<<20)}, 1
		})},
		{name: "memory of no size with an fd", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			d.descs, d.ndesc = []wireRecord{memoryRecord(fds.memfd(4096, sealed), 0)}, 1
		})},
		{name: "memory with copy option 7", build: with(func(_ *testing.T, fds *hostileFDs, d *datagram) {
			r := memoryRecord(fds.memfd(4096, sealed), 4096)
			r.typ = 7
			d.descs, d.ndesc = []wireRecord{r}, 1
		})},
		{name: "a forged receive-right token", build: with(func(_ *testing.T, _ *hostileFDs, d *datagram) {
			d.descs = []wireRecord{{kind: recReceive, typ: typeReceive, fd: -1, counterFD: -1, id: [16]byte{0xde, 0xad, 0xbe, 0xef}}}
			d.ndesc = 1
		})},
		// Well-formed messages that are not CF requests.
		{name: "a send right instead of memory", build: func(t *testing.T, fds *hostileFDs) []byte {
			d := oolHeader(t, 8000)
			d.descs = []wireRecord{{kind: recPort, typ: typeSend, fd: fds.socket(nil), counterFD: fds.memfd(4096, sealed), id: [16]byte{9, 9}}}
			d.ndesc, d.nfds = 1, uint16(len(fds.fds))
			return d.encode()
		}},
		{name: "out-of-line size that differs from byteslen", build: func(t *testing.T, fds *hostileFDs) []byte {
			d := oolHeader(t, 8000)
			d.descs, d.ndesc = []wireRecord{memoryRecord(fds.memfd(4096, sealed), 4096)}, 1
			d.nfds = uint16(len(fds.fds))
			return d.encode()
		}},
		{name: "a forged stop message", build: func(t *testing.T, _ *hostileFDs) []byte {
			d := request(bytes.Repeat([]byte{0xa5}, 16))
			d.id = 0x6d707374
			return d.encode()
		}},
		{name: "a forged send-once notification", build: func(t *testing.T, _ *hostileFDs) []byte {
			d := request(nil)
			d.id = 0x47 // MACH_NOTIFY_SEND_ONCE
			return d.encode()
		}},
		{name: "a forged dead-name notification", build: func(t *testing.T, _ *hostileFDs) []byte {
			d := request([]byte{0, 0, 0, 0, 0x03, 0x01, 0, 0})
			d.id = 0x48 // MACH_NOTIFY_DEAD_NAME
			return d.encode()
		}},
	}
}

// memfdMappings counts this process's memfd mappings (out-of-line memory, queue counters and
// every hostile memfd a receiver might have mapped).
func memfdMappings() int {
	maps, _ := os.ReadFile("/proc/self/maps")
	return bytes.Count(maps, []byte("/memfd:"))
}

// countingHandler is a slog.Handler that counts records by message.
type countingHandler struct {
	mu     sync.Mutex
	counts map[string]int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.counts == nil {
		h.counts = map[string]int{}
	}
	h.counts[r.Message]++
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }
func (h *countingHandler) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[msg]
}

// legitEcho is a legitimate client's request through request, checked against its reply.
func legitEcho(request func(context.Context, int32, []byte) ([]byte, error)) func(context.Context) error {
	return func(ctx context.Context) error {
		got, err := request(ctx, msgEcho, []byte("legit"))
		if err == nil && string(got) != "legit" {
			err = fmt.Errorf("reply %q", got)
		}
		return err
	}
}

// Every kind of datagram a peer can write, at a live server, a pair listener and a paired connection: each is
// dropped (or, with a hostile reply right, served and its reply given up), the server keeps
// serving within a second, and fds, mappings and goroutines come back to where they were.
func TestHostileDatagrams(t *testing.T) {
	cases := hostileCases()
	require.GreaterOrEqual(t, len(cases), 30)
	logs := &countingHandler{}
	logger := slog.New(logs)

	targets := []struct {
		name  string
		start func(t *testing.T, ctx context.Context) (target string, dropped func() uint64, request func(context.Context) error)
	}{
		{"server", func(t *testing.T, ctx context.Context) (string, func() uint64, func(context.Context) error) {
			srv := listen(t, echo, &cfmessageport.ServerOptions{ErrorLog: logger})
			r := dial(t, ctx, srv.Name())
			return srv.Name(), srv.Dropped, legitEcho(r.Request)
		}},
		{"pair listener", func(t *testing.T, ctx context.Context) (string, func() uint64, func(context.Context) error) {
			l, err := cfmessageport.ListenPair(uniqueName(t), echo, &cfmessageport.PairOptions{ErrorLog: logger})
			require.NoError(t, err)
			t.Cleanup(func() { l.Close() })
			r := dial(t, ctx, l.Name())
			return l.Name(), l.Dropped, legitEcho(r.Request)
		}},
		{"paired connection", func(t *testing.T, ctx context.Context) (string, func() uint64, func(context.Context) error) {
			opts := &cfmessageport.PairOptions{NamesOnly: true, ErrorLog: logger}
			l, err := cfmessageport.ListenPair(uniqueName(t), echo, opts)
			require.NoError(t, err)
			t.Cleanup(func() { l.Close() })
			client, err := cfmessageport.DialPair(ctx, l.Name(), echo, opts)
			require.NoError(t, err)
			t.Cleanup(func() { client.Close() })
			server, err := l.Accept(ctx)
			require.NoError(t, err)
			t.Cleanup(func() { server.Close() })
			return server.LocalName(), server.Dropped, legitEcho(client.Request)
		}},
	}
	for _, target := range targets {
		t.Run(target.name, func(t *testing.T) {
			leakcheck.Check(t)
			ctx := ctxTimeout(t, 120*time.Second)
			name, dropped, legit := target.start(t, ctx)
			service, err := bootstrap.LookUp(ctx, name)
			require.NoError(t, err)
			t.Cleanup(func() { service.Close() })
			fd, ok := emu.ChannelFD(uint32(service.Name()))
			require.True(t, ok)
			oneSecond := func() error {
				rctx, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				return legit(rctx)
			}
			require.NoError(t, oneSecond()) // warm: the remote's ports and goroutines exist

			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					runtime.GC()
					fdsBefore, mapsBefore, gsBefore := leakcheck.FDs(t), memfdMappings(), runtime.NumGoroutine()
					droppedBefore := dropped()
					fds := &hostileFDs{t: t}
					data := c.build(t, fds)
					var oob []byte
					if len(fds.fds) > 0 {
						oob = unix.UnixRights(fds.fds...)
					}
					err := unix.Sendmsg(fd, data, oob, nil, 0)
					for _, f := range fds.fds {
						unix.Close(f) // the copies in flight are the receiver's to close
					}
					require.NoError(t, err)

					require.NoError(t, oneSecond(), "a legitimate request after the hostile datagram")
					// Polled on this goroutine: Eventually's own goroutines would be counted. The
					// drop is polled for too: a server with several receive loops (the pair
					// listener's) may answer the later request on one loop before another has
					// counted the datagram it took first.
					var fdsAfter, mapsAfter, gsAfter int
					var droppedAfter uint64
					for range 500 {
						fdsAfter, mapsAfter, gsAfter = leakcheck.FDs(t), memfdMappings(), runtime.NumGoroutine()
						droppedAfter = dropped()
						if fdsAfter <= fdsBefore && mapsAfter <= mapsBefore && gsAfter <= gsBefore &&
							(c.served || droppedAfter > droppedBefore) {
							break
						}
						time.Sleep(10 * time.Millisecond)
					}
					if !c.served {
						require.Greater(t, droppedAfter, droppedBefore, "counted as dropped")
					}
					require.LessOrEqual(t, fdsAfter, fdsBefore, "fds: %v", leakcheck.FDList())
					require.LessOrEqual(t, mapsAfter, mapsBefore, "memfd mappings")
					require.LessOrEqual(t, gsAfter, gsBefore, "goroutines")
				})
			}
		})
	}
	require.Positive(t, logs.count("cfmessageport: dropped a message"), "drops are logged")
}

// A server whose port is destroyed under it stops, says why through Done and Err, and logs it;
// Close then still releases everything.
func TestServerReportsItsEnd(t *testing.T) {
	leakcheck.Check(t)
	logs := &countingHandler{}
	srv, err := cfmessageport.Listen(uniqueName(t), echo, &cfmessageport.ServerOptions{ErrorLog: slog.New(logs)})
	require.NoError(t, err)
	require.NoError(t, srv.Err())
	select {
	case <-srv.Done():
		t.Fatal("done while serving")
	default:
	}
	require.NoError(t, cfmessageport.DestroyServerPort(srv))
	select {
	case <-srv.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not notice its port's end")
	}
	require.Error(t, srv.Err())
	require.False(t, errors.Is(srv.Err(), cfmessageport.ErrServerClosed))
	require.True(t, mach.PortGone(srv.Err()), "%v", srv.Err())
	require.Equal(t, 1, logs.count("cfmessageport: server stopped: its port is gone"))
	require.NoError(t, srv.Close())
}
