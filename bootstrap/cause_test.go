package bootstrap_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// A look-up whose answer is a right that is already dead finds no live server: launchd answers
// with the right it holds until it learns of the registrant's death, which is then a dead name
// here, or MACH_PORT_DEAD when the port died before the answer arrived. Either is 1102, as a
// look-up a moment later would say, and the dead name is released.
func TestLookUpOfADeadRightIsUnknownService(t *testing.T) {
	for _, tc := range []struct {
		name  string
		right func(t *testing.T) *mach.SendRight
	}{
		{name: "a dead name", right: func(t *testing.T) *mach.SendRight {
			port := newPort(t)
			send, err := port.MakeSend()
			require.NoError(t, err)
			require.NoError(t, port.Close())
			return send
		}},
		{name: "MACH_PORT_DEAD", right: func(*testing.T) *mach.SendRight { return mach.AdoptSend(mach.NameDead) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			name := uniqueName(t)
			restore := bootstrap.ReplaceLookUp(func(string) (*mach.SendRight, error) { return tc.right(t), nil })
			defer restore()
			s, err := bootstrap.LookUp(ctxTimeout(t, 5*time.Second), name)
			require.Nil(t, s)
			require.ErrorIs(t, err, bootstrap.ErrUnknownService)
			var be *bootstrap.Error
			require.ErrorAs(t, err, &be)
			require.Equal(t, name, be.Name)
			require.Equal(t, 1, strings.Count(err.Error(), strconv.Quote(name)), err.Error())
			require.ErrorContains(t, err, "dead name")
		})
	}
}

// The name is quoted once in a look-up's error, also when a rule of package sandboxcheck, which
// quotes it itself, is the cause.
func TestErrorTextQuotesTheNameOnce(t *testing.T) {
	ctx := ctxTimeout(t, 5*time.Second)
	for _, name := range []string{uniqueName(t), "", uniqueName(t) + "." + strings.Repeat("x", 200), "a\x00b", "a\xffb"} {
		_, err := bootstrap.LookUp(ctx, name)
		require.Error(t, err)
		require.Equal(t, 1, strings.Count(err.Error(), strconv.Quote(name)), err.Error())
		_, err = bootstrap.LookUpPID(ctx, name, 1)
		require.Error(t, err)
		require.Equal(t, 1, strings.Count(err.Error(), strconv.Quote(name)), err.Error())
	}
}
