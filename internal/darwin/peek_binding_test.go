package darwin

import (
	"reflect"
	"testing"

	"github.com/machport/machport/internal/abitest"
	"github.com/stretchr/testify/require"
)

// mach_port_peek is not in the SDK facts (TestUncheckedBindingsAreNotInFacts), but the types of
// its prototype are: each parameter of the binding is checked against the canonical type the
// facts give the typedef the SDK header declares it with.
func TestMachPortPeekParams(t *testing.T) {
	facts, err := abitest.Load()
	require.NoError(t, err)
	// kern_return_t mach_port_peek(ipc_space_t task, mach_port_name_t name,
	//     mach_msg_trailer_type_t trailer_type, mach_port_seqno_t *request_seqnop,
	//     mach_msg_size_t *msg_sizep, mach_msg_id_t *msg_idp,
	//     mach_msg_trailer_info_t trailer_infop, mach_msg_type_number_t *trailer_infopCnt);
	params := []struct {
		typedef string
		pointer bool
	}{
		{"ipc_space_t", false}, {"mach_port_name_t", false}, {"mach_msg_trailer_type_t", false},
		{"mach_port_seqno_t", true}, {"mach_msg_size_t", true}, {"mach_msg_id_t", true},
		{"mach_msg_trailer_info_t", false}, {"mach_msg_type_number_t", true},
	}
	fn := reflect.TypeOf(MachPortPeek)
	require.Equal(t, len(params), fn.NumIn())
	for i, p := range params {
		td := facts.Typedefs[p.typedef]
		require.NotNil(t, td, "no typedef %s", p.typedef)
		c, ok := td["canonical"].(string)
		require.True(t, ok, p.typedef)
		if p.pointer {
			c += " *"
		}
		require.NoError(t, abitest.CheckGoType(fn.In(i), c), "parameter %d (%s)", i, p.typedef)
	}
	ret := facts.Typedefs["kern_return_t"]
	require.NotNil(t, ret)
	require.Equal(t, 1, fn.NumOut())
	require.NoError(t, abitest.CheckGoType(fn.Out(0), ret["canonical"].(string)))
	var found bool
	for _, f := range Funcs {
		if f.Name == "mach_port_peek" {
			found = true
			require.Equal(t, LibKernel, f.Lib, "the other mach_port calls' dylib")
		}
	}
	require.True(t, found)
}
