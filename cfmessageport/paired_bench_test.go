package cfmessageport_test

import (
	"context"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// BenchmarkRoundTripPaired measures what BenchmarkRoundTrip's raw/64 and cf/64 compare, 64-byte
// request/reply against an echo service in a child process, but both in the same run: the two
// alternate in blocks of pairedBlock round trips, each timed on its own, so that a slow spell
// of a loaded machine falls on both alike rather than on whichever ran then. It reports each
// one's ns per round trip and their ratio (cf/raw; ns/op is a raw and a CF round trip).
func BenchmarkRoundTripPaired(b *testing.B) {
	const pairedBlock = 200
	ctx := context.Background()
	data := make([]byte, 64)

	rawName := uniqueName(b) + ".raw"
	startChild(b, "rawserve", rawName)
	service, err := bootstrap.LookUp(ctx, rawName)
	require.NoError(b, err)
	defer service.Close()
	reply, err := mach.NewPort(mach.PortOptions{})
	require.NoError(b, err)
	defer reply.Close()
	var in mach.Message
	raw := func() {
		out := &mach.Message{Remote: mach.CopySendOf(service), Local: mach.MakeSendOnceOf(reply), ID: 1, Body: data}
		if err := mach.Send(ctx, out); err != nil {
			b.Fatal(err)
		}
		if err := mach.Receive(ctx, reply, &in); err != nil {
			b.Fatal(err)
		}
		if got := append([]byte{}, in.Body...); len(got) != len(data) {
			b.Fatalf("%d bytes back", len(got))
		}
		_ = in.Destroy()
	}

	r := benchRemote(b, ctx, 64)
	cf := func() {
		got, err := r.Request(ctx, msgEcho, data)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != len(data) {
			b.Fatalf("%d bytes back", len(got))
		}
	}

	var rawTime, cfTime time.Duration
	var n int
	b.ResetTimer()
	for n < b.N {
		k := min(pairedBlock, b.N-n)
		t := time.Now()
		for range k {
			raw()
		}
		t2 := time.Now()
		for range k {
			cf()
		}
		rawTime += t2.Sub(t)
		cfTime += time.Since(t2)
		n += k
	}
	b.ReportMetric(float64(rawTime.Nanoseconds())/float64(n), "raw-ns/op")
	b.ReportMetric(float64(cfTime.Nanoseconds())/float64(n), "cf-ns/op")
	b.ReportMetric(float64(cfTime)/float64(rawTime), "cf/raw")
}
