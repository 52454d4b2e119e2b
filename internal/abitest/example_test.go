package abitest_test

import (
	"fmt"
	"reflect"

	"github.com/machport/machport/internal/abitest"
)

func Example() {
	facts, err := abitest.Load()
	if err != nil {
		panic(err)
	}
	fmt.Println(facts.Symbol("mach_msg").Library)
	// mach_port_mod_refs's delta is a C int: a Go uint32 does not match it.
	err = abitest.CheckGoType(reflect.TypeOf(uint32(0)), facts.Prototype("mach_port_mod_refs").Params[3])
	fmt.Println(err != nil)
	// Output:
	// /usr/lib/system/libsystem_kernel.dylib
	// true
}
