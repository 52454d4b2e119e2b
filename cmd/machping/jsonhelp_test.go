package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every field of every JSON document is documented in 'machping help json', and so is every
// rule identifier of check.
func TestJSONHelpCoversFields(t *testing.T) {
	for _, v := range []any{versionInfo{}, errorDoc{}, diagnosis{}, pingDoc{}, pingReply{}, sender{}, summary{},
		servingEvent{}, requestEvent{}, withdrawnEvent{}, selftestDoc{}, lookupDoc{}, rightInfo{},
		registerDoc{}, probe{}, sandboxInfo{}, checkDoc{}, rightsDoc{}, fdInfo{}, benchDoc{}, benchResult{},
		rejection{}, checkPeerDoc{}, verdictDoc{}, notifyDoc{}, notifyEvent{}} {
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			f := typ.Field(i)
			if f.Anonymous {
				continue // header: checked below
			}
			if !f.IsExported() {
				continue // never encoded
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			require.NotEmpty(t, name, "%s.%s has no json name", typ.Name(), f.Name)
			require.Contains(t, jsonHelp, name, "%s.%s (%q) is not documented", typ.Name(), f.Name, name)
		}
	}
	require.Regexp(t, `(?m)^ +machping +int +the schema version`, jsonHelp)
	require.Regexp(t, `(?m)^ +command +string`, jsonHelp)
	for _, r := range ruleIDs {
		require.Contains(t, jsonHelp, r.id)
	}
}
