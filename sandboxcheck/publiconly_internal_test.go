package sandboxcheck

import (
	"errors"
	"reflect"
	"testing"

	"github.com/machport/machport/internal/darwin"
	"github.com/stretchr/testify/require"
)

// The policy of a public-only build (appSupplied): no live query; the groups are the ones the
// app supplies, and with them Check explains a name outside them, as on macOS.
func TestPublicOnlyPolicy(t *testing.T) {
	saved := platform
	platform = &appSupplied{}
	t.Cleanup(func() { platform = saved })

	isPrivateAPI := func(t *testing.T, err error) {
		t.Helper()
		require.ErrorIs(t, err, errors.ErrUnsupported)
		var pe *PrivateAPIError
		require.ErrorAs(t, err, &pe)
	}
	_, err := Sandboxed()
	isPrivateAPI(t, err)
	_, err = ApplicationGroups()
	isPrivateAPI(t, err)
	require.Contains(t, err.Error(), "SetApplicationGroups")
	_, err = Allowed(MachRegister, "group.com.example.app.svc")
	isPrivateAPI(t, err)
	require.NoError(t, Check(MachRegister, "com.example.anything"), "without groups launchd answers")
	require.NoError(t, ValidateName("group.com.example.app.svc", "group.com.example.app"))
	require.Contains(t, GroupsSource(), "SetApplicationGroups")

	require.Error(t, SetApplicationGroups(), "no group")
	var ne *NameError
	require.ErrorAs(t, SetApplicationGroups("not a group"), &ne)
	require.NoError(t, SetApplicationGroups("group.com.example.app"))
	groups, err := ApplicationGroups()
	require.NoError(t, err)
	require.Equal(t, []string{"group.com.example.app"}, groups)
	sandboxed, err := Sandboxed()
	require.NoError(t, err)
	require.True(t, sandboxed)
	require.NoError(t, Check(MachRegister, "group.com.example.app.svc"))
	err = Check(MachRegister, "com.example.outside")
	require.ErrorIs(t, err, ErrOutsideGroups)
	require.NoError(t, Check(MachLookUp, "com.example.outside"), "the group rule governs mach-register only")
	_, err = Allowed(MachRegister, "group.com.example.app.svc")
	isPrivateAPI(t, err)

	ResetApplicationGroups()
	_, err = ApplicationGroups()
	isPrivateAPI(t, err)
}

// Apple's App Groups entitlement takes team-ID groups ("TEAMID.name") on macOS only; on iOS every
// group starts with "group.". SetApplicationGroups follows the system the loader reports (SetOS
// stands for running on iOS).
func TestPublicOnlyGroupsDependOnTheOS(t *testing.T) {
	saved := platform
	platform = &appSupplied{}
	t.Cleanup(func() { platform = saved })
	t.Cleanup(keepBindings()) // SetOS forgets them, and the double binds them once per process
	t.Cleanup(func() { darwin.SetOS(darwin.HostOS()) })
	const team, group = "ABCDE12345.com.example.app", "group.com.example.app"
	for _, tc := range []struct {
		os    darwin.OS
		group string
		ok    bool
	}{
		{darwin.MacOS, group, true},
		{darwin.MacOS, team, true},
		{darwin.IOS, group, true},
		{darwin.IOS, team, false},
	} {
		t.Run(tc.os.String()+" "+tc.group, func(t *testing.T) {
			darwin.SetOS(tc.os)
			t.Cleanup(ResetApplicationGroups)
			err := SetApplicationGroups(tc.group)
			if tc.ok {
				require.NoError(t, err)
				groups, err := ApplicationGroups()
				require.NoError(t, err)
				require.Equal(t, []string{tc.group}, groups)
				return
			}
			require.ErrorIs(t, err, ErrBadGroup)
			var ne *NameError
			require.ErrorAs(t, err, &ne)
			require.Equal(t, tc.group, ne.Group)
			require.Contains(t, ne.Error(), "macOS only")
			_, err = ApplicationGroups()
			require.ErrorIs(t, err, errors.ErrUnsupported, "no group was taken")
		})
	}
}

// keepBindings saves internal/darwin's bindings and returns the function that puts them back:
// darwin.SetOS forgets every binding, and the libSystem double makes them once per process
// (libsystemdouble.Install), so without it the tests over the double that run after a test that
// sets the OS (with -count 2 or -shuffle) found sandbox_check unbound (ErrNoSandboxSPI).
func keepBindings() (restore func()) {
	var vars []reflect.Value // pointers to the binding variables
	for _, f := range darwin.Funcs {
		vars = append(vars, reflect.ValueOf(f.Fn))
	}
	for _, f := range darwin.VariadicFuncs {
		vars = append(vars, reflect.ValueOf(f.Arm64), reflect.ValueOf(f.Amd64))
	}
	for _, d := range darwin.DataSymbols {
		vars = append(vars, reflect.ValueOf(d.Addr))
	}
	saved := make([]reflect.Value, len(vars))
	for i, v := range vars {
		saved[i] = reflect.New(v.Elem().Type()).Elem()
		saved[i].Set(v.Elem())
	}
	return func() {
		for i, v := range vars {
			v.Elem().Set(saved[i])
		}
	}
}
