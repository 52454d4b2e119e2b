//go:build darwin && !ios

package mach

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/machport/machport/internal/cicheck"
	"github.com/machport/machport/internal/darwin"
	"github.com/stretchr/testify/require"
)

// sourceConfirms reports whether a source confirms the table's text for a code: every text that
// is an entry of the string tables errtext.go cites (xnu's err_kern.sub, err_mach_ipc.sub). The
// others are what those tables give for a code they do not describe: "unknown error code" past
// the end of the (ipc/send) and (ipc/rcv) tables, and the slot MACH_SEND_INVALID_OPTIONS falls on,
// labelled "unused error". Those are the mach_msg2-era codes, whose texts no public source holds.
func sourceConfirms(e returnEntry) bool {
	return e.text != "unknown error code" && !strings.HasSuffix(e.text, " unused error")
}

// On macOS, the texts in the error table that a source confirms are what libSystem's
// mach_error_string returns; the others are compared and reported in the job summary, not
// asserted. (Runs on the macOS CI runners.)
func TestErrorTextsMatchLibSystem(t *testing.T) {
	require.NoError(t, darwin.Load())
	if darwin.MachErrorString == nil {
		t.Fatal("mach_error_string is not exported by libSystem")
	}
	codes := slices.Sorted(maps.Keys(returnTable))
	report := []string{"### mach_error_string: texts no source confirms (reported, not asserted)", "",
		"| code | name | machport's text | libSystem's text | same |", "| --- | --- | --- | --- | --- |"}
	for _, code := range codes {
		e := returnTable[code]
		got := darwin.MachErrorString(code)
		if sourceConfirms(e) {
			require.Equal(t, e.text, got, "%s (%#x)", e.name, uint32(code))
			continue
		}
		report = append(report, fmt.Sprintf("| %#x | %s | %q | %q | %v |", uint32(code), e.name, e.text, got, got == e.text))
	}
	require.Greater(t, len(report), 4, "no unconfirmed text to report: sourceConfirms no longer matches the table")
	cicheck.StepSummary(t, report...)
}
