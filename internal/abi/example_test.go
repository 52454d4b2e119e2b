package abi_test

import (
	"fmt"

	"github.com/machport/machport/internal/abi"
)

func Example() {
	// MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE)
	bits := abi.MACH_MSG_TYPE_COPY_SEND | abi.MACH_MSG_TYPE_MAKE_SEND_ONCE<<8
	fmt.Printf("%#x\n", bits)
	// Output: 0x1513
}
