package cfmessageport_test

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/internal/testproc"
	"github.com/machport/machport/peer"
	"github.com/stretchr/testify/require"
)

// BenchmarkRequire measures what a peer requirement costs per 64-byte request, against an echo
// service in a child process, in the same run: none; the server requiring the client's
// executable (a /proc start-time read per request once the verdict is cached); the server
// requiring a uid (a comparison); the client requiring the server's executable.
func BenchmarkRequire(b *testing.B) {
	exe, err := os.Executable()
	require.NoError(b, err)
	exeReq, err := peer.New(peer.Executable(exe))
	require.NoError(b, err)
	defer exeReq.Close()
	data := make([]byte, 64)
	for _, bc := range []struct {
		name, role, serverReq string
		clientReq             *peer.Requirement
	}{
		{"none", "serve", "", nil},
		{"server-exe", "reqserve", "exe:" + exe, nil},
		{"server-uid", "reqserve", "uid:" + strconv.Itoa(os.Geteuid()), nil},
		{"client-exe", "serve", "", exeReq},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			name := uniqueName(b)
			var env []string
			if bc.serverReq != "" {
				env = append(env, requireEnv+"="+bc.serverReq)
			}
			c := testproc.Start(b, bc.role, name, env...)
			require.Equal(b, "ready", c.Line(b))
			r, err := cfmessageport.DialWithOptions(ctx, name, &cfmessageport.DialOptions{Require: bc.clientReq})
			require.NoError(b, err)
			defer r.Close()
			b.ResetTimer()
			for b.Loop() {
				if _, err := r.Request(ctx, msgEcho, data); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
