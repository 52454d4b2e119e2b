package darwin_test

import (
	"fmt"

	"github.com/machport/machport/internal/darwin"
)

func Example() {
	// The binding table is the same on every platform; Load resolves it only on macOS.
	for _, f := range darwin.Funcs[:2] {
		fmt.Println(f.Name, "from", f.Lib)
	}
	// Output:
	// mach_msg from /usr/lib/system/libsystem_kernel.dylib
	// mach_msg_destroy from /usr/lib/system/libsystem_kernel.dylib
}
