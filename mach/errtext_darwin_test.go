//go:build darwin && !ios

package mach

import (
	"testing"

	"github.com/machport/machport/internal/darwin"
	"github.com/stretchr/testify/require"
)

// On macOS, the texts in the error table are what libSystem's mach_error_string returns.
// (Runs on the macOS CI runners; eight mach_msg2-era texts are not in any public source and are
// exactly what this test settles.)
func TestErrorTextsMatchLibSystem(t *testing.T) {
	require.NoError(t, darwin.Load())
	if darwin.MachErrorString == nil {
		t.Fatal("mach_error_string is not exported by libSystem")
	}
	for code, e := range returnTable {
		require.Equal(t, darwin.MachErrorString(code), e.text, "%s (%#x)", e.name, uint32(code))
	}
}
