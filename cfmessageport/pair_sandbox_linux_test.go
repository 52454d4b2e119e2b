package cfmessageport_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/internal/testproc"
	"github.com/machport/machport/sandboxcheck"
	"github.com/stretchr/testify/require"
)

// A client in the emulated sandbox (MACHPORT_APP_GROUPS) pairs with names inside its application
// group: by default the names extend the service's own (grouped) name, and an explicit prefix
// outside the group gets the group put in front. A service outside the group is refused (1100).
func TestPairSandboxedClientNames(t *testing.T) {
	const group = "group.com.machport.test"
	cases := []struct {
		name       string
		service    string
		prefix     string
		wantPrefix string // of the client's name; "" when the pairing must be refused
	}{
		{name: "default prefix", service: group + "." + uniqueName(t), wantPrefix: "<service>.peer."},
		{name: "prefix outside the group", service: group + "." + uniqueName(t), prefix: "com.machport.reply",
			wantPrefix: group + ".com.machport.reply."},
		{name: "service outside the group", service: uniqueName(t)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			ctx := ctxTimeout(t, 10*time.Second)
			l, err := cfmessageport.ListenPair(tc.service, echo, nil)
			require.NoError(t, err)
			defer l.Close()
			child := testproc.Start(t, "pairdial", tc.service, sandboxcheck.EnvAppGroups+"="+group,
				"MACHPORT_TEST_PAIR_NAMES=1", "MACHPORT_TEST_PAIR_PREFIX="+tc.prefix)
			line := child.Line(t)
			if tc.wantPrefix == "" {
				require.Equal(t, "refused: code 1100", line)
				return
			}
			want := strings.ReplaceAll(tc.wantPrefix, "<service>", tc.service)
			clientName, err := strconv.Unquote(strings.TrimPrefix(line, "paired "))
			require.NoError(t, err, line)
			require.True(t, strings.HasPrefix(clientName, want), "%q does not start with %q", clientName, want)
			c, err := l.Accept(ctx)
			require.NoError(t, err)
			defer c.Close()
			require.True(t, strings.HasPrefix(c.LocalName(), tc.service+".conn."), c.LocalName())
			got, err := c.Request(ctx, msgEcho, []byte("to the sandboxed client"))
			require.NoError(t, err)
			require.Equal(t, "to the sandboxed client", string(got))
		})
	}
}
